//go:build linux

package gslb

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// With cookies and rate limiting on, the fast path still answers without
// allocating, and its limited replies are empty and truncated.
func TestRRLFastPathThroughSocket(t *testing.T) {
	srv, _ := newTestServer(t, policySnapshot(t))
	cfg := rrlBase
	cfg.ResponsesPerSecond, cfg.NXDomainsPerSecond, cfg.ErrorsPerSecond = 1<<20, 1<<20, 1<<20
	srv.SetProtection(Protection{Cookies: true, RRL: &cfg, MaxQuerySize: 512})
	ln := serveOn(t, srv, "127.0.0.1:0")
	conn, err := net.DialUDP("udp", nil, ln.Addrs()[0].(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	queries := [][]byte{
		packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false))),
		packed(t, query("nope.p.test.", dns.TypeA)),
		packed(t, query("www.example.com.", dns.TypeA)),
	}
	buf := make([]byte, 4096)
	exchange := func(rounds int) {
		for range rounds {
			for _, q := range queries {
				if _, err := conn.Write(q); err != nil {
					t.Fatal(err)
				}
				_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := conn.Read(buf); err != nil {
					t.Fatalf("reading an answer: %v", err)
				}
			}
		}
	}
	exchange(20)
	if allocs := fewestHeapObjects(func() { exchange(200) }); allocs > 16 {
		t.Errorf("%d heap objects allocated over 600 queries with rate limiting on; want none per query", allocs)
	}

	// A query past dns.max_query_size is dropped; the next is answered.
	big := query("score.p.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_PADDING{Padding: make([]byte, 600)}))
	if _, err := conn.Write(packed(t, big)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(queries[0]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var m dns.Msg
	if err := m.Unpack(buf[:n]); err != nil || m.Id == big.Id {
		t.Errorf("the first reply after a query over dns.max_query_size: %v, %v; want the next query's", &m, err)
	}
	if got := testutil.ToFloat64(srv.metrics.malformed.WithLabelValues("udp")); got != 1 {
		t.Errorf("gslb_dns_malformed_requests_total{proto=udp} %v, want 1 for the oversized query", got)
	}

	// Now a limit of one per second, slip 1: the fast path truncates.
	cfg.ResponsesPerSecond, cfg.Slip = 1, 1
	srv.SetProtection(Protection{Cookies: true, RRL: &cfg, MaxQuerySize: 512})
	q := queries[0]
	var tc int
	for range 5 {
		if _, err := conn.Write(q); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		var m dns.Msg
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if m.Truncated {
			tc++
			if len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 || len(m.Question) != 1 {
				t.Errorf("a slipped reply: %v; want the question alone", &m)
			}
		}
	}
	// Five in well under a window at 1/s: at least three are slipped
	// even if the second turns over once.
	if tc < 3 {
		t.Errorf("%d of 5 replies truncated at 1/s with slip 1", tc)
	}
	if got := testutil.ToFloat64(srv.metrics.rrlSlipped); got != float64(tc) {
		t.Errorf("gslb_dns_rrl_slipped_total %v, want %d", got, tc)
	}
}

// At the connection bound the longest-idle connection makes room, unless
// every connection was active within minIdle, when the new one is refused.
func TestTCPLimitEvictsIdlest(t *testing.T) {
	m := NewMetrics(nil)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2, 0, m)
	defer l.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accept := func() net.Conn {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := dial()
	accept()
	b := dial()
	sb := accept()
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Read(make([]byte, 1)); err != nil { // b is now the more recent
		t.Fatal(err)
	}
	c := dial()
	accept()
	_ = a.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the idlest connection: got %v, want EOF (evicted)", err)
	}
	_ = c
	if got := testutil.ToFloat64(m.tcpEvicted); got != 1 {
		t.Errorf("gslb_dns_tcp_connections_evicted_total %v, want 1", got)
	}

	l.minIdle = time.Hour
	done := make(chan struct{})
	go func() { defer close(done); _, _ = l.Accept() }()
	d := dial()
	_ = d.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := d.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a connection over the bound while none is idle: got %v, want EOF (refused)", err)
	}
	if got := testutil.ToFloat64(m.tcpRefuse); got != 1 {
		t.Errorf("gslb_dns_tcp_connections_refused_total %v, want 1", got)
	}
	l.Close()
	<-done
}

