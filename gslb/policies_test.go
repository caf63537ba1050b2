package gslb

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/gslb/geo"
)

// policySnapshot builds testdata/policies.yaml with the demo GeoIP
// database, so clients are placed exactly as the demo places them.
func policySnapshot(t testing.TB) *Snapshot {
	t.Helper()
	s, _ := policySnapshotSet(t)
	return s
}

// policySnapshotSet is policySnapshot with "key=value" overrides of
// testdata/policies.yaml, and the snapshot's locator.
func policySnapshotSet(t testing.TB, set ...string) (*Snapshot, *geo.Locator) {
	t.Helper()
	cfg, err := config.Load("testdata/policies.yaml", config.Options{Set: set})
	if err != nil {
		t.Fatal(err)
	}
	l, err := geo.New(geo.Config{CityDB: cfg.GeoIP.CityDB, CacheSize: 1000}, geo.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSnapshot(cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	return s, l
}

func (s *Snapshot) dc(id string) *Datacenter {
	for i := range s.datacenters {
		if s.datacenters[i].ID == id {
			return &s.datacenters[i]
		}
	}
	panic("no datacenter " + id)
}

type result struct {
	rcode int
	addrs []string // sorted
	scope int      // -1: no ECS echoed
	nsTTL int      // TTL of the SOA in authority, -1 if none
}

func (r result) String() string {
	return fmt.Sprintf("%s %v scope %d soa-ttl %d", dns.RcodeToString[r.rcode], r.addrs, r.scope, r.nsTTL)
}

// ask queries a service with ECS for client's /24 (or /48), through the
// same Answer the listeners call.
func ask(t testing.TB, s *Snapshot, name string, qtype uint16, client string) result {
	t.Helper()
	bits, fam := 24, uint16(1)
	if c, b, ok := strings.Cut(client, "/"); ok {
		client = c
		fmt.Sscan(b, &bits)
	}
	a := netip.MustParseAddr(client)
	if a.Is6() {
		fam = 2
		if !strings.Contains(client, "/") {
			bits = 48
		}
	}
	p, _ := a.Prefix(bits)
	m := query(name+".p.test.", qtype, withEDNS(1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(bits), Address: p.Addr().AsSlice()}))
	r, _ := s.Answer(m, netip.MustParseAddr("127.0.0.1"), false)
	res := result{rcode: r.Rcode, scope: -1, nsTTL: -1}
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			res.addrs = append(res.addrs, v.A.String())
		case *dns.AAAA:
			res.addrs = append(res.addrs, v.AAAA.String())
		}
	}
	slices.Sort(res.addrs)
	for _, rr := range r.Ns {
		res.nsTTL = int(rr.Header().Ttl)
	}
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_SUBNET); ok {
				res.scope = int(e.SourceScope)
			}
		}
	}
	return res
}

// Clients, placed by configs/demo/geo.csv.
const (
	frankfurt  = "89.160.20.7"    // DE, EU
	london     = "81.2.69.10"     // GB, EU (outside the pinned /25)
	londonPin  = "81.2.69.200/32" // GB, inside pinned's 81.2.69.128/25 (a /24 cannot tell)
	virginia   = "216.160.83.9"   // US-VA
	newYork    = "24.168.1.1"     // US-NY, NA (the database network is a /16)
	singapore  = "175.16.199.9"   // SG, AS
	tokyo      = "202.196.224.9"  // JP, AS
	sydney     = "1.128.0.9"      // AU, OC
	frankfurt6 = "2a02:d000:1::1" // DE over IPv6
)

