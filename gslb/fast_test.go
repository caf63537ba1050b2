package gslb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fastNames are the names the generated queries ask: every shape of
// testdata/zone.yaml and testdata/policies.yaml, names below and beside
// them, and names outside every zone.
var fastNames = []string{
	"example.test.", "host.example.test.", "mail.example.test.", "alias.example.test.", "chain1.example.test.",
	"chain2.example.test.", "dangling.example.test.", "outside.example.test.", "loop1.example.test.",
	"svc-alias.example.test.", "a.b.c.example.test.", "b.c.example.test.", "c.example.test.", "x.a.b.c.example.test.",
	"foo.wild.example.test.", "a.b.wild.example.test.", "exists.wild.example.test.", "x.exists.wild.example.test.",
	"*.wild.example.test.", "_sip._tcp.example.test.", "big.example.test.", "www.example.test.", "ns1.example.test.",
	"nope.example.test.", "sub.example.test.", "x.sub.example.test.", "example.com.", "www.example.com.", ".",
	"test.", "p.test.", "failover.p.test.", "hybrid.p.test.", "geo.p.test.", "weighted.p.test.", "all.p.test.",
	"score.p.test.", "spread.p.test.", "capped.p.test.", "nodata.p.test.", "first.p.test.", "pinned.p.test.",
	"ns1.p.test.", "x.score.p.test.", "nope.p.test.",
}

var fastTypes = []uint16{
	dns.TypeA, dns.TypeA, dns.TypeA, dns.TypeAAAA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeCAA, dns.TypeNS,
	dns.TypeSOA, dns.TypeSRV, dns.TypeCNAME, dns.TypePTR, dns.TypeHTTPS, dns.TypeANY, dns.TypeAXFR, dns.TypeOPT,
	dns.TypeHINFO, 0, 65535,
}

// fastClients are source addresses and ECS networks: located ones from
// the demo database, documentation, private and loopback ones.
var fastClients = []string{
	"81.2.69.142", "81.2.69.160", "175.16.199.5", "89.160.20.112", "216.160.83.56", "2.125.160.216",
	"198.51.100.99", "10.1.2.3", "127.0.0.1", "100.64.1.1", "2001:480::1", "2a02:ffc0::1", "2001:db8::5", "::1",
}

// randCase flips the case of letters at random, as 0x20 resolvers do.
func randCase(r *rand.Rand, s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' && r.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// randomECS builds a client subnet option: mostly well formed, now and
// then with bits past the prefix, a wrong family or an odd length.
func randomECS(r *rand.Rand) dns.EDNS0 {
	a := netip.MustParseAddr(fastClients[r.IntN(len(fastClients))])
	family, bits := uint16(1), 32
	if a.Is6() {
		family, bits = 2, 128
	}
	source := []int{0, 8, 16, 24, 24, 32, 48, 56, 64, bits}[r.IntN(10)]
	source = min(source, bits)
	p, _ := a.Prefix(source)
	addr := net.IP(p.Addr().AsSlice())
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(source), Address: addr}
	switch r.IntN(12) {
	case 0:
		e.Address = net.IP(a.AsSlice()) // host bits past the prefix
	case 1:
		e.SourceScope = uint8(r.IntN(bits + 1))
	case 2:
		e.Family, e.SourceNetmask = 0, 0
	case 3:
		if family == 2 {
			e.Address = net.ParseIP("::ffff:" + "81.2.69.0").To16()
			e.SourceNetmask = 120
		}
	}
	return e
}

