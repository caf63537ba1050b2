package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

type drillReport struct {
	ID          string  `json:"id"`
	Success     bool    `json:"success"`
	SuccessRate float64 `json:"success_rate"`
	Steps       []struct {
		Name, Status, Result string
	} `json:"steps"`
	Probes []struct {
		Client        string
		Before, After []string
		OK            bool
	} `json:"probes"`
	ExpectedLoad map[string]float64 `json:"expected_load"`
}

func postDrill(t *testing.T, d *daemonProc, body string) (int, drillReport, string) {
	t.Helper()
	code, out := httpPost(t, "http://"+d.http+"/api/v1/drills", body)
	var rep drillReport
	if code == 200 {
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report: %v\n%s", err, out)
		}
	}
	return code, rep, out
}

func overrideOf(t *testing.T, d *daemonProc, dc string) any {
	t.Helper()
	_, out := httpDo(t, "GET", "http://"+d.http+"/api/v1/status", "")
	var st struct {
		Health struct {
			Datacenters []struct {
				ID       string
				Override any
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, x := range st.Health.Datacenters {
		if x.ID == dc {
			return x.Override
		}
	}
	t.Fatalf("no datacenter %s", dc)
	return nil
}

// TestDrills runs dry-run and live drills end to end against real
// loopback health servers.
func TestDrills(t *testing.T) {
	p, b := newHealthEndpoint(t), newHealthEndpoint(t)
	cfg := fmt.Sprintf(healthConfig, p.Listener.Addr(), b.Listener.Addr())
	file := writeConfig(t, t.TempDir(), cfg)
	d := startDaemon(t, file)

	// Dry run: the answers a client would get without primary, and
	// nothing real moves.
	code, rep, out := postDrill(t, d, `{"service": "www.h.test", "fail": "primary", "probes": ["81.2.69.142", "198.51.100.0/24"]}`)
	if code != 200 || !rep.Success || rep.SuccessRate != 1 || len(rep.Steps) != 5 {
		t.Fatalf("dry run: %d %s", code, out)
	}
	if pr := rep.Probes[0]; pr.Before[0] != "primary" || pr.After[0] != "backup" {
		t.Errorf("dry run probe: %+v", pr)
	}
	if a := d.exchange(t, "udp", "www.h.test.", 1); a.Answer[0].String() == "" || !strings.Contains(a.Answer[0].String(), "192.0.2.1") {
		t.Errorf("a dry run moved real answers: %v", a.Answer)
	}

	// Live: forced down on this instance for the drill, answers checked
	// through the DNS listener, then restored.
	code, rep, out = postDrill(t, d, `{"service": "www.h.test.", "fail": "primary", "probes": ["203.0.113.7"], "mode": "live"}`)
	if code != 200 || !rep.Success {
		t.Fatalf("live drill: %d %s", code, out)
	}
	if o := overrideOf(t, d, "primary"); o != nil {
		t.Errorf("override left after a live drill: %v", o)
	}
	if a := d.exchange(t, "udp", "www.h.test.", 1); !strings.Contains(a.Answer[0].String(), "192.0.2.1") {
		t.Errorf("after the live drill: %v, want the primary again", a.Answer)
	}

	// History.
	_, hist := httpDo(t, "GET", "http://"+d.http+"/api/v1/drills", "")
	if strings.Count(hist, `"mode": "`) != 2 {
		t.Errorf("history: want 2 drills:\n%s", hist)
	}
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	if !strings.Contains(metrics, `gslb_drill_runs_total{datacenter="primary",mode="live",result="success",service="www.h.test."} 1`) {
		t.Errorf("drill metric:\n%s", grep(metrics, "gslb_drill"))
	}

	// Bad requests: 400 with the reason, before any step.
	for _, bad := range []struct{ body, want string }{
		{`{"service": "nope.h.test.", "fail": "primary", "probes": ["1.2.3.4"]}`, "not a configured service"},
		{`{"service": "www.h.test.", "fail": "mars", "probes": ["1.2.3.4"]}`, "not one of the service's datacenters"},
		{`{"service": "www.h.test.", "fail": "primary", "probes": ["x"]}`, `probes[0]: \"x\" is not an IP address`},
		{`{"service": "www.h.test.", "fail": "primary", "probes": ["1.2.3.4"], "mode": "wild"}`, "mode"},
		{`{"service": "www.h.test.", "fail": "primary", "probes": ["1.2.3.4"], "colour": "red"}`, `unknown field \"colour\"`},
	} {
		code, _, out := postDrill(t, d, bad.body)
		if code != 400 || !strings.Contains(out, bad.want) {
			t.Errorf("%s: got %d %s, want 400 with %q", bad.body, code, out, bad.want)
		}
	}
	// Losing the backup while the primary is drained would leave nothing.
	httpPost(t, "http://"+d.http+"/api/v1/datacenters/primary/override", `{"state":"down","reason":"test"}`)
	if code, _, out := postDrill(t, d, `{"service": "www.h.test.", "fail": "backup", "probes": ["1.2.3.4"]}`); code != 400 || !strings.Contains(out, "no healthy datacenter") {
		t.Errorf("drill that would leave nothing: %d %s", code, out)
	}
	httpPost(t, "http://"+d.http+"/api/v1/datacenters/primary/override", `{"state":"auto"}`)
}

// TestDrillFailureRestores: a live drill whose capacity check fails still
// restores, and a daemon killed mid-drill restarts with no override.
func TestDrillFailureRestores(t *testing.T) {
	p, b := newHealthEndpoint(t), newHealthEndpoint(t)
	// The backup reports itself more than half full, and the primary's
	// load would overflow it.
	p.load.Store(700)
	b.load.Store(600)
	file := writeConfig(t, t.TempDir(), fmt.Sprintf(healthConfig, p.Listener.Addr(), b.Listener.Addr()))
	d := startDaemon(t, file)
	eventually(t, "reported loads in the snapshot", func() bool {
		_, out := httpDo(t, "GET", "http://"+d.http+"/api/v1/status", "")
		return strings.Contains(out, `"reported_load": 700`) && strings.Contains(out, `"reported_load": 600`)
	})
	code, rep, out := postDrill(t, d, `{"service": "www.h.test.", "fail": "primary", "probes": ["203.0.113.7"], "mode": "live"}`)
	if code != 200 || rep.Success {
		t.Fatalf("want a failed drill report: %d %s", code, out)
	}
	if rep.Steps[3].Status != "failed" || !strings.Contains(rep.Steps[3].Result, "backup (1300 of 1000)") || rep.Steps[4].Status != "ok" {
		t.Errorf("steps: %+v", rep.Steps)
	}
	if o := overrideOf(t, d, "primary"); o != nil {
		t.Errorf("override left after a failed drill: %v", o)
	}

	// Killed while the drill holds primary down: the restarted daemon has
	// no override.
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The daemon dies under this request: its error is expected.
		resp, err := http.Post("http://"+d.http+"/api/v1/drills", "application/json",
			strings.NewReader(`{"service": "www.h.test.", "fail": "primary", "probes": ["203.0.113.7"], "mode": "live", "settle": "30s"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, "the drill's override", func() bool { return overrideOf(t, d, "primary") != nil })
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the drill request did not end when the daemon died")
	}
	<-d.exited
	d2 := startDaemon(t, file)
	if o := overrideOf(t, d2, "primary"); o != nil {
		t.Errorf("override after restart: %v", o)
	}
}

// TestScheduledDrill: a drill in the configuration runs on its schedule
// and its outcome is a metric.
func TestScheduledDrill(t *testing.T) {
	p, b := newHealthEndpoint(t), newHealthEndpoint(t)
	cfg := fmt.Sprintf(healthConfig, p.Listener.Addr(), b.Listener.Addr()) +
		"drills: [{service: www.h.test., fail: primary, probes: [203.0.113.7], every: 1s}]\n"
	d := startDaemon(t, writeConfig(t, t.TempDir(), cfg))
	eventually(t, "the scheduled drill's metric", func() bool {
		_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
		return strings.Contains(metrics, `gslb_drill_last_success{datacenter="primary",service="www.h.test."} 1`)
	})
	if !d.logged(`"msg":"scheduled drill succeeded"`, `"service":"www.h.test."`) {
		t.Errorf("no log line for the scheduled drill")
	}
}
