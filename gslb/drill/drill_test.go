package drill

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/config"
)

const drillConfig = `
datacenters:
  - {id: a, lat: 50.1, lon: 8.7, load: 600, endpoints: [{address: 192.0.2.1}]}
  - {id: b, lat: 39.0, lon: -77.5, load: %s, endpoints: [{address: 192.0.2.2}]}
  - {id: c, lat: 1.3, lon: 103.8, drain: true, endpoints: [{address: 192.0.2.3}]}
zones:
  - origin: d.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [192.0.2.53]}]
    services:
      - {name: www, policy: failover, datacenters: [a, b, c]}
      - {name: solo, policy: failover, datacenters: [a, c]}
`

// fakeEnv serves a fixed snapshot and records overrides.
type fakeEnv struct {
	snap      *gslb.Snapshot
	overrides []string
	failOn    string
}

func (e *fakeEnv) Snapshot() *gslb.Snapshot { return e.snap }
func (e *fakeEnv) Override(dc, ep, state, reason string) error {
	if state == e.failOn {
		return errors.New("refused")
	}
	e.overrides = append(e.overrides, dc+"="+state)
	return nil
}
func (e *fakeEnv) HasOverride(dc string) bool { return false }
func (e *fakeEnv) DNSAddr() string            { return "" }

func newRunner(t *testing.T, bLoad string) (*Runner, *fakeEnv) {
	t.Helper()
	cfg, err := config.Parse("d.yaml", []byte(strings.Replace(drillConfig, "%s", bLoad, 1)), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := gslb.NewSnapshot(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &fakeEnv{snap: s}
	return New(env, nil, prometheus.NewRegistry()), env
}

func TestDryRun(t *testing.T) {
	r, env := newRunner(t, "100")
	rep, err := r.Run(context.Background(), Request{Service: "www.d.test", Fail: "a", Probes: []string{"198.51.100.7", "203.0.113.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Success || rep.SuccessRate != 1 || rep.Mode != "dry-run" {
		t.Fatalf("report: %+v", rep)
	}
	if p := rep.Probes[0]; p.Before[0] != "a" || p.After[0] != "b" {
		t.Errorf("probe: %+v", p)
	}
	// b takes a's whole load: 100 + 600.
	if got := rep.ExpectedLoad["b"]; got != 700 {
		t.Errorf("expected load of b: got %v, want 700", got)
	}
	if len(env.overrides) != 0 {
		t.Errorf("a dry run set overrides: %v", env.overrides)
	}
	if len(r.History()) != 1 {
		t.Errorf("history: %d reports", len(r.History()))
	}
}

func TestCapacityFailureStillRestores(t *testing.T) {
	r, env := newRunner(t, "500")
	rep, err := r.Run(context.Background(), Request{Service: "www.d.test.", Fail: "a", Probes: []string{"198.51.100.7"}, Mode: "live"})
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]string{}
	for _, s := range rep.Steps {
		steps[s.Name] = s.Status + ": " + s.Result
	}
	// Live probing asks the DNS listener, which this fake has not: step 3
	// fails, step 4 is skipped, and restore still runs.
	if rep.Success || !strings.HasPrefix(steps["verify the receiving datacenters have room"], "skipped") ||
		!strings.HasPrefix(steps["restore"], "ok") {
		t.Errorf("steps: %v", steps)
	}
	if strings.Join(env.overrides, ",") != "a=down,a=auto" {
		t.Errorf("overrides: %v, want a forced down then back to auto", env.overrides)
	}
}

func TestValidate(t *testing.T) {
	r, _ := newRunner(t, "100")
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Service: "nope.d.test.", Fail: "a", Probes: []string{"1.2.3.4"}}, "not a configured service"},
		{Request{Service: "www.d.test.", Fail: "z", Probes: []string{"1.2.3.4"}}, "not one of the service's datacenters"},
		{Request{Service: "solo.d.test.", Fail: "a", Probes: []string{"1.2.3.4"}}, "no healthy datacenter"},
		{Request{Service: "www.d.test.", Fail: "a"}, "probes"},
		{Request{Service: "www.d.test.", Fail: "a", Probes: []string{"nope"}}, "probes[0]"},
		{Request{Service: "www.d.test.", Fail: "a", Probes: []string{"1.2.3.4"}, Mode: "chaos"}, "mode"},
		{Request{Service: "www.d.test.", Fail: "a", Probes: []string{"1.2.3.4"}, Settle: "forever"}, "settle"},
	} {
		if _, err := r.Run(context.Background(), tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error with %q", tc.req, err, tc.want)
		}
	}
	if len(r.History()) != 0 {
		t.Errorf("refused drills entered the history")
	}
}