// randomQuery builds a query of the kinds a resolver and a hostile client
// send, packed; some are then cut short or corrupted.
func randomQuery(r *rand.Rand) []byte {
	name := fastNames[r.IntN(len(fastNames))]
	if r.IntN(10) == 0 {
		name = "zz" + fmt.Sprint(r.IntN(100)) + "." + name
	}
	m := new(dns.Msg)
	m.SetQuestion(randCase(r, name), fastTypes[r.IntN(len(fastTypes))])
	m.Id = uint16(r.Uint32())
	m.RecursionDesired = r.IntN(2) == 0
	m.CheckingDisabled = r.IntN(5) == 0
	m.AuthenticatedData = r.IntN(5) == 0
	if r.IntN(20) == 0 {
		m.Question[0].Qclass = []uint16{dns.ClassCHAOS, dns.ClassANY, 2}[r.IntN(3)]
	}
	if r.IntN(20) == 0 {
		m.Opcode = []int{dns.OpcodeNotify, dns.OpcodeUpdate, dns.OpcodeIQuery}[r.IntN(3)]
	}
	if r.IntN(4) != 0 {
		size := []uint16{0, 512, 1232, 1232, 4096, 65535, uint16(r.IntN(2000))}[r.IntN(7)]
		m.SetEdns0(size, r.IntN(10) == 0)
		o := m.IsEdns0()
		if r.IntN(15) == 0 {
			o.SetVersion(uint8(1 + r.IntN(2)))
		}
		for range r.IntN(3) {
			switch r.IntN(8) {
			case 0, 1, 2, 3:
				o.Option = append(o.Option, randomECS(r))
			case 4:
				o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
			case 5:
				o.Option = append(o.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
			case 6:
				o.Option = append(o.Option, &dns.EDNS0_PADDING{Padding: make([]byte, r.IntN(40))})
			case 7:
				o.Option = append(o.Option, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2}})
			}
		}
	}
	b, err := m.Pack()
	if err != nil {
		// An option miekg/dns refuses to pack (a bad family): send the
		// query without it.
		m.Extra = nil
		b, _ = m.Pack()
	}
	if len(b) == 0 {
		return b
	}
	switch r.IntN(12) {
	case 0:
		b = b[:r.IntN(len(b))]
	case 1:
		b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
	case 2:
		b = append(b, 0, 0, 0)
	}
	return b
}

// fastDiff runs pkt through the fast path and, when it answers, through
// the full path as a UDP listener would, and reports any difference in
// what the two responses say. It returns whether the fast path answered.
func fastDiff(s *Snapshot, pkt []byte, src netip.Addr, sc *fastScratch, c *answerCache) (bool, error) {
	var out [dns.MaxMsgSize]byte
	n, res, ok := s.fastAnswer(pkt, src, out[:], sc)
	if err := cachedDiff(c, s, pkt, src, sc, ok, out[:n]); err != nil {
		return ok, err
	}
	if !ok {
		return false, nil
	}
	if len(pkt) < 12 || acceptQuery(dns.Header{Bits: binary.BigEndian.Uint16(pkt[2:])}) != dns.MsgAccept {
		return true, fmt.Errorf("answered a packet the listener ignores")
	}
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		return true, fmt.Errorf("answered a packet miekg/dns does not unpack (%v)", err)
	}
	m, zone, ans := s.answer(req, src, false, nil)
	full, err := m.Pack()
	if err != nil {
		return true, fmt.Errorf("full path response does not pack: %v", err)
	}
	if res.zone != zone || res.rcode != m.Rcode || res.answered != ans || res.qtype != req.Question[0].Qtype {
		return true, fmt.Errorf("metrics: fast %+v, full zone %q rcode %d answered %+v", res, zone, m.Rcode, ans)
	}
	limit := s.clientUDPSize(req.IsEdns0())
	if n > limit {
		return true, fmt.Errorf("fast response of %d bytes exceeds the client's %d", n, limit)
	}
	return true, sameResponse(full, out[:n])
}

