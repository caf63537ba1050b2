package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/gslb/config"
)

func foDefaults() foOptions {
	return foOptions{gslbd: "bin/gslbd", dnsperf: "dnsperf", rounds: 5, qps: 5000, interval: time.Second,
		timeout: 500 * time.Millisecond, fall: 3, rise: 2, jitter: 0.1, poll: 10 * time.Millisecond,
		hold: 2 * time.Second, threads: 1, clients: 4, outst: 100, mode: "503"}
}

func TestFailoverBounds(t *testing.T) {
	o := foDefaults()
	down, up := o.bounds()
	if down != 3800*time.Millisecond || up != 2700*time.Millisecond {
		t.Errorf("bounds: got %s and %s, want 3.8s (1s×3 + 500ms + 3×0.1×1s) and 2.7s", down, up)
	}
}

func TestFailoverOptionsCheck(t *testing.T) {
	def := foDefaults()
	if msg := def.check(); msg != "" {
		t.Fatalf("defaults: %s", msg)
	}
	for _, mut := range []func(*foOptions){
		func(o *foOptions) { o.rounds = 0 },
		func(o *foOptions) { o.timeout = o.interval },
		func(o *foOptions) { o.interval = 50 * time.Millisecond },
		func(o *foOptions) { o.jitter = 0.6 },
		func(o *foOptions) { o.fall = 0 },
		func(o *foOptions) { o.poll = 0 },
		func(o *foOptions) { o.mode = "crash" },
	} {
		o := foDefaults()
		mut(&o)
		if o.check() == "" {
			t.Errorf("%+v: accepted", o)
		}
	}
}

// The configuration written for gslbd loads, with the check, jitter and
// damping asked for.
func TestFailoverConfigLoads(t *testing.T) {
	o := foDefaults()
	body := failoverConfig(o, netip.MustParseAddrPort("127.0.0.1:10001"), netip.MustParseAddrPort("127.0.0.1:10002"))
	cfg, err := config.Parse("failover.yaml", []byte(body), config.Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	hc := cfg.HealthChecks["web"]
	if hc.Interval != time.Second || hc.Timeout != 500*time.Millisecond || hc.Fall != 3 || hc.Rise != 2 {
		t.Errorf("check: got %+v", hc)
	}
	if cfg.Health.Jitter != 0.1 || cfg.Health.Damping.MaxTransitions != 0 {
		t.Errorf("health: jitter %v, damping %+v", cfg.Health.Jitter, cfg.Health.Damping)
	}
}

func TestFailoverAnalyse(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int, answer string) sample {
		s := sample{Sent: t0.Add(time.Duration(ms) * time.Millisecond), Answer: answer}
		s.Recv = s.Sent.Add(time.Millisecond)
		if answer == "" {
			s.Err = true
		}
		return s
	}
	cases := []struct {
		name      string
		samples   []sample
		first     time.Duration
		all       time.Duration
		wantFlips int
	}{
		{"clean", []sample{at(0, "a"), at(10, "a"), at(20, "b"), at(30, "b")}, 21 * time.Millisecond, 21 * time.Millisecond, 0},
		{"flip", []sample{at(0, "a"), at(10, "b"), at(20, "a"), at(30, "b"), at(40, "b")}, 11 * time.Millisecond, 31 * time.Millisecond, 1},
		{"errors ignored", []sample{at(0, "a"), at(10, ""), at(20, "b"), at(30, ""), at(40, "b")}, 21 * time.Millisecond, 21 * time.Millisecond, 0},
		{"never", []sample{at(0, "a"), at(10, "a")}, -1, -1, 0},
		{"back at the end", []sample{at(0, "b"), at(10, "a")}, time.Millisecond, -1, 1},
	}
	for _, c := range cases {
		m := analyse(c.samples, t0, "b")
		if m.First != c.first || m.All != c.all || m.Flips != c.wantFlips {
			t.Errorf("%s: got first %s all %s flips %d, want %s %s %d", c.name, m.First, m.All, m.Flips, c.first, c.all, c.wantFlips)
		}
	}
}

func TestFailoverDetected(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hit := func(s float64, ok bool) probeHit {
		return probeHit{At: t0.Add(time.Duration(s * float64(time.Second))), OK: ok}
	}
	hits := []probeHit{hit(-0.5, true), hit(0.4, false), hit(1.4, false), hit(2.5, false), hit(3.4, false)}
	if got := detected(hits, t0, false, 3); got != 2500*time.Millisecond {
		t.Errorf("third failure: got %s, want 2.5s", got)
	}
	if got := detected(hits, t0, false, 5); got != -1 {
		t.Errorf("fifth failure: got %s, want -1", got)
	}
	// A success in between starts the count again, as rise and fall do.
	hits = []probeHit{hit(0.1, true), hit(1.1, false), hit(2.1, true), hit(3.1, true)}
	if got := detected(hits, t0, true, 2); got != 3100*time.Millisecond {
		t.Errorf("second success in a row: got %s, want 3.1s", got)
	}
}

func TestFailoverInterrupted(t *testing.T) {
	out := "Statistics:\n\n  Queries sent:         3996\n  Queries completed:    3995 (99.97%)\n  Queries lost:         0 (0.00%)\n  Queries interrupted:  1 (0.03%)\n"
	if n := interruptedQueries(out); n != 1 {
		t.Errorf("got %d, want 1", n)
	}
	if n := interruptedQueries("Queries sent: 1\n"); n != 0 {
		t.Errorf("no line: got %d, want 0", n)
	}
}

func TestFailoverUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runFailover([]string{"-rounds", "0"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "-rounds") {
		t.Errorf("-rounds 0: exit %d, %q", code, errb.String())
	}
	if code := runFailover([]string{"extra"}, &out, &errb); code != exitUsage {
		t.Errorf("extra argument: exit %d", code)
	}
}
