package gslb

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/gslb/geo"
)

// scoreConfig is three datacenters on three continents; %s is spliced
// into the service so each test sets its own weights and scales.
const scoreConfig = `
datacenters:
  - {id: us-east, lat: 39.0, lon: -77.5, load: %v, latency: %s, endpoints: [{address: 192.0.2.1}]}
  - {id: eu-central, lat: 50.1, lon: 8.7, load: %v, latency: %s, endpoints: [{address: 192.0.2.2}]}
  - {id: ap-southeast, lat: 1.35, lon: 103.8, load: %v, latency: %s, capacity: 500, endpoints: [{address: 192.0.2.3}]}
zones:
  - origin: example.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [192.0.2.53]}]
    services:
      - {name: www, policy: score, datacenters: [us-east, eu-central, ap-southeast]%s}
`

type dcState struct {
	load    float64
	latency string
}

func scoreSnapshot(t testing.TB, states [3]dcState, service string) *Snapshot {
	t.Helper()
	y := fmt.Sprintf(scoreConfig, states[0].load, states[0].latency, states[1].load, states[1].latency, states[2].load, states[2].latency, service)
	cfg, err := config.Parse("score.yaml", []byte(y), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSnapshot(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func selectAt(s *Snapshot, lat, lon float64, client string) ([]int, int, *Trace) {
	svc := s.zones["example.test."].nodes["www.example.test."].service
	a := netip.MustParseAddr(client)
	tr := &Trace{}
	q := &request{client: a, key: geo.KeyPrefix(a), snap: s, trace: tr, found: true, locScope: -1,
		loc: geo.Location{Lat: lat, Lon: lon, Found: true, Network: netip.MustParsePrefix("81.2.0.0/16")}}
	picked, scope := svc.policy.Select(s, svc, q, 1, nil)
	return picked, scope, tr
}

var idle = [3]dcState{{0, "50ms"}, {0, "50ms"}, {0, "50ms"}}

func TestScoreWinners(t *testing.T) {
	tests := []struct {
		name     string
		states   [3]dcState
		service  string
		lat, lon float64
		want     string
	}{
		{"Frankfurt client, idle", idle, "", 50.11, 8.68, "eu-central"},
		{"Virginia client, idle", idle, "", 38.9, -77.0, "us-east"},
		{"Singapore client, idle", idle, "", 1.29, 103.85, "ap-southeast"},
		{"Sydney is nearest Singapore", idle, "", -33.87, 151.21, "ap-southeast"},
		// eu-central: 0.3*900/1000 + 0.2*0.05 = 0.28; us-east: 0.5*~6,530/20,015 + 0.01 = ~0.173.
		{"Frankfurt client, Frankfurt loaded", [3]dcState{{0, "50ms"}, {900, "50ms"}, {0, "50ms"}}, "", 50.11, 8.68, "us-east"},
		// eu-central: 0.2*min(1500/1000,1) + 0.01 = 0.21; us-east: ~0.173.
		{"Frankfurt client, Frankfurt slow", [3]dcState{{0, "50ms"}, {0, "1500ms"}, {0, "50ms"}}, "", 50.11, 8.68, "us-east"},
		// The same load with distance weighted 0: load alone decides.
		{"load only", [3]dcState{{100, "50ms"}, {50, "50ms"}, {100, "50ms"}}, ", weights: {distance: 0, load: 1, latency: 0}", 50.11, 8.68, "eu-central"},
		// ap-southeast's capacity is 500: 300/500 = 0.6 against 400/1000.
		{"load relative to capacity", [3]dcState{{400, "50ms"}, {450, "50ms"}, {300, "50ms"}}, ", weights: {distance: 0, load: 1, latency: 0}", 0, 0, "us-east"},
		// A client in the South Pacific, more than 10,000 km from all
		// three: ~11,340 km to Singapore, ~11,950 to Virginia, ~18,400 to
		// Frankfurt. Loads are equal relative to capacity; Singapore is
		// 50 ms slower. With the default scale distance still tells them
		// apart and the nearest wins (0.333 against 0.339)...
		{"far client, default scale", [3]dcState{{100, "50ms"}, {100, "50ms"}, {50, "100ms"}}, ", slack: 0", -47.0, -150.0, "ap-southeast"},
		// ...while under a 10,000 km cap every distance term is 0.5 and
		// Singapore's latency loses it (0.55 against 0.54 for the others).
		{"far client, 10,000 km cap", [3]dcState{{100, "50ms"}, {100, "50ms"}, {50, "100ms"}}, ", distance_scale_km: 10000, slack: 0", -47.0, -150.0, "us-east|eu-central"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := scoreSnapshot(t, tc.states, tc.service)
			picked, _, tr := selectAt(s, tc.lat, tc.lon, "81.2.69.142")
			if len(picked) != 1 {
				t.Fatalf("got %d picks, want 1", len(picked))
			}
			got := s.datacenters[picked[0]].ID
			if !strings.Contains("|"+tc.want+"|", "|"+got+"|") {
				t.Errorf("got %s, want %s; candidates: %+v", got, tc.want, tr.Candidates)
			}
		})
	}
}

// TestScoreTerms checks one score term by term against values worked out
// by hand: Frankfurt (50.11, 8.68) to Ashburn (39.0, -77.5) is about
// 6,530 km on a sphere of radius 6,371 km.
func TestScoreTerms(t *testing.T) {
	s := scoreSnapshot(t, [3]dcState{{250, "100ms"}, {0, "50ms"}, {0, "50ms"}}, "")
	_, _, tr := selectAt(s, 50.11, 8.68, "81.2.69.142")
	if tr.Candidates[0].Datacenter != "us-east" {
		t.Fatalf("first candidate %s, want us-east", tr.Candidates[0].Datacenter)
	}
	c := tr.Candidates[0].Score
	if math.Abs(c.DistanceKM-6530) > 30 {
		t.Errorf("distance: got %.1f km, want about 6,530", c.DistanceKM)
	}
	wantDistance := 0.5 * c.DistanceKM / 20015
	checks := []struct {
		name      string
		got, want float64
	}{
		{"distance term", c.Terms.Distance, wantDistance},
		{"load term", c.Terms.Load, 0.3 * 250 / 1000},
		{"latency term", c.Terms.Latency, 0.2 * 100 / 1000},
		{"score", c.Score, wantDistance + 0.075 + 0.02},
	}
	for _, ch := range checks {
		if math.Abs(ch.got-ch.want) > 1e-5 {
			t.Errorf("%s: got %.6f, want %.6f", ch.name, ch.got, ch.want)
		}
	}
}

// TestScoreSlackSplitsClients: two datacenters at the same distance split
// clients by prefix, stably, roughly evenly; outside the band one wins.
func TestScoreSlackSplitsClients(t *testing.T) {
	s := scoreSnapshot(t, idle, "")
	// A point on the equator equidistant from us-east and eu-central is
	// hard to pick by hand; moving ap-southeast out of the way and using
	// the midpoint on the great circle is simpler: place the client at the
	// midpoint's latitude and longitude computed from the two ends.
	lat, lon := midpoint(39.0, -77.5, 50.1, 8.7)
	counts := map[string]int{}
	for i := range 1000 {
		client := fmt.Sprintf("81.%d.%d.1", i/256, i%256)
		picked, scope, _ := selectAt(s, lat, lon, client)
		counts[s.datacenters[picked[0]].ID]++
		if scope != 24 {
			t.Fatalf("scope: got %d, want 24: a hash of the /24 decided", scope)
		}
		again, _, _ := selectAt(s, lat, lon, client)
		if again[0] != picked[0] {
			t.Fatalf("client %s moved between two identical queries", client)
		}
	}
	if counts["us-east"] < 400 || counts["eu-central"] < 400 || counts["ap-southeast"] != 0 {
		t.Errorf("split over 1000 prefixes: got %v, want about half each to us-east and eu-central", counts)
	}
	// A client clearly nearer one datacenter is outside the band: the
	// answer depends on its location only, so the scope is the GeoIP
	// network's.
	_, scope, _ := selectAt(s, 50.11, 8.68, "81.2.69.142")
	if scope != 16 {
		t.Errorf("scope outside the band: got %d, want 16 (the GeoIP network)", scope)
	}
}

func midpoint(lat1, lon1, lat2, lon2 float64) (float64, float64) {
	r := math.Pi / 180
	φ1, λ1, φ2, λ2 := lat1*r, lon1*r, lat2*r, lon2*r
	bx := math.Cos(φ2) * math.Cos(λ2-λ1)
	by := math.Cos(φ2) * math.Sin(λ2-λ1)
	φ := math.Atan2(math.Sin(φ1)+math.Sin(φ2), math.Sqrt((math.Cos(φ1)+bx)*(math.Cos(φ1)+bx)+by*by))
	λ := λ1 + math.Atan2(by, math.Cos(φ1)+bx)
	return φ / r, λ / r
}

func TestScoreSkipsDownDatacenters(t *testing.T) {
	s := scoreSnapshot(t, idle, "")
	s.datacenters[1].Up = false // eu-central
	picked, _, tr := selectAt(s, 50.11, 8.68, "81.2.69.142")
	if got := s.datacenters[picked[0]].ID; got == "eu-central" {
		t.Errorf("got the down datacenter; candidates %+v", tr.Candidates)
	}
	for _, c := range tr.Candidates {
		if c.Datacenter == "eu-central" && (c.Chosen || c.Why != "down" || c.Score.WithinSlack) {
			t.Errorf("trace of the down datacenter: %+v", c)
		}
	}
}

// TestECSScopes: the scope each kind of answer carries.
func TestECSScopes(t *testing.T) {
	s := scoreSnapshot(t, idle, "")
	withECS := func(prefix string) func(*dns.Msg) {
		p := netip.MustParsePrefix(prefix)
		fam := uint16(1)
		if p.Addr().Is6() {
			fam = 2
		}
		return withEDNS(1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
	tests := []struct {
		name   string
		req    *dns.Msg
		rcode  int
		scope  int
		noEcho bool
	}{
		// No database: every client is at the default location.
		{"score, no database", query("www.example.test.", dns.TypeA, withECS("81.2.69.0/24")), dns.RcodeSuccess, 0, false},
		{"static record", query("example.test.", dns.TypeSOA, withECS("81.2.69.0/24")), dns.RcodeSuccess, 0, false},
		{"ECS /0 is echoed, not used", query("www.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 0, Address: netip.IPv4Unspecified().AsSlice()})), dns.RcodeSuccess, 0, false},
		{"private ECS is echoed, not used", query("www.example.test.", dns.TypeA, withECS("10.1.2.0/24")), dns.RcodeSuccess, 0, false},
		{"no ECS, no echo", query("www.example.test.", dns.TypeA, withEDNS(1232, false)), dns.RcodeSuccess, 0, true},
		{"bits beyond the prefix are FORMERR", query("www.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 16, Address: []byte{81, 2, 69, 0}})), dns.RcodeFormatError, 0, true},
		{"IPv6 ECS", query("www.example.test.", dns.TypeAAAA, withECS("2a02:d000:1::/48")), dns.RcodeSuccess, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := s.Answer(tc.req, testClient, false)
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode: got %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			var echo *dns.EDNS0_SUBNET
			if o := r.IsEdns0(); o != nil {
				for _, opt := range o.Option {
					if e, ok := opt.(*dns.EDNS0_SUBNET); ok {
						echo = e
					}
				}
			}
			if tc.noEcho {
				if echo != nil {
					t.Errorf("got ECS %v, want none", echo)
				}
				return
			}
			if echo == nil {
				t.Fatalf("got no ECS echo, want one")
			}
			q := tc.req.IsEdns0().Option[0].(*dns.EDNS0_SUBNET)
			if echo.Family != q.Family || echo.SourceNetmask != q.SourceNetmask || !echo.Address.Equal(q.Address) {
				t.Errorf("echo %v does not repeat the query's %v", echo, q)
			}
			if int(echo.SourceScope) != tc.scope {
				t.Errorf("scope: got %d, want %d", echo.SourceScope, tc.scope)
			}
			if _, err := r.Pack(); err != nil {
				t.Errorf("packing: %v", err)
			}
		})
	}
}

func BenchmarkSelect(b *testing.B) {
	s := scoreSnapshot(b, idle, "")
	svc := s.zones["example.test."].nodes["www.example.test."].service
	a := netip.MustParseAddr("81.2.69.142")
	q := &request{client: a, key: geo.KeyPrefix(a), snap: s, found: true, locScope: -1,
		loc: geo.Location{Lat: 50.11, Lon: 8.68, Found: true, Network: netip.MustParsePrefix("81.2.0.0/16")}}
	dst := make([]int, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = svc.policy.Select(s, svc, q, 1, dst[:0])
	}
}