// Over TCP a query past dns.max_query_size gets FORMERR; cookies are
// answered there too, and not at all when they are off.
func TestProtectionOverTCP(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	srv.SetProtection(Protection{Cookies: true, MaxQuerySize: 1024})
	ln := serveOn(t, srv, "127.0.0.1:0")
	c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	tcpAddr := ln.Addrs()[1].String()
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	r, _, err := c.Exchange(query("host.example.test.", dns.TypeA, withEDNS(1232, false, cookie)), tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if got := responseCookie(r); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || len(got) != 48 || got[:16] != cookie.Cookie {
		t.Errorf("TCP query with a client cookie: %s, %d answers, cookie %q; want the answer and a server cookie", dns.RcodeToString[r.Rcode], len(r.Answer), got)
	}
	big := query("host.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_PADDING{Padding: make([]byte, 2000)}))
	r, _, err = c.Exchange(big, tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
		t.Errorf("TCP query of %d bytes over a bound of 1024: %s with %d answers, want FORMERR", big.Len(), dns.RcodeToString[r.Rcode], len(r.Answer))
	}

	srv.SetProtection(Protection{})
	for _, proto := range []string{"udp", "tcp"} {
		c.Net = proto
		addr := ln.Addrs()[0].String()
		if proto == "tcp" {
			addr = tcpAddr
		}
		r, _, err := c.Exchange(query("host.example.test.", dns.TypeA, withEDNS(1232, false, cookie)), addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := responseCookie(r); got != "" || r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s with cookies off: %s cookie %q; want the answer without a cookie", proto, dns.RcodeToString[r.Rcode], got)
		}
	}
}

// The fast path answers cookies byte for byte as the full path does: a
// client cookie alone, a valid server cookie, a stale one, one from
// another address, each with and without ECS; a malformed one it
// declines. And it does so without allocating.
func TestFastPathCookiesDifferential(t *testing.T) {
	srv, _ := newTestServer(t, policySnapshot(t))
	srv.SetProtection(Protection{Cookies: true})
	jar := srv.prot.Load().cookies
	now := uint32(1_700_000_000)
	jar.now = func() uint32 { return now }
	src := netip.MustParseAddr("127.0.0.2") // the recorder's client
	cc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	valid := jar.make(nil, cc, src)
	now += 40 * 60 // valid is renewed, recent echoed
	recent := jar.make(nil, cc, src)
	other := jar.make(nil, cc, netip.MustParseAddr("192.0.2.1"))
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(81, 2, 69, 0)}
	var sc fastScratch
	var out [dns.MaxMsgSize]byte
	snap := srv.Snapshot()
	for _, name := range []string{"score.p.test.", "nope.p.test.", "www.example.com."} {
		for _, ck := range []struct {
			what   string
			cookie []byte
		}{{"client only", cc}, {"valid, 40 min old", valid}, {"recent", recent}, {"another address's", other}, {"malformed", cc[:5]}} {
			for _, withECS := range []bool{false, true} {
				opts := []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hexs(ck.cookie)}}
				if withECS {
					opts = append([]dns.EDNS0{ecs}, opts...)
				}
				req := query(name, dns.TypeA, withEDNS(1232, false, opts...))
				pkt := packed(t, req)
				n, res, ok := snap.fastAnswerCookie(pkt, src, out[:], &sc, jar)
				if ck.what == "malformed" {
					if ok {
						t.Errorf("%s, %s cookie: answered; want it declined to the full path's FORMERR", name, ck.what)
					}
					continue
				}
				if !ok {
					t.Errorf("%s, %s cookie, ECS %v: declined", name, ck.what, withECS)
					continue
				}
				if want := ck.what == "valid, 40 min old" || ck.what == "recent"; res.cookieValid != want {
					t.Errorf("%s, %s cookie: cookieValid %v", name, ck.what, res.cookieValid)
				}
				rec := &recorder{}
				srv.ServeDNS(rec, req)
				full, err := rec.msgs[0].Pack()
				if err != nil {
					t.Fatal(err)
				}
				if err := sameResponse(full, out[:n]); err != nil {
					t.Errorf("%s, %s cookie, ECS %v: %v", name, ck.what, withECS, err)
				}
			}
		}
	}
	pkt := packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hexs(cc)})))
	if a := testing.AllocsPerRun(200, func() { snap.fastAnswerCookie(pkt, src, out[:], &sc, jar) }); a != 0 {
		t.Errorf("answering a client cookie on the fast path allocates %v objects", a)
	}
}