// cachedDiff requires the answer cache to give, for pkt asked three
// times under other IDs (computed, computed and kept, replayed), exactly
// the fast path's bytes with the ID changed, or to decline as the fast
// path did.
func cachedDiff(c *answerCache, s *Snapshot, pkt []byte, src netip.Addr, sc *fastScratch, fastOK bool, fast []byte) error {
	if c == nil || len(pkt) < 2 {
		return nil
	}
	c.sync(s)
	for i, id := range []uint16{0x1111, 0x2222, 0x3333} {
		q := bytes.Clone(pkt)
		binary.BigEndian.PutUint16(q, id)
		var out [dns.MaxMsgSize]byte
		n, _, ok := c.answer(s, q, src, out[:], sc, nil)
		if ok != fastOK {
			return fmt.Errorf("answer cache (call %d) answered %v, fast path %v", i+1, ok, fastOK)
		}
		if !ok {
			continue
		}
		want := bytes.Clone(fast)
		binary.BigEndian.PutUint16(want, id)
		if !bytes.Equal(out[:n], want) {
			return fmt.Errorf("answer cache (call %d) wrote %x, fast path %x", i+1, out[:n], want)
		}
	}
	return nil
}

// sameResponse compares two responses as a client reads them: header,
// rcode, every section's records with their TTLs, and the OPT record
// with its options (ECS scope included).
func sameResponse(full, fast []byte) error {
	a, b := new(dns.Msg), new(dns.Msg)
	if err := a.Unpack(full); err != nil {
		return fmt.Errorf("full response does not unpack: %v", err)
	}
	if err := b.Unpack(fast); err != nil {
		return fmt.Errorf("fast response does not unpack: %v", err)
	}
	if a.MsgHdr != b.MsgHdr {
		return fmt.Errorf("header: full %+v, fast %+v", a.MsgHdr, b.MsgHdr)
	}
	if fmt.Sprint(a.Question) != fmt.Sprint(b.Question) {
		return fmt.Errorf("question: full %v, fast %v", a.Question, b.Question)
	}
	for _, sec := range []struct {
		name       string
		full, fast []dns.RR
	}{{"answer", a.Answer, b.Answer}, {"authority", a.Ns, b.Ns}, {"additional", a.Extra, b.Extra}} {
		if len(sec.full) != len(sec.fast) {
			return fmt.Errorf("%s: full %d records, fast %d\nfull:\n%v\nfast:\n%v", sec.name, len(sec.full), len(sec.fast), a, b)
		}
		for i := range sec.full {
			x, y := sec.full[i], sec.fast[i]
			if x.String() != y.String() || x.Header().Ttl != y.Header().Ttl || x.Header().Class != y.Header().Class {
				return fmt.Errorf("%s record %d: full %q, fast %q", sec.name, i, x.String(), y.String())
			}
		}
	}
	return nil
}

// fastSnapshots are the snapshots the differential test answers from:
// the protocol zone, the policies over the demo GeoIP database, the
// latter with datacenters down, full and in slow start, and with every
// service sticky (the full path places clients, the fast path then
// answers from the cached sessions).
func fastSnapshots(tb testing.TB) map[string]*Snapshot {
	p := policySnapshot(tb)
	nan := func() float64 { return math.NaN() }
	states := map[string]DCState{
		"us-east":    {Up: false, Load: nan(), LatencyMS: nan(), Ramp: 1, Unsettled: true},
		"eu-central": {Up: true, Load: 1e9, LatencyMS: nan(), Ramp: 1},
		"us-west":    {Up: true, Load: nan(), LatencyMS: 80, Ramp: 0.4, Unsettled: true},
	}
	sticky, _ := stickySnapshot(tb)
	return map[string]*Snapshot{"zone": testSnapshot(tb), "policies": p, "policies-degraded": p.WithHealth(states), "sticky": sticky}
}

