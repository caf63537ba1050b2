package gslb

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// mapAffinity is an Affinity on a map, as a single instance with a
// memory store would behave, minus the budget.
type mapAffinity struct {
	mu   sync.Mutex
	pins map[string][2]string // dc, displacedFrom
	down bool                 // the store is unreachable
}

func (m *mapAffinity) Sticky(service string, client netip.Prefix, proposal string) (string, string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", "", false
	}
	k := service + client.String()
	if p, ok := m.pins[k]; ok {
		return p[0], p[1], true
	}
	m.pins[k] = [2]string{proposal, ""}
	return proposal, "", true
}

func (m *mapAffinity) Repin(service string, client netip.Prefix, dc, from string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pins[service+client.String()] = [2]string{dc, from}
}

func TestStickySessions(t *testing.T) {
	s := policySnapshot(t)
	for _, svc := range s.services {
		svc.sticky = true
	}
	aff := &mapAffinity{pins: map[string][2]string{}}
	s.SetAffinity(aff, true, 0, 0)
	frankfurt := "89.160.20.7"
	get := func() string { return strings.Join(ask(t, s, "score", dns.TypeA, frankfurt).addrs, " ") }

	if got := get(); got != "192.0.2.3" {
		t.Fatalf("placement: got %s, want eu-central", got)
	}
	// Scores shift (eu-central gets loaded enough to lose): the client stays.
	s.dc("eu-central").Load = 900
	if got := get(); got != "192.0.2.3" {
		t.Errorf("after scores shift: got %s, want eu-central kept", got)
	}
	if r := ask(t, s, "score", dns.TypeA, frankfurt); r.scope != 24 {
		t.Errorf("sticky answer scope: got %d, want 24 (the session key)", r.scope)
	}
	// eu-central goes down: the client moves to the policy's choice and
	// remembers where it came from.
	s.dc("eu-central").Up = false
	if got := get(); got != "192.0.2.1 192.0.2.11" {
		t.Errorf("pinned datacenter down: got %s, want us-east", got)
	}
	if p := aff.pins["score.p.test.89.160.20.0/24"]; p != [2]string{"us-east", "eu-central"} {
		t.Errorf("pin after the move: %v", p)
	}
	// It comes back (in slow start, admitting nobody yet): still away.
	s.dc("eu-central").Up, s.dc("eu-central").ramp = true, 0
	if got := get(); got != "192.0.2.1 192.0.2.11" {
		t.Errorf("home in slow start at 0%%: got %s, want us-east still", got)
	}
	// Fully back: failback returns the client home.
	s.dc("eu-central").ramp = 1
	if got := get(); got != "192.0.2.3" {
		t.Errorf("failback: got %s, want eu-central", got)
	}
	if p := aff.pins["score.p.test.89.160.20.0/24"]; p != [2]string{"eu-central", ""} {
		t.Errorf("pin after failback: %v", p)
	}
	// With failback: stay, a displaced client stays where it went.
	s.SetAffinity(aff, false, 0, 0)
	s.dc("eu-central").Up = false
	get()
	s.dc("eu-central").Up = true
	if got := get(); got != "192.0.2.1 192.0.2.11" {
		t.Errorf("failback stay: got %s, want us-east kept", got)
	}
	// The store unreachable: the policy answers, nothing fails.
	aff.down = true
	if r := ask(t, s, "score", dns.TypeA, frankfurt); r.rcode != dns.RcodeSuccess || len(r.addrs) == 0 {
		t.Errorf("store down: got %v, want the policy's answer", r)
	}
	tr := s.ExplainQuery("score.p.test.", dns.TypeA, netip.MustParseAddr(frankfurt), false)
	if !strings.Contains(tr.Session, "no affinity") {
		t.Errorf("explain with the store down: session %q", tr.Session)
	}
	// A pin the policy would not choose: explain's reason and chosen
	// marks say the session decided, not the score.
	aff.down = false
	s.dc("eu-central").Load = 0
	aff.pins["score.p.test.89.160.20.0/24"] = [2]string{"us-east", ""}
	tr = s.ExplainQuery("score.p.test.", dns.TypeA, netip.MustParseAddr(frankfurt), false)
	var chosen []string
	for _, c := range tr.Candidates {
		if c.Chosen {
			chosen = append(chosen, c.Datacenter)
		}
	}
	if !strings.Contains(tr.Reason, "the client's session") || !strings.Contains(tr.Reason, "the policy alone picks eu-central") ||
		strings.Join(chosen, ",") != "us-east" {
		t.Errorf("explain of a pin against the policy: reason %q, chosen %v; want the session named and us-east chosen", tr.Reason, chosen)
	}
}

// TestSessionPrefix: sessions keyed on a configured prefix length.
func TestSessionPrefix(t *testing.T) {
	s := policySnapshot(t)
	for _, svc := range s.services {
		svc.sticky = true
	}
	aff := &mapAffinity{pins: map[string][2]string{}}
	s.SetAffinity(aff, true, 16, 48)
	ask(t, s, "score", dns.TypeA, "89.160.20.7")
	if _, ok := aff.pins["score.p.test.89.160.0.0/16"]; !ok {
		t.Errorf("pins: %v, want one keyed on 89.160.0.0/16", aff.pins)
	}
	if got := s.SessionPrefix(netip.MustParseAddr("2a02:d000:1:2::1")); got.String() != "2a02:d000:1::/48" {
		t.Errorf("IPv6 session prefix: got %s", got)
	}
}
