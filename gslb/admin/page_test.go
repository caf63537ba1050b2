package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/config"
)

const pageConfig = `
instance: {name: page-1}
datacenters:
  - {id: dc-a, region: eu-west, capacity: 1000, load: 420, latency: 12ms, endpoints: [{address: 192.0.2.1}, {address: 192.0.2.2}]}
  - {id: dc-b, region: us-east, capacity: 500, endpoints: [{address: 192.0.2.3}]}
zones:
  - origin: page.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, datacenters: [dc-a, dc-b]}
`

type fakeSnapshots struct{ s *gslb.Snapshot }

func (f fakeSnapshots) Snapshot() *gslb.Snapshot { return f.s }

// fakeHealth answers StatusJSON with health's JSON shape, written out:
// admin must not depend on the health package.
type fakeHealth struct{ status string }

func (f fakeHealth) StatusJSON() any                { return json.RawMessage(f.status) }
func (fakeHealth) Override(_, _, _, _ string) error { return errors.New("not here") }

const hostile = `<script>alert("x")</script>`

var pageStatus = `{"datacenters": [
  {"id": "dc-a", "state": "up", "since": "2025-01-02T03:04:05Z", "min_healthy": 1, "slow_start_share": 0.25,
   "endpoints": [
     {"address": "192.0.2.1", "check": "http", "state": "up", "since": "2025-01-02T03:04:05Z", "quality": 0.97, "rtt_ms": 3.2, "loss": 0, "last_result": "ok"},
     {"address": "192.0.2.2", "check": "http", "state": "down", "since": "2025-01-02T03:04:05Z", "quality": 0.41, "rtt_ms": 0, "loss": 1, "last_result": "connection refused"}]},
  {"id": "dc-b", "state": "down", "since": "2025-01-02T03:00:00Z", "min_healthy": 1,
   "override": {"state": "down", "reason": ` + jsonString(hostile) + `, "since": "2025-01-02T03:00:00Z"},
   "endpoints": [{"address": "192.0.2.3", "state": "up", "since": "2025-01-02T03:00:00Z", "quality": 0, "rtt_ms": 0, "loss": 0}]}
]}`

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func pageSnapshot(t *testing.T) *gslb.Snapshot {
	t.Helper()
	cfg, err := config.Parse("page.yaml", []byte(pageConfig), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := gslb.NewSnapshot(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeCounters is an injectable answer source: each sample returns the
// next cumulative reading.
type fakeCounters struct{ readings []map[answerKey]float64 }

func (f *fakeCounters) source() (map[answerKey]float64, error) {
	r := f.readings[0]
	if len(f.readings) > 1 {
		f.readings = f.readings[1:]
	}
	return r, nil
}

func getPage(t *testing.T, h http.Handler) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestPage(t *testing.T) {
	events := []map[string]any{
		{"time": "2025-01-02T03:00:00Z", "kind": "datacenter", "datacenter": "dc-b", "from": "up", "to": "down", "reason": "override by operator: " + hostile},
		{"time": time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), "kind": "endpoint", "datacenter": "dc-a", "endpoint": "192.0.2.2", "from": "up", "to": "down", "reason": "connection refused"},
	}
	drills := []map[string]any{
		{"id": "7301", "service": "www.page.test.", "fail": "dc-a", "mode": "dry-run", "success": true, "success_rate": 1.0, "duration_ms": 1234.0, "finished": "2025-01-02T04:00:00Z"},
	}
	h := New(Options{
		Gatherer:  prometheus.NewRegistry(),
		Snapshots: fakeSnapshots{pageSnapshot(t)},
		Health:    fakeHealth{pageStatus},
		Page: PageOptions{
			Instance: "page-1", Version: "v1.2.3",
			Events: func() []map[string]any { return events },
			Drills: func() []map[string]any { return drills },
		},
	})
	h.SetReady()
	// Three readings make two intervals: www answered 30 from dc-a and 10
	// from dc-b, all.page.test. only from dc-b; api's counter did not move.
	fc := &fakeCounters{readings: []map[answerKey]float64{
		{{"www.page.test.", "dc-a"}: 100, {"www.page.test.", "dc-b"}: 50, {"api.page.test.", "dc-a"}: 9},
		{{"www.page.test.", "dc-a"}: 120, {"www.page.test.", "dc-b"}: 55, {"api.page.test.", "dc-a"}: 9},
		{{"www.page.test.", "dc-a"}: 130, {"www.page.test.", "dc-b"}: 60, {"api.page.test.", "dc-a"}: 9, {"all.page.test.", "dc-b"}: 4},
	}}
	s := h.opts.Page.sampler
	s.source = fc.source
	clock := time.Date(2025, 1, 2, 4, 0, 0, 0, time.UTC)
	s.now = func() time.Time { clock = clock.Add(10 * time.Second); return clock }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.Start(ctx) // takes the first reading
	s.sample(0)
	s.sample(0)

	resp, body := getPage(t, h)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP: got %q, want scripts refused", csp)
	}
	for _, want := range []string{
		"page-1", "v1.2.3", `id="readiness">ready<`,
		// Datacenter rows: state, load against capacity, latency,
		// endpoints, best quality, slow start; the override forces dc-b.
		`<tr id="dc-dc-a" data-state="up">`, "eu-west", "420 / 1000 (42%)", "width: 42%", "12.0", "1 / 2", "0.97", "25%",
		`<tr id="dc-dc-b" data-state="forced down">`, "0 / 500 (0%)", `class="state forced">forced down<`,
		"connection refused",
		// Shares over the window: www 30 of 40 from dc-a, 10 from dc-b.
		"(last 20 s)", `data-service="www.page.test."`, "40 answers", "75%", "25%", "width: 75%",
		`data-service="all.page.test."`, "100%",
		// Events, newest first, and drills.
		"192.0.2.2", "up → <span class=\"state down\">down</span>",
		"7301", "dry-run", ">yes (100%)<", "1.234s",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "api.page.test.") {
		t.Error("a service with no answers in the window is shown")
	}
	if i, j := strings.Index(body, "192.0.2.2</td>"), strings.Index(body, "override by operator"); i < 0 || j < 0 || i > j {
		t.Error("events are not newest first")
	}
	// The hostile reason (override and event) is escaped, and the page
	// has no script at all.
	if strings.Contains(body, hostile) || strings.Contains(strings.ToLower(body), "<script") {
		t.Errorf("page carries a script tag:\n%s", body)
	}
	if n := strings.Count(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"); n != 2 {
		t.Errorf("escaped hostile string: found %d times, want 2 (override, event)", n)
	}
	if strings.Contains(body, "ZgotmplZ") {
		t.Error("html/template refused a value (ZgotmplZ)")
	}
	if regexp.MustCompile(`(?i)\son[a-z]+=|javascript:|<script|src=`).MatchString(body) {
		t.Error("page uses JavaScript or loads something")
	}
}

// TestPageSharesFromGatherer reads the real counter through a registry, as
// the daemon does.
func TestPageSharesFromGatherer(t *testing.T) {
	reg := prometheus.NewRegistry()
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{Name: answersName, Help: "test"}, []string{"service", "datacenter"})
	reg.MustRegister(answers)
	src := gathererSource(reg)
	s := newSampler(src)
	s.sample(0)
	answers.WithLabelValues("www.x.", "a").Add(3)
	answers.WithLabelValues("www.x.", "b").Add(1)
	s.sample(0)
	out, _, note := s.shares()
	if note != "" || len(out) != 1 || len(out[0].Rows) != 2 || out[0].Rows[0].Share != "75%" || out[0].Rows[1].Share != "25%" {
		t.Errorf("got %+v %q, want www.x. a 75%% b 25%%", out, note)
	}
}

