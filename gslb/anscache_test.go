package gslb

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb/geo/geodb"
)

// cacheAnswer runs pkt through c and returns a copy of the answer.
func cacheAnswer(t *testing.T, c *answerCache, s *Snapshot, pkt []byte, src netip.Addr, jar *cookieJar) ([]byte, fastResult) {
	t.Helper()
	var out [dns.MaxMsgSize]byte
	var sc fastScratch
	n, res, ok := c.answer(s, pkt, src, out[:], &sc, jar)
	if !ok {
		t.Fatalf("answer cache declined %x", pkt)
	}
	res.name = bytes.Clone(res.name)
	return bytes.Clone(out[:n]), res
}

// fastWire is the fast path's answer to pkt, without a cache.
func fastWire(t *testing.T, s *Snapshot, pkt []byte, src netip.Addr) []byte {
	t.Helper()
	var out [dns.MaxMsgSize]byte
	var sc fastScratch
	n, _, ok := s.fastAnswer(pkt, src, out[:], &sc)
	if !ok {
		t.Fatalf("fast path declined %x", pkt)
	}
	return bytes.Clone(out[:n])
}

func withID(pkt []byte, id uint16) []byte {
	b := bytes.Clone(pkt)
	b[0], b[1] = byte(id>>8), byte(id)
	return b
}

func TestAnswerCacheReplays(t *testing.T) {
	snaps := fastSnapshots(t)
	s, degraded := snaps["policies"], snaps["policies-degraded"]
	ashburn := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(216, 160, 83, 0)}
	pkt := packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, ashburn)))
	resolver := netip.MustParseAddr("198.51.100.53")

	c := newAnswerCache()
	c.sync(s)
	counts := func(hits, misses uint64, after string) {
		t.Helper()
		if c.hits != hits || c.misses != misses {
			t.Fatalf("after %s: %d hits, %d misses; want %d, %d", after, c.hits, c.misses, hits, misses)
		}
	}
	first, res := cacheAnswer(t, c, s, withID(pkt, 1), resolver, nil)
	if want := fastWire(t, s, withID(pkt, 1), resolver); !bytes.Equal(first, want) {
		t.Fatalf("first answer differs from the fast path's:\n%x\n%x", first, want)
	}
	counts(0, 1, "one query")
	// Seen once, the query is only remembered; the second miss keeps it.
	second, _ := cacheAnswer(t, c, s, withID(pkt, 2), resolver, nil)
	counts(0, 2, "the second query")
	if !bytes.Equal(second, withID(first, 2)) {
		t.Fatalf("second answer is not the first with its ID:\n%x\n%x", second, first)
	}
	again, res2 := cacheAnswer(t, c, s, withID(pkt, 0xbeef), resolver, nil)
	counts(1, 2, "the third query")
	if !bytes.Equal(again, withID(first, 0xbeef)) {
		t.Fatalf("replayed answer is not the first with the new ID:\n%x\n%x", again, first)
	}
	if res2.zone != res.zone || res2.rcode != res.rcode || res2.answered != res.answered || !bytes.Equal(res2.name, res.name) || res2.qend != res.qend {
		t.Fatalf("replayed result %+v, computed %+v", res2, res)
	}

	// Another client address is another key: without a usable ECS its
	// location would be its own. A one-off evicts nothing.
	cacheAnswer(t, c, s, pkt, netip.MustParseAddr("198.51.100.54"), nil)
	counts(1, 3, "another client's query")
	cacheAnswer(t, c, s, pkt, resolver, nil)
	counts(2, 3, "the resolver's query after another client's")

	// A new snapshot (here the health view with us-east down) empties it:
	// the Ashburn network's answer changes.
	c.sync(degraded)
	moved, _ := cacheAnswer(t, c, degraded, pkt, resolver, nil)
	if want := fastWire(t, degraded, pkt, resolver); !bytes.Equal(moved, want) {
		t.Fatalf("after the swap: cached %x, fast path %x", moved, want)
	}
	if bytes.Equal(moved[2:], first[2:]) {
		t.Fatal("the degraded snapshot answers Ashburn as the healthy one does; the test needs answers that differ")
	}
	counts(2, 4, "a snapshot swap")
	// A query kept before the swap is kept again at its first miss.
	cacheAnswer(t, c, degraded, pkt, resolver, nil)
	counts(3, 4, "the repeat under the new snapshot")

	// A networks file swapped in changes answers without a snapshot.
	targetFileEpoch.Add(1)
	c.sync(degraded)
	cacheAnswer(t, c, degraded, pkt, resolver, nil)
	counts(3, 5, "a networks file change")
}

