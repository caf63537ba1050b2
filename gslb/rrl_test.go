package gslb

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func testRRL(t *testing.T, cfg RRLConfig) (*rrl, *int64, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	l := newRRL(cfg, m)
	now := int64(1_000_000)
	l.now = func() int64 { return now }
	return l, &now, m
}

var rrlBase = RRLConfig{ResponsesPerSecond: 5, NXDomainsPerSecond: 3, ErrorsPerSecond: 2, Slip: 2,
	Window: 4 * time.Second, IPv4PrefixLength: 24, IPv6PrefixLength: 56, TableSize: 1024}

// tally sends n responses of one kind from client in the current second.
func tally(l *rrl, client string, rcode int, name string, n int) (sent, dropped, slipped int) {
	a := netip.MustParseAddr(client)
	for range n {
		switch l.check(a, rcode, dns.TypeA, []byte(name), "example.") {
		case rrlSend:
			sent++
		case rrlDrop:
			dropped++
		case rrlSlip:
			slipped++
		}
	}
	return
}

// The limiter's arithmetic in the manner of Knot's RRL test matrix.
func TestRRLMatrix(t *testing.T) {
	t.Run("within the rate every response is sent", func(t *testing.T) {
		l, now, _ := testRRL(t, rrlBase)
		for range 10 {
			if s, d, sl := tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 5); s != 5 || d+sl != 0 {
				t.Fatalf("5 in a second at 5/s: sent %d dropped %d slipped %d", s, d, sl)
			}
			*now++
		}
	})
	t.Run("a burst over the rate is limited, every slip-th truncated", func(t *testing.T) {
		l, _, m := testRRL(t, rrlBase)
		s, d, sl := tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 25)
		if s != 5 || d != 10 || sl != 10 {
			t.Errorf("25 in a second at 5/s, slip 2: sent %d dropped %d slipped %d, want 5 10 10", s, d, sl)
		}
		if got := testutil.ToFloat64(m.rrlDropped); got != 10 {
			t.Errorf("rrl_dropped_total %v, want 10", got)
		}
		if got := testutil.ToFloat64(m.rrlSlipped); got != 10 {
			t.Errorf("rrl_slipped_total %v, want 10", got)
		}
	})
	for _, tc := range []struct {
		slip             int
		dropped, slipped int
	}{{0, 20, 0}, {1, 0, 20}, {3, 14, 6}} {
		t.Run("slip "+string(rune('0'+tc.slip)), func(t *testing.T) {
			cfg := rrlBase
			cfg.Slip = tc.slip
			l, _, _ := testRRL(t, cfg)
			if s, d, sl := tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 25); s != 5 || d != tc.dropped || sl != tc.slipped {
				t.Errorf("slip %d: sent %d dropped %d slipped %d, want 5 %d %d", tc.slip, s, d, sl, tc.dropped, tc.slipped)
			}
		})
	}
	t.Run("the window: debt is repaid at the rate, then credit caps at one second", func(t *testing.T) {
		l, now, _ := testRRL(t, rrlBase)
		// 100 in one second at 5/s: the balance floors at -5×4.
		tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 100)
		for sec := 1; sec <= 4; sec++ {
			*now++
			if s, _, _ := tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 1); s != 0 {
				t.Fatalf("second %d of the window answered", sec)
			}
		}
		*now += 2
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 10); s != 5 {
			t.Errorf("after the window: sent %d of 10, want the rate, 5", s)
		}
		*now += 100
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 10); s != 5 {
			t.Errorf("after a long quiet: sent %d of 10, want 5 (credit is capped at one second)", s)
		}
	})
	t.Run("one /24 shares a bucket, the next /24 does not", func(t *testing.T) {
		l, _, _ := testRRL(t, rrlBase)
		tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 5)
		if s, _, _ := tally(l, "192.0.2.200", dns.RcodeSuccess, "www.example.", 1); s != 0 {
			t.Error("192.0.2.200 was answered from a bucket 192.0.2.1 emptied")
		}
		if s, _, _ := tally(l, "192.0.3.1", dns.RcodeSuccess, "www.example.", 5); s != 5 {
			t.Errorf("192.0.3.1 got %d of 5: another /24 must have its own bucket", s)
		}
		tally(l, "2001:db8:0:1::1", dns.RcodeSuccess, "www.example.", 5)
		if s, _, _ := tally(l, "2001:db8:0:ff::2", dns.RcodeSuccess, "www.example.", 1); s != 0 {
			t.Error("two addresses in one /56 did not share a bucket")
		}
		if s, _, _ := tally(l, "2001:db8:0:100::1", dns.RcodeSuccess, "www.example.", 1); s != 1 {
			t.Error("the next /56 shared a bucket")
		}
	})
	t.Run("names and kinds have their own buckets; NXDOMAIN is per zone", func(t *testing.T) {
		l, _, _ := testRRL(t, rrlBase)
		tally(l, "192.0.2.1", dns.RcodeSuccess, "www.example.", 5)
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeSuccess, "api.example.", 5); s != 5 {
			t.Errorf("another name got %d of 5", s)
		}
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeNameError, "a.example.", 3); s != 3 {
			t.Errorf("NXDOMAIN got %d of its 3", s)
		}
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeNameError, "b.example.", 1); s != 0 {
			t.Error("a random subdomain of the same zone got a fresh NXDOMAIN bucket")
		}
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeRefused, "x.other.", 5); s != 2 {
			t.Errorf("errors got %d of 5, want their rate 2", s)
		}
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeFormatError, "y.other.", 1); s != 0 {
			t.Error("errors of another name got a fresh bucket; errors are per prefix")
		}
	})
	t.Run("a rate of 0 does not limit that kind", func(t *testing.T) {
		cfg := rrlBase
		cfg.ErrorsPerSecond = 0
		l, _, _ := testRRL(t, cfg)
		if s, _, _ := tally(l, "192.0.2.1", dns.RcodeRefused, "x.", 50); s != 50 {
			t.Errorf("sent %d of 50", s)
		}
	})
	t.Run("the table does not grow with clients", func(t *testing.T) {
		l, _, _ := testRRL(t, rrlBase)
		size := len(l.table)
		for i := range 5000 {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
			l.check(a, dns.RcodeSuccess, dns.TypeA, []byte("www.example."), "example.")
		}
		if len(l.table) != size || size != 1024 {
			t.Errorf("table has %d slots after 5000 clients, started with %d; want 1024", len(l.table), size)
		}
	})
}