// TestFastPathDifferential holds the fast path to the full one: for
// generated queries it either declines or sends what the full path
// would. It also requires it to answer the common shapes, so a fast path
// that declined everything would not pass.
func TestFastPathDifferential(t *testing.T) {
	snaps := fastSnapshots(t)
	r := rand.New(rand.NewPCG(7, 77))
	var sc fastScratch
	cache := newAnswerCache()
	n := 20000
	if testing.Short() {
		n = 2000
	}
	answered := map[string]int{}
	for name, s := range snaps {
		for i := range n {
			pkt := randomQuery(r)
			src := netip.MustParseAddr(fastClients[r.IntN(len(fastClients))])
			ok, err := fastDiff(s, pkt, src, &sc, cache)
			if err != nil {
				t.Fatalf("%s: query %d (%x) from %s: %v", name, i, pkt, src, err)
			}
			if ok {
				answered[name]++
			}
		}
	}
	total := 0
	for _, a := range answered {
		total += a
	}
	// Every answered query was asked twice more under other IDs, and the
	// cache replays the third unless the answer is past its bounds.
	if cache.hits < uint64(total)/2 {
		t.Errorf("the answer cache replayed %d of %d answers asked three times", cache.hits, total)
	}
	for name := range snaps {
		// Roughly half the generated queries are shapes the fast path
		// takes (no DO, no NSID, no corruption, a plain type).
		if answered[name] < n/5 {
			t.Errorf("%s: fast path answered %d of %d generated queries; it declines too much", name, answered[name], n)
		}
	}
}

// TestFastPathAnswers pins the shapes that must not fall back: every
// common query is answered by the fast path, identically.
func TestFastPathAnswers(t *testing.T) {
	snaps := fastSnapshots(t)
	ecs := func(a string, bits uint8) func(*dns.Msg) {
		ip := netip.MustParseAddr(a)
		fam := uint16(1)
		if ip.Is6() {
			fam = 2
		}
		return withEDNS(1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: bits, Address: ip.AsSlice()})
	}
	for _, tc := range []struct {
		snap string
		req  *dns.Msg
	}{
		{"zone", query("host.example.test.", dns.TypeA)},
		{"zone", query("HoSt.Example.TEST.", dns.TypeAAAA, withEDNS(1232, false))},
		{"zone", query("_sip._tcp.example.test.", dns.TypeSRV, withEDNS(1232, false))},
		{"zone", query("example.test.", dns.TypeMX, withEDNS(4096, false))},
		{"zone", query("example.test.", dns.TypeNS)},
		{"zone", query("chain1.example.test.", dns.TypeAAAA)},
		{"zone", query("loop1.example.test.", dns.TypeA)},
		{"zone", query("svc-alias.example.test.", dns.TypeA, ecs("81.2.69.0", 24))},
		{"zone", query("Foo.wild.example.test.", dns.TypeA)},
		{"zone", query("nope.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"zone", query("www.example.com.", dns.TypeA, withEDNS(1232, false))},
		{"zone", query("big.example.test.", dns.TypeTXT, withEDNS(4096, false))},
		{"policies", query("score.p.test.", dns.TypeA, ecs("81.2.69.0", 24))},
		{"policies", query("score.p.test.", dns.TypeAAAA, ecs("2001:480::", 56))},
		{"policies", query("pinned.p.test.", dns.TypeA, ecs("81.2.69.128", 25))},
		{"policies", query("geo.p.test.", dns.TypeA, ecs("216.160.83.0", 24))},
		{"policies-degraded", query("hybrid.p.test.", dns.TypeA, ecs("89.160.20.0", 24))},
		{"policies-degraded", query("spread.p.test.", dns.TypeA, ecs("175.16.199.0", 24))},
	} {
		t.Run(tc.snap+"/"+tc.req.Question[0].Name+"/"+dns.TypeToString[tc.req.Question[0].Qtype], func(t *testing.T) {
			var sc fastScratch
			ok, err := fastDiff(snaps[tc.snap], packed(t, tc.req), testClient, &sc, newAnswerCache())
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Fatal("the fast path declined a common query")
			}
		})
	}
}