func TestPolicies(t *testing.T) {
	type state struct {
		down []string
		full []string
	}
	tests := []struct {
		name    string
		state   state
		service string
		qtype   uint16
		client  string
		want    string // "addr addr" or "NODATA"
		scope   int
	}{
		// failover: the order decides, the client does not (scope 0).
		{"failover: first", state{}, "failover", dns.TypeA, virginia, "192.0.2.3", 0},
		{"failover: first down", state{down: []string{"eu-central"}}, "failover", dns.TypeA, virginia, "192.0.2.1 192.0.2.11", 0},
		{"failover: two down", state{down: []string{"eu-central", "us-east"}}, "failover", dns.TypeA, virginia, "192.0.2.4", 0},
		{"failover: all down fails open as if all were up", state{down: []string{"eu-central", "us-east", "ap-southeast"}}, "failover", dns.TypeA, virginia, "192.0.2.3", 0},
		{"failover: first full spills to the next", state{full: []string{"eu-central"}}, "failover", dns.TypeA, virginia, "192.0.2.1 192.0.2.11", 0},
		{"failover: all full ignores capacity", state{full: []string{"eu-central", "us-east", "ap-southeast"}}, "failover", dns.TypeA, virginia, "192.0.2.3", 0},

		// hybrid: active-active inside the first group with a usable site.
		{"hybrid: Frankfurt stays in the US group, nearest us-east", state{}, "hybrid", dns.TypeA, frankfurt, "192.0.2.1 192.0.2.11", 24},
		{"hybrid: Tokyo in the US group, nearest us-west", state{}, "hybrid", dns.TypeA, tokyo, "192.0.2.2", 20},
		{"hybrid: us-east down, us-west takes its clients", state{down: []string{"us-east"}}, "hybrid", dns.TypeA, frankfurt, "192.0.2.2", 24},
		{"hybrid: US group down, next group", state{down: []string{"us-east", "us-west"}}, "hybrid", dns.TypeA, tokyo, "192.0.2.3", 20},
		{"hybrid: only the last group left", state{down: []string{"us-east", "us-west", "eu-central"}}, "hybrid", dns.TypeA, frankfurt, "192.0.2.4", 24},

		// geo: most specific match wins; scope is the GeoIP network.
		{"geo: subdivision US-VA", state{}, "geo", dns.TypeA, virginia, "192.0.2.1 192.0.2.11", 24},
		{"geo: New York falls to continent NA", state{}, "geo", dns.TypeA, newYork, "192.0.2.2", 16},
		{"geo: country GB", state{}, "geo", dns.TypeA, london, "192.0.2.3", 24},
		{"geo: Frankfurt by continent EU", state{}, "geo", dns.TypeA, frankfurt, "192.0.2.3", 24},
		{"geo: Singapore by country", state{}, "geo", dns.TypeA, singapore, "192.0.2.4", 24},
		{"geo: Sydney matches nothing: default", state{}, "geo", dns.TypeA, sydney, "192.0.2.1 192.0.2.11", 11},
		{"geo: GB list's second when its first is down", state{down: []string{"eu-central"}}, "geo", dns.TypeA, london, "192.0.2.1 192.0.2.11", 24},
		{"geo: nothing in the EU list: default", state{down: []string{"eu-central"}}, "geo", dns.TypeA, frankfurt, "192.0.2.1 192.0.2.11", 24},
		{"geo: subdivision list down: continent", state{down: []string{"us-east", "us-west"}}, "geo", dns.TypeA, virginia, "192.0.2.3", 24},

		// all: every usable datacenter; static as far as ECS goes.
		{"all", state{}, "all", dns.TypeA, frankfurt, "192.0.2.1 192.0.2.11 192.0.2.3 192.0.2.4", 0},
		{"all: down ones left out", state{down: []string{"us-east"}}, "all", dns.TypeA, frankfurt, "192.0.2.3 192.0.2.4", 0},
		{"all: AAAA from those that have one", state{}, "all", dns.TypeAAAA, frankfurt, "2001:db8:1::1 2001:db8:3::1", 0},

		// score with spillover and answers.
		{"score: Frankfurt", state{}, "score", dns.TypeA, frankfurt, "192.0.2.3", 24},
		{"score: Frankfurt full spills to the next best", state{full: []string{"eu-central"}}, "score", dns.TypeA, frankfurt, "192.0.2.1 192.0.2.11", 24},
		{"spread: one address from each of the 2 best", state{}, "spread", dns.TypeA, frankfurt, "192.0.2.1 192.0.2.3", 24},
		{"capped: at most 2 addresses", state{}, "capped", dns.TypeA, frankfurt, "192.0.2.1 192.0.2.11", 0},

		// A and AAAA agree: ap-southeast has no IPv6, so AAAA is NODATA,
		// not another site's address; the scope is the decision's.
		{"score: Singapore A", state{}, "score", dns.TypeA, singapore, "192.0.2.4", 24},
		{"score: Singapore AAAA is NODATA", state{}, "score", dns.TypeAAAA, singapore, "NODATA", 24},
		{"score: IPv6 client", state{}, "score", dns.TypeAAAA, frankfurt6, "2001:db8:3::1", 24},

		// when_all_down.
		{"nodata when all down", state{down: []string{"us-west", "eu-central"}}, "nodata", dns.TypeA, frankfurt, "NODATA", 0},
		{"first when all down", state{down: []string{"us-west", "eu-central"}}, "first", dns.TypeA, frankfurt, "192.0.2.2", 0},

		// Network targets come before GeoIP.
		{"pinned: the /25 goes to its list", state{}, "pinned", dns.TypeA, londonPin, "192.0.2.4", 25},
		{"pinned: its list's second when the first is down", state{down: []string{"ap-southeast"}}, "pinned", dns.TypeA, londonPin, "192.0.2.2", 25},
		{"pinned: the rest of the /24 by score, scoped to the /25 it depended on", state{}, "pinned", dns.TypeA, london, "192.0.2.3", 25},
		{"pinned: location override", state{}, "pinned", dns.TypeA, singapore, "192.0.2.2", 24},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := policySnapshot(t)
			for _, id := range tc.state.down {
				s.dc(id).Up = false
			}
			for _, id := range tc.state.full {
				s.dc(id).Load = s.dc(id).Capacity
			}
			got := ask(t, s, tc.service, tc.qtype, tc.client)
			want := tc.want
			if got.rcode != dns.RcodeSuccess {
				t.Fatalf("got %v, want NOERROR", got)
			}
			if want == "NODATA" {
				if len(got.addrs) != 0 || got.nsTTL != 30 && got.nsTTL != 20 {
					t.Errorf("got %v, want NODATA with the service TTL on the SOA", got)
				}
			} else if strings.Join(got.addrs, " ") != want {
				t.Errorf("got %v, want %s", got, want)
			}
			if got.scope != tc.scope {
				t.Errorf("ECS scope: got %d, want %d", got.scope, tc.scope)
			}
		})
	}
}

