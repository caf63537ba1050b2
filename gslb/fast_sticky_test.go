package gslb

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/session"
)

// stickySnapshot is policySnapshot with every service sticky, its
// sessions in a real session.Affinity over the in-process store.
func stickySnapshot(tb testing.TB) (*Snapshot, *session.Affinity) {
	tb.Helper()
	s := policySnapshot(tb)
	for _, svc := range s.services {
		svc.sticky = true
	}
	aff := session.New(session.Options{
		Store: session.NewMemoryStore(), TTL: time.Hour, TouchInterval: time.Minute,
		LookupBudget: 10 * time.Millisecond, CacheSize: 10000, MaxLookups: 16,
		BreakerFailures: 5, BreakerCooldown: time.Second,
		Registerer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	s.SetAffinity(aff, true, 0, 0)
	return s, aff
}

// TestFastPathStickyFromCache: a sticky service's answer stays on the
// fast path when this instance has the session cached, follows the
// session over the policy, is never replayed from the answer cache, and
// is declined (for the full path) when only the store could say.
func TestFastPathStickyFromCache(t *testing.T) {
	s, aff := stickySnapshot(t)
	frankfurt := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(89, 160, 20, 0)}
	pkt := packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, frankfurt)))
	resolver := netip.MustParseAddr("198.51.100.53")
	var sc fastScratch
	var out [dns.MaxMsgSize]byte
	if _, _, ok := s.fastAnswer(pkt, resolver, out[:], &sc); ok {
		t.Fatal("answered a sticky query with no session cached; the full path must place the client")
	}
	// The full path places the client (the fast path declined, so
	// fastDiff runs only the full one here).
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		t.Fatal(err)
	}
	if _, _, ans := s.answer(req, resolver, false, nil); ans.datacenter != "eu-central" {
		t.Fatalf("placement: %+v, want eu-central", ans)
	}
	cache := newAnswerCache()
	check := func(wantDC string) {
		t.Helper()
		ok, err := fastDiff(s, pkt, resolver, &sc, cache)
		if err != nil || !ok {
			t.Fatalf("fast path with the session cached: answered %v, %v", ok, err)
		}
		if _, res, _ := s.fastAnswer(pkt, resolver, out[:], &sc); res.answered.datacenter != wantDC || !res.volatile {
			t.Fatalf("fast answer %+v; want %s, marked as depending on a session", res, wantDC)
		}
	}
	check("eu-central")
	// The session, not the policy, decides: pin the client elsewhere.
	aff.Repin("score.p.test.", s.SessionPrefix(netip.MustParseAddr("89.160.20.0")), "us-west", "")
	check("us-west")
	if cache.hits != 0 {
		t.Fatalf("the answer cache replayed %d answers that depended on a session", cache.hits)
	}
	if a := testing.AllocsPerRun(200, func() { s.fastAnswer(pkt, resolver, out[:], &sc) }); a != 0 {
		t.Errorf("%v allocations per sticky fast answer", a)
	}
}