// TestFastPathDeclines pins what must go the full way.
func TestFastPathDeclines(t *testing.T) {
	s := testSnapshot(t)
	for name, req := range map[string]*dns.Msg{
		"ANY":       query("example.test.", dns.TypeANY),
		"DO":        query("host.example.test.", dns.TypeA, withEDNS(1232, true)),
		"NSID":      query("host.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})),
		"version 1": query("host.example.test.", dns.TypeA, withEDNS(1232, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }),
		"CHAOS":     query("id.server.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
		"UPDATE":    query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }),
		"TSIG": query("host.example.test.", dns.TypeA, func(m *dns.Msg) {
			m.SetTsig("key.", dns.HmacSHA256, 300, 0)
		}),
		"truncated answer": query("big.example.test.", dns.TypeTXT),
		"escaped name":     query("a\\.b.example.test.", dns.TypeA),
	} {
		t.Run(name, func(t *testing.T) {
			var sc fastScratch
			var out [dns.MaxMsgSize]byte
			b, err := req.Pack()
			if err != nil && name == "TSIG" {
				// Packing a TSIG needs a secret; a zero MAC is still TSIG.
				b = tsigless(t, req)
			}
			if _, _, ok := s.fastAnswer(b, testClient, out[:], &sc); ok {
				t.Fatal("the fast path answered; it must decline")
			}
		})
	}
}

// tsigless packs req with its TSIG record as an unsigned one.
func tsigless(t *testing.T, req *dns.Msg) []byte {
	c := req.Copy()
	ts := c.Extra[len(c.Extra)-1].(*dns.TSIG)
	ts.MAC, ts.MACSize = "00", 1
	c.Extra[len(c.Extra)-1] = ts
	m := new(dns.Msg)
	*m = *c
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFastPathAllocs: parsing and answering the common shapes allocates
// nothing (the socket loop is measured in udp_test.go).
func TestFastPathAllocs(t *testing.T) {
	snaps := fastSnapshots(t)
	for _, tc := range []struct {
		snap string
		req  *dns.Msg
	}{
		{"zone", query("host.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"zone", query("nope.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"zone", query("_sip._tcp.example.test.", dns.TypeSRV)},
		{"policies", query("score.p.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(81, 2, 69, 0)}))},
	} {
		pkt := packed(t, tc.req)
		var sc fastScratch
		var out [dns.MaxMsgSize]byte
		if _, _, ok := snaps[tc.snap].fastAnswer(pkt, testClient, out[:], &sc); !ok {
			t.Fatalf("%s: declined", tc.req.Question[0].Name)
		}
		if a := testing.AllocsPerRun(200, func() { snaps[tc.snap].fastAnswer(pkt, testClient, out[:], &sc) }); a != 0 {
			t.Errorf("%s %s: %v allocations per query, want 0", tc.snap, strings.TrimSpace(tc.req.Question[0].String()), a)
		}
	}
}

// FuzzFastPath feeds raw packets to the fast path: whatever it answers
// must be what the full path answers, in every snapshot.
func FuzzFastPath(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 32 {
		f.Add(randomQuery(r))
	}
	snaps := fastSnapshots(f)
	var sc fastScratch
	cache := newAnswerCache()
	src := netip.MustParseAddr("81.2.69.142")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for name, s := range snaps {
			if _, err := fastDiff(s, pkt, src, &sc, cache); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	})
}

// BenchmarkFastAnswer is BenchmarkServeDNS's shapes through the fast
// path: parse and answer, no socket.
func BenchmarkFastAnswer(b *testing.B) {
	snaps := fastSnapshots(b)
	for _, bc := range []struct {
		name, snap string
		req        *dns.Msg
	}{
		{"static-A-edns", "zone", query("host.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"service-A", "zone", query("www.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"nxdomain", "zone", query("nope.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"score-ecs", "policies", query("score.p.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(81, 2, 69, 0)}))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkt := packed(b, bc.req)
			var sc fastScratch
			var out [dns.MaxMsgSize]byte
			b.ReportAllocs()
			for b.Loop() {
				snaps[bc.snap].fastAnswer(pkt, testClient, out[:], &sc)
			}
		})
	}
}