func TestPageSamplerBounded(t *testing.T) {
	n := 0.0
	s := newSampler(func() (map[answerKey]float64, error) {
		n += 10
		return map[answerKey]float64{{"s.", "a"}: n}, nil
	})
	for range 100 {
		s.sample(0)
	}
	if s.n != shareSamples {
		t.Errorf("ring holds %d intervals, want %d", s.n, shareSamples)
	}
	out, _, _ := s.shares()
	if len(out) != 1 || out[0].Total != "60" {
		t.Errorf("got %+v, want 60 answers in the window", out)
	}
	// A counter that goes back (a reset) counts from zero, never negative.
	n = -5
	s.sample(0)
	if out, _, _ := s.shares(); out[0].Total != "55" {
		t.Errorf("after a reset: got %s answers, want 55", out[0].Total)
	}
}

func TestPageNoAnswersYet(t *testing.T) {
	h := New(Options{Gatherer: prometheus.NewRegistry(), Snapshots: fakeSnapshots{pageSnapshot(t)}})
	_, body := getPage(t, h)
	for _, want := range []string{"no answers yet", `id="readiness">starting<`, `<tr id="dc-dc-a" data-state="up">`, "no health checking"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "Recent events") || strings.Contains(body, "Recent drills") {
		t.Error("events or drills shown without a provider")
	}
	// Only / is the page: other paths stay 404.
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: got %d, want 404", resp.StatusCode)
	}
}

func TestPageSamplerStopsWithContext(t *testing.T) {
	s := newSampler(func() (map[answerKey]float64, error) { return map[answerKey]float64{}, nil })
	ctx, cancel := context.WithCancel(context.Background())
	s.start(ctx)
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		running := s.running
		s.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sampler still runs after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A page view after shutdown does not start it again.
	s.viewed(time.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		t.Error("a page view restarted a sampler whose context had ended")
	}
}