// TestAAndAAAAAgree: for many clients, the AAAA answer comes from the
// datacenter the A answer came from.
func TestAAndAAAAAgree(t *testing.T) {
	s := policySnapshot(t)
	v4of := map[string]string{"192.0.2.1": "2001:db8:1::1", "192.0.2.11": "2001:db8:1::1", "192.0.2.2": "2001:db8:2::1", "192.0.2.3": "2001:db8:3::1", "192.0.2.4": ""}
	for _, svc := range []string{"score", "hybrid", "geo", "weighted", "failover"} {
		for i := range 200 {
			client := fmt.Sprintf("%d.%d.%d.1", []int{89, 81, 216, 175, 202, 1, 24}[i%7], i, i)
			a, aaaa := ask(t, s, svc, dns.TypeA, client), ask(t, s, svc, dns.TypeAAAA, client)
			want := v4of[a.addrs[0]]
			got := strings.Join(aaaa.addrs, " ")
			if got != want {
				t.Fatalf("%s for %s: A %v but AAAA %v, want %q", svc, client, a.addrs, aaaa.addrs, want)
			}
			if a.scope != aaaa.scope {
				t.Fatalf("%s for %s: A scope %d, AAAA scope %d", svc, client, a.scope, aaaa.scope)
			}
		}
	}
}

// TestWeightedShares: ratios 3:1:0 give shares near 75%/25%/0 over many
// prefixes, and raising one ratio moves clients only towards that
// datacenter, about as many as its share grew.
func TestWeightedShares(t *testing.T) {
	s := policySnapshot(t)
	const n = 4000
	pick := func(s *Snapshot) []string {
		out := make([]string, n)
		for i := range n {
			r := ask(t, s, "weighted", dns.TypeA, fmt.Sprintf("100.%d.%d.1", 128+i/256, i%256)) // CGNAT: not located, hashed all the same
			out[i] = r.addrs[0]
		}
		return out
	}
	before := pick(s)
	counts := map[string]int{}
	for _, a := range before {
		counts[a]++
	}
	if us := counts["192.0.2.1"] + counts["192.0.2.11"]; us < n*70/100 || us > n*80/100 {
		t.Errorf("us-east share: got %d of %d, want about 75%%", us, n)
	}
	if counts["192.0.2.4"] != 0 {
		t.Errorf("ap-southeast (ratio 0) got %d clients", counts["192.0.2.4"])
	}
	// eu-central 1 -> 2: its share goes from 1/4 to 2/5, so 15% of
	// clients should move, all of them to eu-central.
	s2 := policySnapshot(t)
	s2.services[3].policy.(*weightedPolicy).ratio[2] = 2
	after := pick(s2)
	moved := 0
	for i := range n {
		if before[i] != after[i] {
			moved++
			if after[i] != "192.0.2.3" {
				t.Fatalf("client %d moved from %s to %s, not to the datacenter whose ratio grew", i, before[i], after[i])
			}
		}
	}
	if moved < n*12/100 || moved > n*18/100 {
		t.Errorf("moved %d of %d clients, want about 15%%", moved, n)
	}
}

func TestAllDownList(t *testing.T) {
	s := policySnapshot(t)
	if got := s.AllDown(); len(got) != 0 {
		t.Errorf("all up: got %v", got)
	}
	s.dc("us-west").Up = false
	s.dc("eu-central").Up = false
	if got := s.AllDown(); !slices.Equal(got, []string{"nodata.p.test.", "first.p.test."}) {
		t.Errorf("got %v, want the two services whose datacenters are both down", got)
	}
}

func TestExplainPolicies(t *testing.T) {
	s := policySnapshot(t)
	s.dc("eu-central").Up = false
	tr := s.ExplainQuery("geo.p.test.", dns.TypeA, netip.MustParseAddr(london), false)
	if tr.Reason != "geo: the client matches country GB" || len(tr.Winners) != 1 || tr.Winners[0] != "us-east" {
		t.Errorf("geo explain: reason %q winners %v", tr.Reason, tr.Winners)
	}
	for _, c := range tr.Candidates {
		if c.Datacenter == "eu-central" && c.Why != "down" {
			t.Errorf("eu-central: why %q, want down", c.Why)
		}
	}
	tr = s.ExplainQuery("pinned.p.test.", dns.TypeA, netip.MustParseAddr("81.2.69.200"), true)
	if tr.Target != "network 81.2.69.128/25" || tr.Winners[0] != "ap-southeast" {
		t.Errorf("pinned explain: target %q winners %v", tr.Target, tr.Winners)
	}
}
