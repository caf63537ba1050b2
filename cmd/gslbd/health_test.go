package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

type healthEndpoint struct {
	*httptest.Server
	up   atomic.Bool
	load atomic.Int64
}

func newHealthEndpoint(t *testing.T) *healthEndpoint {
	h := &healthEndpoint{}
	h.up.Store(true)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"load": %d, "latency": 20}`, h.load.Load())
	}))
	t.Cleanup(h.Close)
	return h
}

const healthConfig = `
instance: {name: health-it}
http: {allow_unauthenticated_loopback: true}
health: {ttl_factor: 0.5, min_ttl: 5}
health_checks:
  web: {type: http, path: /health, interval: 100ms, timeout: 80ms, rise: 2, fall: 2}
datacenters:
  - id: primary
    lat: 50.1
    lon: 8.7
    endpoints: [{address: 192.0.2.1, check: web, check_address: "%s"}]
  - id: backup
    lat: 39.0
    lon: -77.5
    endpoints: [{address: 192.0.2.2, check: web, check_address: "%s"}]
zones:
  - origin: h.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: failover, datacenters: [primary, backup], ttl: 30}
`

// TestHealthDrivesAnswers: probes of real HTTP endpoints move the answer
// to the backup and back, the TTL shortens while a datacenter is down,
// operators override by API, and status shows it all.
func TestHealthDrivesAnswers(t *testing.T) {
	p, b := newHealthEndpoint(t), newHealthEndpoint(t)
	dir := t.TempDir()
	body := fmt.Sprintf(healthConfig, p.Listener.Addr(), b.Listener.Addr())
	d := startDaemon(t, writeConfig(t, dir, body))
	answer := func() (string, uint32) {
		r := d.exchange(t, "udp", "www.h.test.", dns.TypeA)
		if len(r.Answer) != 1 {
			return "", 0
		}
		return r.Answer[0].(*dns.A).A.String(), r.Answer[0].Header().Ttl
	}
	// Ready only after the first round: both were probed.
	status := func() map[string]any {
		_, out := httpDo(t, "GET", "http://"+d.http+"/api/v1/status", "")
		var st map[string]any
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		return st
	}
	if !strings.Contains(fmt.Sprint(status()), "last_result:ok") {
		t.Errorf("ready before the first probe round: %v", status())
	}
	if a, ttl := answer(); a != "192.0.2.1" || ttl != 30 {
		t.Fatalf("healthy: got %s ttl %d, want 192.0.2.1 ttl 30", a, ttl)
	}

	// The primary fails: within interval×fall+timeout+jitter answers move,
	// and carry half the TTL while a datacenter is down.
	p.up.Store(false)
	eventually(t, "failover to the backup", func() bool { a, _ := answer(); return a == "192.0.2.2" })
	if _, ttl := answer(); ttl != 15 {
		t.Errorf("TTL while the primary is down: got %d, want 15", ttl)
	}
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	for _, want := range []string{`gslb_datacenter_up{datacenter="primary"} 0`, `gslb_endpoint_up{datacenter="primary",endpoint="192.0.2.1"} 0`,
		`gslb_health_transitions_total{datacenter="primary",kind="datacenter",state="down"} 1`, `gslb_probe_duration_seconds_count{check="web",result="failure"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: want %s in\n%s", want, grep(metrics, "gslb_"))
		}
	}
	if !d.logged(`"msg":"datacenter down"`, `"datacenter":"primary"`, `"event_id":"`) {
		t.Errorf("no datacenter down log line with an event id")
	}
	// Back after rise good probes.
	p.up.Store(true)
	eventually(t, "failback to the primary", func() bool { a, _ := answer(); return a == "192.0.2.1" })

	// Drain by API: token-guarded (the loopback exception is on here),
	// reason required, reflected in the next answer and in status.
	url := "http://" + d.http + "/api/v1/datacenters/primary/override"
	if code, out := httpPost(t, url, `{"state":"down"}`); code != 400 || !strings.Contains(out, "reason") {
		t.Errorf("override without a reason: got %d %s", code, out)
	}
	if code, out := httpPost(t, url, `{"state":"down","reason":"maintenance window"}`); code != 200 {
		t.Fatalf("drain: got %d %s", code, out)
	}
	if a, _ := answer(); a != "192.0.2.2" {
		t.Errorf("after drain: got %s, want the backup", a)
	}
	if s := fmt.Sprint(status()); !strings.Contains(s, "maintenance window") {
		t.Errorf("status does not show the override: %s", s)
	}
	if code, _ := httpPost(t, "http://"+d.http+"/api/v1/datacenters/nowhere/override", `{"state":"down","reason":"x"}`); code != 404 {
		t.Errorf("unknown datacenter: got %d, want 404", code)
	}
	if code, _ := httpPost(t, url, `{"state":"auto"}`); code != 200 {
		t.Fatalf("undrain failed")
	}
	if a, _ := answer(); a != "192.0.2.1" {
		t.Errorf("after undrain: got %s, want the primary", a)
	}
	// Endpoint override.
	if code, out := httpPost(t, "http://"+d.http+"/api/v1/datacenters/primary/endpoints/192.0.2.1/override", `{"state":"down","reason":"bad host"}`); code != 200 {
		t.Fatalf("endpoint override: %d %s", code, out)
	}
	if a, _ := answer(); a != "192.0.2.2" {
		t.Errorf("primary's only endpoint forced down: got %s", a)
	}

	// A reload that does not change the endpoint keeps its state and since.
	before := endpointSince(t, status(), "backup")
	if out, code := runCLI(t, "ctl", "reload", "--addr", d.http); code != 0 {
		t.Fatalf("reload: %s", out)
	}
	if after := endpointSince(t, status(), "backup"); after != before {
		t.Errorf("since after reload: got %s, want %s kept", after, before)
	}
	if a, _ := answer(); a != "192.0.2.2" {
		t.Errorf("override lost across the reload: got %s", a)
	}
}

func endpointSince(t *testing.T, st map[string]any, dc string) string {
	t.Helper()
	for _, d := range st["health"].(map[string]any)["datacenters"].([]any) {
		dm := d.(map[string]any)
		if dm["id"] == dc {
			return dm["endpoints"].([]any)[0].(map[string]any)["since"].(string)
		}
	}
	t.Fatalf("no datacenter %s in status", dc)
	return ""
}

func httpPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}
