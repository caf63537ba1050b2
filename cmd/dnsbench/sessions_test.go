package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestSessPrefixes(t *testing.T) {
	ps := sessPrefixes(100000)
	if len(ps) != 100000 {
		t.Fatalf("%d prefixes", len(ps))
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range ps {
		if !p.Addr().Is4() || p.Bits() != 24 || p != p.Masked() {
			t.Fatalf("%s is not a masked IPv4 /24", p)
		}
		if seen[p] {
			t.Fatalf("%s twice", p)
		}
		seen[p] = true
	}
	if got, want := ps[0].String(), "1.0.0.0/24"; got != want {
		t.Errorf("first %s, want %s", got, want)
	}
	if got, want := ps[1].String(), "1.0.1.0/24"; got != want {
		t.Errorf("second %s, want %s", got, want)
	}
	// 100000 = 1×65536 + 134×256 + 160: the last is index 99999.
	if got, want := ps[len(ps)-1].String(), "2.134.159.0/24"; got != want {
		t.Errorf("last %s, want %s", got, want)
	}
}

func TestSessWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.bin")
	ps := sessPrefixes(1000)
	if err := sessWriteFile(path, "sticky.bench.example.", ps); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msgs, err := readWireQueries(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(ps) {
		t.Fatalf("%d queries, want %d", len(msgs), len(ps))
	}
	for i, wire := range msgs {
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if len(m.Question) != 1 || m.Question[0].Name != "sticky.bench.example." || m.Question[0].Qtype != dns.TypeA {
			t.Fatalf("query %d: question %v", i, m.Question)
		}
		e := querySubnet(m)
		if e == nil {
			t.Fatalf("query %d: no ECS", i)
		}
		if got, err := subnetPrefix(e); err != nil || got != ps[i] {
			t.Fatalf("query %d: ECS %v (%v), want %s", i, got, err, ps[i])
		}
	}
}

const sessMetricsSample = `# HELP gslb_session_lookups_total Session look-ups.
# TYPE gslb_session_lookups_total counter
gslb_session_lookups_total{result="created"} 100000
gslb_session_lookups_total{result="error"} 12
gslb_session_lookups_total{result="hit"} 5
gslb_session_lookups_total{result="miss"} 2.5e+06
gslb_session_lookups_total{result="skipped"} 0
gslb_session_breaker_open 1
gslb_session_redis_roundtrips_total{kind="command"} 1234
gslb_session_redis_roundtrips_total{kind="pipeline"} 10
gslb_session_write_batch_size_bucket{le="1"} 3
gslb_session_write_batch_size_sum 7
gslb_dns_responses_total{proto="udp",qtype="A",rcode="NOERROR",zone="bench.example."} 900
gslb_dns_responses_total{proto="udp",qtype="A",rcode="SERVFAIL",zone="bench.example."} 3
gslb_geoip_cache_lookups_total{result="hit"} 40
go_goroutines 12
`

func TestParseSessMetrics(t *testing.T) {
	m, err := parseSessMetrics(strings.NewReader(sessMetricsSample))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["go_goroutines"]; ok {
		t.Error("go_goroutines read: only gslbd's session, response and GeoIP series are")
	}
	if _, ok := m[`gslb_session_write_batch_size_bucket{le="1"}`]; ok {
		t.Error("histogram bucket read")
	}
	if got := m["gslb_session_write_batch_size_sum"]; got != 7 {
		t.Errorf("batch size sum %v", got)
	}
	if got := m["gslb_session_breaker_open"]; got != 1 {
		t.Errorf("breaker %v", got)
	}
	l := m.lookups()
	if l["miss"] != 2500000 || l["created"] != 100000 || l["error"] != 12 || l["hit"] != 5 || l["skipped"] != 0 {
		t.Errorf("lookups %v", l)
	}
	if got := m.sum("gslb_session_redis_roundtrips_total{"); got != 1244 {
		t.Errorf("round trips %v", got)
	}
	if got := m.sum("gslb_dns_responses_total{"); got != 903 {
		t.Errorf("responses %v", got)
	}
	if got := sessSumWith(m, "gslb_dns_responses_total{", `rcode="SERVFAIL"`); got != 3 {
		t.Errorf("SERVFAIL %v", got)
	}
	before := sessMetrics{`gslb_session_lookups_total{result="miss"}`: 500000}
	if d := m.minus(before); d[`gslb_session_lookups_total{result="miss"}`] != 2000000 || d["gslb_session_breaker_open"] != 1 {
		t.Errorf("minus: %v", d)
	}
	if !m.has("gslb_session_lookups_total{") || m.has("gslb_nothing") {
		t.Error("has")
	}
	if _, err := parseSessMetrics(strings.NewReader("gslb_session_breaker_open x\n")); err == nil {
		t.Error("bad value accepted")
	}
}

func TestAffinityShare(t *testing.T) {
	if _, ok := affinityShare(nil); ok {
		t.Error("no look-ups gave a share")
	}
	v, ok := affinityShare(map[string]int64{"hit": 1, "miss": 5, "created": 2, "error": 1, "skipped": 1})
	if !ok || v != 0.8 {
		t.Errorf("share %v %v, want 0.8", v, ok)
	}
}

// What dnsperf 2.10 printed with -S 1 (the first interval is always
// about zero), among its other lines.
const dnsperfPerSecond = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 15354 -d s.txt -l 8 -S 1
[Status] Started at: Wed Nov 25 19:58:41 2026
[Status] Stopping after 8.000000 seconds
1795636722.673620: 0.000016
1795636723.674749: 26597.970891
1795636724.675311: 28443.015026
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         242786
  Queries completed:    242786 (100.00%)
  Queries lost:         0 (0.00%)

  Response codes:       NOERROR 242786 (100.00%)
  Run time (s):         8.001367
  Queries per second:   30343.190680
`

func TestParseIntervals(t *testing.T) {
	iv := parseIntervals([]byte(dnsperfPerSecond))
	if len(iv) != 3 {
		t.Fatalf("%d intervals: %v", len(iv), iv)
	}
	if iv[1].At != 1795636723.674749 || iv[1].QPS != 26597.970891 {
		t.Errorf("second interval %+v", iv[1])
	}
	st, err := parseDNSPerf(strings.NewReader(dnsperfPerSecond))
	if err != nil || st.Completed != 242786 {
		t.Errorf("statistics with -S lines: %+v %v", st, err)
	}
}

func TestReadRESP(t *testing.T) {
	for _, c := range []struct {
		in, want string
		err      bool
	}{
		{"+PONG\r\n", "PONG", false},
		{":100000\r\n", "100000", false},
		{"$5\r\nhello\r\n", "hello", false},
		{"$-1\r\n", "", false},
		{"-ERR unknown command\r\n", "", true},
		{"*1\r\n$1\r\na\r\n", "", true},
		{"$10\r\nshort\r\n", "", true},
	} {
		got, err := readRESP(bufio.NewReader(strings.NewReader(c.in)))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%q: got %q, %v", c.in, got, err)
		}
	}
}

func TestRedisCmd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
		io.WriteString(c, ":42\r\n")
	}()
	v, err := redisCmd(context.Background(), ln.Addr().String(), "DBSIZE")
	if err != nil || v != "42" {
		t.Fatalf("got %q, %v", v, err)
	}
	if req := <-got; req != "*1\r\n$6\r\nDBSIZE\r\n" {
		t.Errorf("sent %q", req)
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_evalsha:calls=4854,usec=41000,usec_per_call=8.45,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_get:calls=4854,usec=3000,usec_per_call=0.6\r\ncmdstat_hello:calls=6,usec=20\r\n"
	got := parseCommandStats(info)
	if got["evalsha"] != 4854 || got["evalsha.usec"] != 41000 || got["get"] != 4854 || got["hello"] != 6 || got["hello.usec"] != 20 || len(got) != 6 {
		t.Errorf("%v", got)
	}
}

func TestSessOptionsCheck(t *testing.T) {
	good := func() sessOptions {
		return sessOptions{
			name: "sticky.bench.example", prefixes: 100000, modes: "off,memory,redis",
			duration: 10 * time.Second, passLimit: time.Minute, rounds: 3, threads: 2, clients: 8, outstanding: 128,
			pin: true, serverCPU: 0, clientCPU: 1, redisCPU: 1,
			fault: true, faultRounds: 1, faultDur: 10 * time.Second, pauseAt: 3 * time.Second, resumeAt: 7 * time.Second, poll: 100 * time.Millisecond,
		}
	}
	o := good()
	if msg := o.check(); msg != "" {
		t.Fatalf("good options: %s", msg)
	}
	if o.name != "sticky.bench.example." || len(o.modeList) != 3 {
		t.Errorf("after check: name %q, modes %v", o.name, o.modeList)
	}
	for name, f := range map[string]func(*sessOptions){
		"short duration":     func(o *sessOptions) { o.duration = time.Millisecond },
		"no prefixes":        func(o *sessOptions) { o.prefixes = 0 },
		"unknown mode":       func(o *sessOptions) { o.modes = "off,disk" },
		"mode twice":         func(o *sessOptions) { o.modes = "off,off" },
		"nothing to do":      func(o *sessOptions) { o.modes, o.fault = "", false },
		"same cores":         func(o *sessOptions) { o.clientCPU = 0 },
		"redis on server":    func(o *sessOptions) { o.redisCPU = 0 },
		"resume before":      func(o *sessOptions) { o.resumeAt = 2 * time.Second },
		"resume after end":   func(o *sessOptions) { o.resumeAt = 11 * time.Second },
		"poll too fast":      func(o *sessOptions) { o.poll = time.Millisecond },
		"bad name":           func(o *sessOptions) { o.name = "a..b" },
		"negative qps":       func(o *sessOptions) { o.qps = -1 },
		"zero rounds":        func(o *sessOptions) { o.rounds = 0 },
		"zero outstanding":   func(o *sessOptions) { o.outstanding = 0 },
		"short pass limit":   func(o *sessOptions) { o.passLimit = 0 },
		"pause in first sec": func(o *sessOptions) { o.pauseAt = 0 },
		"no fault rounds":    func(o *sessOptions) { o.faultRounds = 0 },
	} {
		o := good()
		f(&o)
		if msg := o.check(); msg == "" {
			t.Errorf("%s: accepted", name)
		}
	}
	o = good()
	o.modes, o.fault = "", true
	if msg := o.check(); msg != "" {
		t.Errorf("fault run alone refused: %s", msg)
	}
}

func TestSessionsUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := runSessions([]string{"-h"}, &out, &errb); rc != exitOK {
		t.Errorf("-h: exit %d", rc)
	}
	if rc := runSessions([]string{"-nope"}, &out, &errb); rc != exitUsage {
		t.Errorf("unknown flag: exit %d", rc)
	}
	if rc := runSessions([]string{"extra"}, &out, &errb); rc != exitUsage {
		t.Errorf("argument: exit %d", rc)
	}
	if rc := runSessions([]string{"-modes", "bogus"}, &out, &errb); rc != exitUsage {
		t.Errorf("bad mode: exit %d", rc)
	}
	errb.Reset()
	if rc := runSessions([]string{"-dnsperf", filepath.Join(t.TempDir(), "no-dnsperf")}, &out, &errb); rc != exitFail || !strings.Contains(errb.String(), "not found") {
		t.Errorf("missing dnsperf: exit %d, %q", rc, errb.String())
	}
}

func TestSessSummarise(t *testing.T) {
	run := func(round int, mode string, qps, cpu float64, l map[string]int64) sessResult {
		return sessResult{Round: round, Mode: mode, Load: "saturation", CPUPerQ: cpu,
			DNSPerf: stats{QPS: qps, Completed: int64(qps * 10), Rcodes: map[string]int64{"NOERROR": int64(qps * 10)}},
			Pass:    sessPass{Completed: 1000}, Lookups: l}
	}
	all := func(n int64) map[string]int64 { return map[string]int64{"miss": n} }
	rep := &sessReport{Settings: sessSettings{Rounds: 2, Prefixes: 1000}, Runs: []sessResult{
		run(1, sessOff, 40000, 25, nil), run(1, sessMemory, 38000, 26, all(380000)), run(1, sessRedis, 20000, 50, all(200000)),
		run(2, sessRedis, 22000, 45, all(220000)), run(2, sessMemory, 36000, 27, all(360000)), run(2, sessOff, 40000, 25, nil),
	}}
	rep.summarise()
	if len(rep.Summary) != 3 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	by := map[string]sessSummary{}
	for _, s := range rep.Summary {
		by[s.Mode] = s
	}
	if s := by[sessOff]; s.MeetsAim != nil || len(s.QPSRatios) != 0 || s.QPS != 40000 {
		t.Errorf("off: %+v", s)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if s := by[sessMemory]; !near(s.QPSRatio, 0.925) || s.MeetsAim == nil || !*s.MeetsAim || !near(s.CPURatio, 1.06) || s.Affinity != 1 {
		t.Errorf("memory: %+v", s)
	}
	if s := by[sessRedis]; !near(s.QPSRatio, 0.525) || s.MeetsAim == nil || *s.MeetsAim || !near(s.CPURatio, 1.9) {
		t.Errorf("redis: %+v", s)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %v", rep.Warnings)
	}
	// A run that lost queries, answered SERVFAIL and looked up fewer
	// sessions than it answered is warned about.
	bad := run(1, sessRedis, 100, 10, all(10))
	bad.DNSPerf.Lost, bad.NonNoError = 3, 2
	rep = &sessReport{Settings: sessSettings{Rounds: 1, Prefixes: 1000}, Runs: []sessResult{bad}}
	rep.summarise()
	if len(rep.Warnings) != 3 {
		t.Errorf("warnings %v", rep.Warnings)
	}
}

// sessSynthPolls: 10000 answers/s, except 2000/s from 3.0 to 3.3 s; the
// breaker gauge reads 1 from 3.6 to 7.4 s; look-ups skipped from 3.1 s to
// the resume, answered by Redis before and after.
func sessSynthPolls() []sessPoll {
	var polls []sessPoll
	var resp, skipped, miss, rt float64
	for i := 0; i <= 100; i++ {
		t := float64(i) / 10
		p := sessPoll{T: t, Responses: resp, Skipped: skipped, Miss: miss, RoundTrip: rt}
		if t >= 3.6-1e-9 && t < 7.4-1e-9 {
			p.Breaker = 1
		}
		polls = append(polls, p)
		rate := 10000.0
		if t >= 3.0-1e-9 && t < 3.3-1e-9 {
			rate = 2000
		}
		resp += rate / 10
		if t >= 3.0-1e-9 && t < 7.0-1e-9 {
			skipped += rate / 10
		} else {
			miss += rate / 10
			rt += rate / 10
		}
	}
	return polls
}

func TestSessAnalyse(t *testing.T) {
	a := sessAnalyse(sessSynthPolls(), 3.0, 7.0)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if !near(a.PreRate, 10000) || !near(a.PauseRate, 10000) || !near(a.PostRate, 10000) {
		t.Errorf("rates: pre %v pause %v post %v", a.PreRate, a.PauseRate, a.PostRate)
	}
	if !near(a.MinRate, 2000) || !near(a.MinAt, 3.1) {
		t.Errorf("min %v at %v", a.MinRate, a.MinAt)
	}
	if a.FirstFailure == nil || !near(*a.FirstFailure, 3.1) {
		t.Errorf("first failure %v", a.FirstFailure)
	}
	if a.GaugeOpen == nil || !near(*a.GaugeOpen, 3.6) || a.GaugeClosed == nil || !near(*a.GaugeClosed, 7.4) {
		t.Errorf("gauge open %v closed %v", a.GaugeOpen, a.GaugeClosed)
	}
	if a.LookupsBack == nil || !near(*a.LookupsBack, 7.1) {
		t.Errorf("look-ups back %v", a.LookupsBack)
	}
	if !near(a.Recovered, 3.3) || len(a.Low) != 3 {
		t.Errorf("recovered %v, low %v", a.Recovered, a.Low)
	}
	if a.WithinGauge == nil || !*a.WithinGauge || a.WithinFirst == nil || !*a.WithinFirst {
		t.Errorf("within: %v %v", a.WithinGauge, a.WithinFirst)
	}
	// Low from 3.0 to 3.3 s: the first window back ends at 3.4 s; the
	// gauge read 1 at 3.6, when the rate was already back.
	if a.BackFirst == nil || !near(*a.BackFirst, 3.4) || a.BackGauge == nil || !near(*a.BackGauge, 3.7) {
		t.Errorf("back after first failure %v, after gauge %v", a.BackFirst, a.BackGauge)
	}
	// From 3.1 to 4.1 s: 0.2 s at 2000/s, 0.8 s at 10000/s.
	if !near(a.FirstSecond, 8400) {
		t.Errorf("first second %v", a.FirstSecond)
	}

	// The rate stays low until 5 s: not back within a second of either.
	polls := sessSynthPolls()
	var extra float64
	for i := range polls {
		polls[i].Responses -= extra
		if polls[i].T >= 3.3-1e-9 && polls[i].T < 5.0-1e-9 {
			extra += 800 // 8000/s less
		}
	}
	a = sessAnalyse(polls, 3.0, 7.0)
	if !near(a.Recovered, 5.0) || a.WithinGauge == nil || *a.WithinGauge || *a.WithinFirst || a.BackFirst == nil || !near(*a.BackFirst, 5.1) {
		t.Errorf("slow recovery: recovered %v, back %v, within gauge %v first %v", a.Recovered, a.BackFirst, *a.WithinGauge, *a.WithinFirst)
	}

	// A breaker that never opens, and no polls at all.
	polls = sessSynthPolls()
	for i := range polls {
		polls[i].Breaker = 0
	}
	if a := sessAnalyse(polls, 3.0, 7.0); a.GaugeOpen != nil || a.WithinGauge != nil {
		t.Errorf("gauge never 1: %+v", a)
	}
	if a := sessAnalyse(nil, 3.0, 7.0); a.PreRate != 0 || a.MinRate != 0 {
		t.Errorf("no polls: %+v", a)
	}
	f := &sessFault{DNSPerf: stats{Rcodes: map[string]int64{"NOERROR": 10, "SERVFAIL": 2}, Completed: 12, Lost: 1}, Servfail: 2, NonNoError: 2}
	if w := f.warnings(); len(w) != 3 {
		t.Errorf("fault warnings %v", w)
	}
}

func TestSessOtherPct(t *testing.T) {
	a := sessPoll{ProcTicks: 100, CoreBusy: 1000, CoreAll: 2000}
	b := sessPoll{ProcTicks: 106, CoreBusy: 1010, CoreAll: 2010}
	if got := sessOtherPct(a, b); math.Abs(got-40) > 1e-9 {
		t.Errorf("other %v, want 40", got)
	}
	if got := sessOtherPct(a, a); got != -1 {
		t.Errorf("no ticks: %v, want -1", got)
	}
	b.ProcTicks = 120 // read a moment apart: never below zero
	if got := sessOtherPct(a, b); got != 0 {
		t.Errorf("negative clamped: %v", got)
	}
}

func TestSessPrint(t *testing.T) {
	rep := &sessReport{Settings: sessSettings{Rounds: 1, Prefixes: 1000, Name: "sticky.bench.example."}}
	off := sessResult{Round: 1, Mode: sessOff, Load: "saturation", CPUPerQ: 25, DNSPerf: stats{QPS: 40000, Completed: 400000}}
	red := sessResult{Round: 1, Mode: sessRedis, Load: "saturation", CPUPerQ: 50, DNSPerf: stats{QPS: 20000, Completed: 200000},
		Lookups: map[string]int64{"miss": 200000}, RoundTrips: map[string]int64{"command": 200000, "pipeline": 10}, RTPerQ: 1.00005,
		RedisCalls: map[string]int64{"evalsha": 200000}}
	rep.Runs = []sessResult{off, red}
	rep.summarise()
	f := &sessFault{Run: 1, Polls: sessSynthPolls(), PauseAt: 3, ResumeAt: 7}
	f.sessFaultAnalysis = sessAnalyse(f.Polls, 3, 7)
	rep.Faults = []*sessFault{f}
	var b bytes.Buffer
	rep.print(&b)
	for _, want := range []string{"| 1 | redis | saturation | 20000 | 0.50 |", "| saturation | redis | 100% | 20000 | 50.00 | 1.000 | 0.50 |", "**not met**", "breaker_open read 1 at 3.60 s", "Fault run 1 (store redis)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