// A client presenting a valid server cookie is not limited; one with a
// client cookie only is, and its slipped replies are BADCOOKIE with a
// fresh server cookie.
func TestRRLCookieExemption(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	cfg := rrlBase
	cfg.Slip = 1
	srv.SetProtection(Protection{Cookies: true, RRL: &cfg})
	p := srv.prot.Load()
	src := netip.MustParseAddr("192.0.2.7")
	cc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	valid := p.cookies.make(nil, cc, src)
	ask := func(cookie []byte) (*dns.Msg, rrlAction) {
		r := query("www.example.com.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hexs(cookie)}))
		m, zone, _ := srv.dispatch(&recorder{}, r, src, false)
		return m, p.protect(r, m, src, false, zone, 1232)
	}
	for i := range 50 {
		if _, act := ask(valid); act != rrlSend {
			t.Fatalf("query %d with a valid server cookie was limited", i)
		}
	}
	var bad int
	for range 20 {
		m, act := ask(cc)
		if act == rrlSlip {
			bad++
			if m.Rcode != dns.RcodeBadCookie || len(m.Answer) != 0 {
				t.Fatalf("slipped reply to a cookie client: rcode %s, %d answers; want BADCOOKIE and none", dns.RcodeToString[m.Rcode], len(m.Answer))
			}
			if c := responseCookie(m); len(c) != 48 {
				t.Fatalf("BADCOOKIE without a fresh server cookie: %q", c)
			}
		}
	}
	if bad == 0 {
		t.Error("20 queries with a client cookie only were never limited at 5/s")
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func responseCookie(m *dns.Msg) string {
	if c := requestCookie(m); c != nil {
		return c.Cookie
	}
	return ""
}

// The check runs on the fast path, per packet: it must not allocate.
func TestRRLCheckAllocs(t *testing.T) {
	l, _, _ := testRRL(t, rrlBase)
	a := netip.MustParseAddr("2001:db8::1")
	name := []byte("www.example.")
	if n := testing.AllocsPerRun(1000, func() {
		l.check(a, dns.RcodeSuccess, dns.TypeA, name, "example.")
		l.check(a, dns.RcodeNameError, dns.TypeA, name, "example.")
	}); n != 0 {
		t.Errorf("rrl.check allocates %v objects per call", n)
	}
}

// BenchmarkFastAnswerRRL is BenchmarkFastAnswer's shapes with the rate
// limiter's check each packet gets on the fast path, at a rate that never
// limits: the cost RRL adds per answer.
func BenchmarkFastAnswerRRL(b *testing.B) {
	snaps := fastSnapshots(b)
	cfg := rrlBase
	cfg.ResponsesPerSecond, cfg.NXDomainsPerSecond, cfg.ErrorsPerSecond = 1<<20, 1<<20, 1<<20
	l := newRRL(cfg, NewMetrics(prometheus.NewRegistry()))
	for _, bc := range []struct {
		name string
		req  *dns.Msg
	}{
		{"static-A-edns", query("host.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"nxdomain", query("nope.example.test.", dns.TypeA, withEDNS(1232, false))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pkt := packed(b, bc.req)
			var sc fastScratch
			var out [dns.MaxMsgSize]byte
			b.ReportAllocs()
			for b.Loop() {
				_, res, _ := snaps["zone"].fastAnswer(pkt, testClient, out[:], &sc)
				l.check(testClient, res.rcode, res.qtype, res.name, res.zone)
			}
		})
	}
}

// BenchmarkRRLCheck is the limiter's check alone, as the fast path makes it.
func BenchmarkRRLCheck(b *testing.B) {
	cfg := rrlBase
	cfg.ResponsesPerSecond = 1 << 20
	l := newRRL(cfg, NewMetrics(prometheus.NewRegistry()))
	name := []byte("host.example.test.")
	b.ReportAllocs()
	for b.Loop() {
		l.check(testClient, dns.RcodeSuccess, dns.TypeA, name, "example.test.")
	}
}

// BenchmarkFastAnswerCookie is the static answer of BenchmarkFastAnswer
// with a valid server cookie to verify and echo, as a resolver that
// speaks cookies sends on every query.
func BenchmarkFastAnswerCookie(b *testing.B) {
	snap := fastSnapshots(b)["zone"]
	jar := newCookieJar(nil)
	valid := jar.make(nil, []byte{1, 2, 3, 4, 5, 6, 7, 8}, testClient)
	pkt := packed(b, query("host.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hexs(valid)})))
	var sc fastScratch
	var out [dns.MaxMsgSize]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := snap.fastAnswerCookie(pkt, testClient, out[:], &sc, jar); !ok {
			b.Fatal("declined")
		}
	}
}
