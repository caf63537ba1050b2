package gslb

import (
	"math"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// TestWithHealth: a health view takes down datacenters and endpoints out
// of answers, feeds reported load, shortens TTLs, and leaves the base
// snapshot untouched for the next view.
func TestWithHealth(t *testing.T) {
	base := policySnapshot(t)
	nan := math.NaN()
	up := func() DCState { return DCState{Up: true, Load: nan, LatencyMS: nan, Ramp: 1} }
	states := map[string]DCState{"us-east": up(), "us-west": up(), "eu-central": up(), "ap-southeast": up()}

	// One of us-east's two IPv4 endpoints down: only the other is answered.
	st := states["us-east"]
	st.Down, st.Unsettled = []netip.Addr{netip.MustParseAddr("192.0.2.11")}, true
	states["us-east"] = st
	s := base.WithHealth(states)
	if got := ask(t, s, "capped", dns.TypeA, frankfurt); len(got.addrs) != 1 || got.addrs[0] != "192.0.2.1" {
		t.Errorf("with 192.0.2.11 down: got %v, want only 192.0.2.1", got)
	}
	// The service using us-east answers with half its TTL (30 -> 15);
	// one that does not keeps its TTL.
	r, _ := s.Answer(query("capped.p.test.", dns.TypeA), testClient, false)
	if ttl := r.Answer[0].Header().Ttl; ttl != 15 {
		t.Errorf("TTL with an unsettled datacenter: got %d, want 15", ttl)
	}
	// The base is untouched.
	if got := ask(t, base, "capped", dns.TypeA, frankfurt); len(got.addrs) != 2 {
		t.Errorf("base snapshot changed: %v", got)
	}
	// Reported load steers the score: Frankfurt's datacenter reports
	// itself full, and its client goes elsewhere.
	st = states["eu-central"]
	st.Load = 1000
	states["eu-central"] = st
	s = base.WithHealth(states)
	if got := ask(t, s, "score", dns.TypeA, frankfurt); got.addrs[0] == "192.0.2.3" {
		t.Errorf("eu-central reported full: got %v", got)
	}
	// Down datacenter: failover moves.
	states["eu-central"] = DCState{Up: false, Load: nan, LatencyMS: nan, Ramp: 1, Unsettled: true}
	s = base.WithHealth(states)
	if got := ask(t, s, "failover", dns.TypeA, virginia); got.addrs[0] != "192.0.2.1" {
		t.Errorf("eu-central down: failover got %v, want us-east", got)
	}
	// In slow start the answer depends on the client prefix's hash: the
	// scope says so even for failover, whose choice is otherwise static.
	states["eu-central"] = DCState{Up: true, Load: nan, LatencyMS: nan, Ramp: 0.5, Unsettled: true}
	s = base.WithHealth(states)
	if got := ask(t, s, "failover", dns.TypeA, virginia); got.scope != 24 {
		t.Errorf("failover during slow start: scope %d, want 24", got.scope)
	}
}
