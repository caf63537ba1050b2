package health

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestSetEffective: an external verdict replaces the probes' in the
// datacenter's state and the view, overrides still come first, and nil
// hands the endpoint back to the probes.
func TestSetEffective(t *testing.T) {
	srv := newFlipServer(t)
	m, _, _ := newManager(t, Options{})
	addr := netip.MustParseAddr("192.0.2.1")
	if err := m.Configure([]DatacenterSpec{{ID: "a", MinHealthy: 1, Endpoints: []EndpointSpec{{Address: addr, Check: fastCheck(), Probe: srv.target(t)}}}}); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	if err := m.WaitFirstRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := m.Verdicts(); len(v) != 1 || v[0].State != Up || v[0].At.IsZero() {
		t.Fatalf("verdicts: %+v", v)
	}
	ref := EndpointRef{"a", addr}
	m.SetEffective(map[EndpointRef]Effective{ref: {State: Down, Load: math.NaN(), LatencyMS: math.NaN()}})
	if m.View().Datacenters["a"].Up {
		t.Errorf("fleet says down, probes up: the datacenter is still up")
	}
	if err := m.Override("a", "", "up", "forced"); err != nil {
		t.Fatal(err)
	}
	if !m.View().Datacenters["a"].Up {
		t.Errorf("forced up: an override must beat the fleet")
	}
	if o := m.Overrides(); len(o) != 1 || o[0].Reason != "forced" {
		t.Errorf("overrides: %+v", o)
	}
	_ = m.Override("a", "", "auto", "")
	m.SetEffective(map[EndpointRef]Effective{ref: {State: Up, RTTMS: 77, Load: 0.5, LatencyMS: math.NaN()}})
	if dv := m.View().Datacenters["a"]; !dv.Up || dv.Load != 0.5 || dv.LatencyMS != 77 {
		t.Errorf("fleet measurements: got %+v, want load 0.5 and the fleet's RTT 77 standing in for latency", dv)
	}
	m.SetEffective(nil)
	if dv := m.View().Datacenters["a"]; !dv.Up || dv.LatencyMS != 12 {
		t.Errorf("back to the probes: got %+v", dv)
	}
}

// TestSetProbing: endpoints another instance probes are not probed here
// and do not hold up the first round.
func TestSetProbing(t *testing.T) {
	var hits atomic.Int64
	srv := newFlipServer(t)
	counting := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer counting.Close()
	m, _, _ := newManager(t, Options{})
	mine, theirs := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	m.SetProbing(func(r EndpointRef) bool { return r.Address == mine })
	if err := m.Configure([]DatacenterSpec{{ID: "a", MinHealthy: 1, Endpoints: []EndpointSpec{
		{Address: mine, Check: fastCheck(), Probe: srv.target(t)},
		{Address: theirs, Check: fastCheck(), Probe: addrOf(t, counting.Listener.Addr().String())},
	}}}); err != nil {
		t.Fatal(err)
	}
	run(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.WaitFirstRound(ctx); err != nil {
		t.Fatalf("first round held up by an endpoint this instance does not probe: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // ten intervals
	if n := hits.Load(); n != 0 {
		t.Errorf("the endpoint left to others was probed %d times", n)
	}
	for _, v := range m.Verdicts() {
		if v.Address == theirs && v.State != Unknown {
			t.Errorf("verdict on an unprobed endpoint: %+v", v)
		}
	}
}
