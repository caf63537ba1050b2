package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// flipServer is an HTTP health endpoint whose answer a test flips.
type flipServer struct {
	*httptest.Server
	healthy atomic.Bool
	load    atomic.Int64
}

func newFlipServer(t *testing.T) *flipServer {
	f := &flipServer{}
	f.healthy.Store(true)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.healthy.Load() {
			http.Error(w, "down", 503)
			return
		}
		fmt.Fprintf(w, `{"load": %d, "latency": 12}`, f.load.Load())
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *flipServer) target(t *testing.T) netip.AddrPort {
	return addrOf(t, f.Listener.Addr().String())
}

func fastCheck() *Check {
	return httpCheck(func(c *Check) {
		c.Interval, c.Timeout, c.Rise, c.Fall = 20*time.Millisecond, 15*time.Millisecond, 2, 3
	})
}

type recorder struct{ events chan Event }

func newManager(t *testing.T, opts Options) (*Manager, *recorder, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	rec := &recorder{events: make(chan Event, 1000)}
	opts.Registerer = reg
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.OnEvent = func(e Event) { rec.events <- e }
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 8
	}
	return New(opts), rec, reg
}

func run(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// eventually polls cond every 10ms for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestManagerFailoverAndBack(t *testing.T) {
	a, b := newFlipServer(t), newFlipServer(t)
	check := fastCheck()
	m, rec, reg := newManager(t, Options{})
	spec := []DatacenterSpec{{ID: "dc1", MinHealthy: 1, Endpoints: []EndpointSpec{
		{Address: netip.MustParseAddr("192.0.2.1"), Check: check, Probe: a.target(t)},
		{Address: netip.MustParseAddr("192.0.2.2"), Check: check, Probe: b.target(t)},
	}}}
	if err := m.Configure(spec); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.WaitFirstRound(ctx); err != nil {
		t.Fatal(err)
	}
	a.load.Store(300)
	eventually(t, "reported load", func() bool { v := m.View().Datacenters["dc1"]; return v.Up && v.Load == 150 && v.LatencyMS == 12 })

	// One endpoint down: the datacenter stays up (min_healthy 1).
	a.healthy.Store(false)
	eventually(t, "endpoint a down", func() bool { return m.Status().Datacenters[0].Endpoints[0].State == Down })
	if v := m.View().Datacenters["dc1"]; !v.Up {
		t.Fatalf("datacenter down with one of two endpoints up")
	}
	if got := testutil.ToFloat64(m.metrics.endpointUp.WithLabelValues("dc1", "192.0.2.1")); got != 0 {
		t.Errorf("gslb_endpoint_up for a: got %v, want 0", got)
	}
	// Both down: the datacenter goes down, with an event that has an ID.
	b.healthy.Store(false)
	eventually(t, "datacenter down", func() bool { return !m.View().Datacenters["dc1"].Up })
	var dcEvent Event
	eventually(t, "datacenter down event", func() bool {
		for {
			select {
			case e := <-rec.events:
				if e.Kind == "datacenter" && e.To == "down" {
					dcEvent = e
					return true
				}
			default:
				return false
			}
		}
	})
	if dcEvent.From != "up" || dcEvent.Reason != "0 of 2 endpoints up, 1 needed" {
		t.Errorf("event: got %+v", dcEvent)
	}
	// Back after rise good probes.
	a.healthy.Store(true)
	eventually(t, "datacenter up", func() bool { return m.View().Datacenters["dc1"].Up })
	if n := testutil.ToFloat64(m.metrics.transitions.WithLabelValues("datacenter", "dc1", "down")); n != 1 {
		t.Errorf("datacenter down transitions: got %v, want 1", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", err, problems)
	}
}

func TestOverridesAndReloadKeepSince(t *testing.T) {
	a := newFlipServer(t)
	check := fastCheck()
	m, _, _ := newManager(t, Options{})
	spec := func(c *Check) []DatacenterSpec {
		return []DatacenterSpec{
			{ID: "dc1", MinHealthy: 1, Endpoints: []EndpointSpec{{Address: netip.MustParseAddr("192.0.2.1"), Check: c, Probe: a.target(t)}}},
			{ID: "dc2", MinHealthy: 1, Endpoints: []EndpointSpec{{Address: netip.MustParseAddr("192.0.2.9")}}},
		}
	}
	if err := m.Configure(spec(check)); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	eventually(t, "first probe", func() bool { return m.Status().Datacenters[0].Endpoints[0].LastProbe != nil })
	since := m.Status().Datacenters[0].Endpoints[0].Since

	// Drain an unprobed datacenter, then undrain it.
	if err := m.Override("dc2", "", "down", "maintenance"); err != nil {
		t.Fatal(err)
	}
	st := m.Status().Datacenters[1]
	if m.View().Datacenters["dc2"].Up || st.Override == nil || st.Override.Reason != "maintenance" {
		t.Errorf("after drain: up %t override %+v", m.View().Datacenters["dc2"].Up, st.Override)
	}
	if err := m.Override("dc2", "", "auto", ""); err != nil || !m.View().Datacenters["dc2"].Up {
		t.Errorf("after auto: %v up %t", err, m.View().Datacenters["dc2"].Up)
	}
	// Force a healthy endpoint down.
	if err := m.Override("dc1", "192.0.2.1", "down", "bad deploy"); err != nil || m.View().Datacenters["dc1"].Up {
		t.Errorf("endpoint forced down: %v, datacenter up %t", err, m.View().Datacenters["dc1"].Up)
	}
	for _, bad := range [][3]string{{"nope", "", "down"}, {"dc1", "192.0.2.77", "down"}, {"dc1", "", "sideways"}} {
		if err := m.Override(bad[0], bad[1], bad[2], "x"); err == nil {
			t.Errorf("override %v: got no error", bad)
		}
	}

	// A reload with the same check keeps state, since and the override.
	same := *check
	if err := m.Configure(spec(&same)); err != nil {
		t.Fatal(err)
	}
	ep := m.Status().Datacenters[0].Endpoints[0]
	if !ep.Since.Equal(since) || ep.Override == nil {
		t.Errorf("after reload: since %v (was %v), override %+v", ep.Since, since, ep.Override)
	}
	// A changed check starts over.
	changed := *check
	changed.Path = "/other"
	if err := m.Configure(spec(&changed)); err != nil {
		t.Fatal(err)
	}
	if ep := m.Status().Datacenters[0].Endpoints[0]; ep.LastProbe != nil && ep.Since.Equal(since) {
		t.Errorf("after a changed check: since %v kept", ep.Since)
	}
}

func TestStateMachine(t *testing.T) {
	ok, bad := Result{OK: true, RTT: time.Millisecond}, Result{Err: errors.New("boom")}
	now := time.Unix(1000, 0)
	d := Damping{Window: time.Minute, MaxTransitions: 3, Hold: 30 * time.Second}
	var e endpointState
	step := func(r Result) bool {
		now = now.Add(time.Second)
		changed, _ := e.observe(r, now, 2, 3, d)
		return changed
	}
	if !step(ok) || e.state != Up {
		t.Fatalf("first result decides at once: got %v", e.state)
	}
	if step(bad) || step(bad) || e.state != Up {
		t.Fatalf("two failures of fall 3: got %v", e.state)
	}
	if !step(bad) || e.state != Down {
		t.Fatalf("third failure: got %v", e.state)
	}
	if step(ok) || !step(ok) || e.state != Up {
		t.Fatalf("rise 2: got %v", e.state)
	}
	// Flap: up/down again until more than 3 transitions in the window.
	step(bad)
	step(bad)
	step(bad) // 3rd transition: down
	step(ok)
	step(ok) // 4th: up
	step(bad)
	step(bad)
	_, why := e.observe(bad, now.Add(time.Second), 2, 3, d) // 5th: down, flapping
	now = now.Add(time.Second)
	if !e.flapping || e.state != Down {
		t.Fatalf("want flapping and down after 5 transitions in a minute: flapping %t state %v (%s)", e.flapping, e.state, why)
	}
	if l := e.loss(); l < 0.3 {
		t.Errorf("loss over the last 20: got %v, want the failures to count", l)
	}
	// Healthy again, but held down for the hold time.
	for range 10 {
		if step(ok) {
			t.Fatalf("came back within the hold (%s)", now)
		}
	}
	for range 25 {
		step(ok)
	}
	if e.state != Up || e.flapping {
		t.Errorf("after the hold: state %v flapping %t", e.state, e.flapping)
	}
	if e.loss() != 0 {
		t.Errorf("loss after 35 successes: got %v, want 0 (the window is 20)", e.loss())
	}
}

// TestGoroutinesStayFlat: many ticks of many endpoints leave the
// goroutine count where it was.
func TestGoroutinesStayFlat(t *testing.T) {
	a := newFlipServer(t)
	check := fastCheck()
	m, _, _ := newManager(t, Options{MaxInFlight: 4})
	var eps []EndpointSpec
	for i := range 50 {
		eps = append(eps, EndpointSpec{Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Check: check, Probe: a.target(t)})
	}
	if err := m.Configure([]DatacenterSpec{{ID: "dc", MinHealthy: 1, Endpoints: eps}}); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	probes := func() uint64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		var n uint64
		for _, ep := range m.eps {
			n += ep.st.probes
		}
		return n
	}
	eventually(t, "200 probes", func() bool { return probes() >= 200 })
	base := runtime.NumGoroutine()
	start := probes()
	eventually(t, "1000 more probes", func() bool { return probes() >= start+1000 })
	// In flight at any instant: up to MaxInFlight probes, each with an
	// HTTP connection's read and write loops, plus timers; a leak of one
	// goroutine per probe would show as a thousand.
	if g, bound := runtime.NumGoroutine(), base+3*4+10; g > bound {
		t.Errorf("goroutines grew from %d to %d over 1000 probes; want at most %d", base, g, bound)
	}
}