func TestAnswerCacheKeepsOut(t *testing.T) {
	s := fastSnapshots(t)["zone"]
	c := newAnswerCache()
	c.sync(s)
	src := netip.MustParseAddr("192.0.2.7")
	jar := newCookieJar([][16]byte{{1, 2, 3}})

	// A cookie's reply carries a server cookie made from the time.
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	pkt := packed(t, query("host.example.test.", dns.TypeA, withEDNS(1232, false, cookie)))
	for range 3 {
		cacheAnswer(t, c, s, pkt, src, jar)
	}
	if c.hits != 0 {
		t.Fatalf("a query with a COOKIE was replayed %d times", c.hits)
	}

	// Off: every query is computed and nothing is counted.
	off := *s
	off.answerCacheSize = 0
	c.sync(&off)
	plain := packed(t, query("host.example.test.", dns.TypeA))
	for range 3 {
		cacheAnswer(t, c, &off, plain, src, nil)
	}
	if len(c.entries) != 0 || c.hits != 0 {
		t.Fatalf("dns.answer_cache_size 0 still caches: %d entries, %d hits", len(c.entries), c.hits)
	}

	// Back on after a reload, sized up to a power of two.
	small := *s
	small.answerCacheSize = 100
	c.sync(&small)
	if len(c.entries) != 128 {
		t.Fatalf("%d entries for a size of 100; want 128", len(c.entries))
	}
	for range 3 {
		cacheAnswer(t, c, &small, plain, src, nil)
	}
	if c.hits != 1 {
		t.Fatalf("after resizing: %d hits, want 1", c.hits)
	}
}

func TestAnswerCacheAllocs(t *testing.T) {
	s := fastSnapshots(t)["policies"]
	c := newAnswerCache()
	c.sync(s)
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(81, 2, 69, 0)}
	pkt := packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, ecs)))
	var out [dns.MaxMsgSize]byte
	var sc fastScratch
	if a := testing.AllocsPerRun(200, func() { c.answer(s, pkt, testClient, out[:], &sc, nil) }); a != 0 {
		t.Fatalf("%v allocations per replayed answer", a)
	}
}

// BenchmarkAnswerCache is BenchmarkFastAnswer's geo query answered from
// the cache, beside the fast path computing it, in the same run.
func BenchmarkAnswerCache(b *testing.B) {
	s := fastSnapshots(b)["policies"]
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(81, 2, 69, 0)}
	pkt := packed(b, query("score.p.test.", dns.TypeA, withEDNS(1232, false, ecs)))
	var out [dns.MaxMsgSize]byte
	var sc fastScratch
	b.Run("computed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.fastAnswer(pkt, testClient, out[:], &sc)
		}
	})
	b.Run("one-off", func(b *testing.B) {
		// Networks past what the cache holds (64 slots here), each
		// asked in turn: the look-up and the admission check on top of
		// computing. The GeoIP cache (1000 here) is warmed first, as in
		// "computed".
		small := *s
		small.answerCacheSize = 64
		c := newAnswerCache()
		c.sync(&small)
		q := bytes.Clone(pkt)
		const networks = 512
		ask := func(i int) {
			// the ECS /24 address's last two bytes: another network
			binary.BigEndian.PutUint16(q[len(q)-2:], uint16(i%networks))
			c.answer(&small, q, testClient, out[:], &sc, nil)
		}
		for i := range networks {
			ask(i)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			ask(i)
		}
	})
	b.Run("replayed", func(b *testing.B) {
		c := newAnswerCache()
		c.sync(s)
		b.ReportAllocs()
		for b.Loop() {
			c.answer(s, pkt, testClient, out[:], &sc, nil)
		}
	})
}

// TestAnswerCacheCollisions: queries that share a set, asked in turn,
// are all kept (two ways, two remembered misses per set), and a third
// takes the way used less recently.
func TestAnswerCacheCollisions(t *testing.T) {
	s := fastSnapshots(t)["policies"]
	one := *s
	one.answerCacheSize = 2 // a single set: every query collides
	c := newAnswerCache()
	c.sync(&one)
	var pkts [3][]byte
	for i, a := range []net.IP{net.IPv4(89, 160, 20, 0), net.IPv4(216, 160, 83, 0), net.IPv4(175, 16, 199, 0)} {
		ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: a}
		pkts[i] = packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, ecs)))
	}
	src := netip.MustParseAddr("198.51.100.53")
	for range 2 { // A B A B: both kept at their second miss
		cacheAnswer(t, c, &one, pkts[0], src, nil)
		cacheAnswer(t, c, &one, pkts[1], src, nil)
	}
	if c.hits != 0 || c.misses != 4 {
		t.Fatalf("keeping two: %d hits, %d misses; want 0, 4", c.hits, c.misses)
	}
	for range 3 {
		for _, p := range pkts[:2] {
			got, _ := cacheAnswer(t, c, &one, p, src, nil)
			if want := fastWire(t, &one, p, src); !bytes.Equal(got, want) {
				t.Fatalf("replayed %x, computed %x", got, want)
			}
		}
	}
	if c.hits != 6 {
		t.Fatalf("two colliding queries in turn: %d hits of 6", c.hits)
	}
	// B was used last: a third query, kept, evicts A.
	cacheAnswer(t, c, &one, pkts[2], src, nil)
	cacheAnswer(t, c, &one, pkts[2], src, nil)
	hits := c.hits
	cacheAnswer(t, c, &one, pkts[1], src, nil)
	cacheAnswer(t, c, &one, pkts[2], src, nil)
	cacheAnswer(t, c, &one, pkts[0], src, nil)
	if c.hits-hits != 2 {
		t.Fatalf("after the third query was kept: %d hits of B, C, A; want B and C", c.hits-hits)
	}
}

// TestAnswerCacheFollowsGeoIPReload: a reloaded GeoIP database changes
// where clients are without a new snapshot; the cache must not replay
// answers located with the old one.
func TestAnswerCacheFollowsGeoIPReload(t *testing.T) {
	db := filepath.Join(t.TempDir(), "city.mmdb")
	writeCityDB := func(row string) {
		t.Helper()
		tmp := db + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := geodb.Build(strings.NewReader("network,latitude,longitude,country,continent,subdivision,city\n"+row+"\n"), f, geodb.Options{Source: "test.csv"}); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, db); err != nil {
			t.Fatal(err)
		}
	}
	writeCityDB("89.160.20.0/24,50.11,8.68,DE,EU,HE,Frankfurt")
	s, l := policySnapshotSet(t, "geoip.city_db="+db)
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(89, 160, 20, 0)}
	pkt := packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, ecs)))
	resolver := netip.MustParseAddr("198.51.100.53")
	c := newAnswerCache()
	for range 3 {
		c.sync(s)
		cacheAnswer(t, c, s, pkt, resolver, nil)
	}
	if c.hits != 1 {
		t.Fatalf("%d hits before the reload; want the third query replayed", c.hits)
	}
	frankfurt := fastWire(t, s, pkt, resolver)

	// The same network, now placed in California.
	writeCityDB("89.160.20.0/24,37.34,-121.89,US,NA,CA,San Jose")
	if err := l.Reload(); err != nil {
		t.Fatal(err)
	}
	sanJose := fastWire(t, s, pkt, resolver)
	if bytes.Equal(frankfurt, sanJose) {
		t.Fatal("the reloaded database answers as the old one did; the test needs answers that differ")
	}
	c.sync(s)
	if got, _ := cacheAnswer(t, c, s, pkt, resolver, nil); !bytes.Equal(got, sanJose) {
		t.Fatalf("after the reload the cache answered %x; the fast path answers %x", got, sanJose)
	}
	if c.hits != 1 {
		t.Fatalf("an answer located with the old database was replayed (%d hits)", c.hits)
	}
}
