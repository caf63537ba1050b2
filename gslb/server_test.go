package gslb

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func query(name string, qtype uint16, mutate ...func(*dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	for _, f := range mutate {
		f(m)
	}
	return m
}

func withEDNS(size uint16, do bool, opts ...dns.EDNS0) func(*dns.Msg) {
	return func(m *dns.Msg) {
		m.SetEdns0(size, do)
		o := m.IsEdns0()
		o.Option = append(o.Option, opts...)
	}
}

func TestAnswerProtocol(t *testing.T) {
	s := testSnapshot(t)
	tests := []struct {
		name  string
		req   *dns.Msg
		tcp   bool
		check func(t *testing.T, resp *dns.Msg)
	}{
		{"no OPT in, none out", query("host.example.test.", dns.TypeA), false, func(t *testing.T, r *dns.Msg) {
			if r.IsEdns0() != nil {
				t.Errorf("got an OPT record, want none for a query without EDNS")
			}
		}},
		{"OPT in, OPT out with our payload size", query("host.example.test.", dns.TypeA, withEDNS(4096, false)), false, func(t *testing.T, r *dns.Msg) {
			o := r.IsEdns0()
			if o == nil {
				t.Fatalf("got no OPT, want one")
			}
			if o.UDPSize() != 1232 || o.Version() != 0 || o.Do() {
				t.Errorf("got size %d version %d DO %t, want 1232 0 false", o.UDPSize(), o.Version(), o.Do())
			}
		}},
		{"DO copied back", query("host.example.test.", dns.TypeA, withEDNS(1232, true)), false, func(t *testing.T, r *dns.Msg) {
			if o := r.IsEdns0(); o == nil || !o.Do() {
				t.Errorf("got OPT %v, want DO set", o)
			}
		}},
		{"unknown option ignored", query("host.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2}})), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Errorf("got %s with %d answers, want NOERROR with 1", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			if o := r.IsEdns0(); o == nil || len(o.Option) != 0 {
				t.Errorf("got OPT %v, want one with no options", o)
			}
		}},
		{"NSID when asked", query("host.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})), false, func(t *testing.T, r *dns.Msg) {
			o := r.IsEdns0()
			if o == nil || len(o.Option) != 1 {
				t.Fatalf("got OPT %v, want one NSID option", o)
			}
			if n, ok := o.Option[0].(*dns.EDNS0_NSID); !ok || n.Nsid != "746573742d31" {
				t.Errorf("got %v, want NSID hex of test-1", o.Option[0])
			}
		}},
		{"BADVERS for version 1", query("host.example.test.", dns.TypeA, withEDNS(1232, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeBadVers {
				t.Errorf("got rcode %d, want BADVERS (16)", r.Rcode)
			}
			if o := r.IsEdns0(); o == nil || o.Version() != 0 {
				t.Errorf("got OPT %v, want our version 0", o)
			}
			if len(r.Answer) != 0 {
				t.Errorf("got %d answers, want none", len(r.Answer))
			}
		}},
		{"two OPTs are FORMERR", query("host.example.test.", dns.TypeA, withEDNS(1232, false), func(m *dns.Msg) {
			m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 512}})
		}), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeFormatError {
				t.Errorf("got %s, want FORMERR", dns.RcodeToString[r.Rcode])
			}
		}},
		{"NOTIFY is NOTIMP", query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeNotImplemented || r.Opcode != dns.OpcodeNotify {
				t.Errorf("got %s opcode %d, want NOTIMP with the opcode echoed", dns.RcodeToString[r.Rcode], r.Opcode)
			}
		}},
		{"UPDATE is NOTIMP, OPT kept", query("example.test.", dns.TypeSOA, withEDNS(1232, false), func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeNotImplemented || r.IsEdns0() == nil {
				t.Errorf("got %s OPT %v, want NOTIMP with OPT", dns.RcodeToString[r.Rcode], r.IsEdns0())
			}
		}},
		{"no question is FORMERR", func() *dns.Msg { m := query("example.test.", dns.TypeSOA); m.Question = nil; return m }(), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeFormatError || len(r.Question) != 0 {
				t.Errorf("got %s with %d questions, want FORMERR with none", dns.RcodeToString[r.Rcode], len(r.Question))
			}
		}},
		{"two questions are FORMERR", query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeFormatError {
				t.Errorf("got %s, want FORMERR", dns.RcodeToString[r.Rcode])
			}
		}},
		{"large answer over UDP without EDNS is truncated to 512", query("big.example.test.", dns.TypeTXT), false, func(t *testing.T, r *dns.Msg) {
			if !r.Truncated {
				t.Errorf("got TC clear, want TC set")
			}
			if n := r.Len(); n > 512 {
				t.Errorf("got %d bytes, want at most 512", n)
			}
		}},
		{"large answer fits the client's EDNS size", query("big.example.test.", dns.TypeTXT, withEDNS(1232, false)), false, func(t *testing.T, r *dns.Msg) {
			if r.Truncated || len(r.Answer) != 3 {
				t.Errorf("got TC %t with %d answers, want all 3 untruncated", r.Truncated, len(r.Answer))
			}
		}},
		{"large answer whole over TCP", query("big.example.test.", dns.TypeTXT), true, func(t *testing.T, r *dns.Msg) {
			if r.Truncated || len(r.Answer) != 3 {
				t.Errorf("got TC %t with %d answers, want all 3 untruncated", r.Truncated, len(r.Answer))
			}
		}},
		{"id.server CH TXT", query("id.server.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false, func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), `"test-1"`) || r.Answer[0].Header().Class != dns.ClassCHAOS {
				t.Errorf("got %v, want one CH TXT \"test-1\"", r.Answer)
			}
		}},
		{"hostname.bind CH TXT", query("HOSTNAME.BIND.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false, func(t *testing.T, r *dns.Msg) {
			if len(r.Answer) != 1 || r.Answer[0].Header().Name != "HOSTNAME.BIND." {
				t.Errorf("got %v, want one CH TXT owned by the question's name", r.Answer)
			}
		}},
		{"other CH names refused", query("version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeRefused {
				t.Errorf("got %s, want REFUSED", dns.RcodeToString[r.Rcode])
			}
		}},
		{"HS class refused", query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassHESIOD }), false, func(t *testing.T, r *dns.Msg) {
			if r.Rcode != dns.RcodeRefused || r.Authoritative {
				t.Errorf("got %s AA %t, want REFUSED without AA", dns.RcodeToString[r.Rcode], r.Authoritative)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := s.Answer(tc.req, testClient, tc.tcp)
			if resp.Id != tc.req.Id || !resp.Response || resp.RecursionAvailable {
				t.Errorf("got id %d QR %t RA %t, want id %d QR true RA false", resp.Id, resp.Response, resp.RecursionAvailable, tc.req.Id)
			}
			// Every response must survive packing: that is what goes out.
			if _, err := resp.Pack(); err != nil {
				t.Fatalf("packing the response: %v", err)
			}
			tc.check(t, resp)
		})
	}
}

func TestIdentityOff(t *testing.T) {
	s := testSnapshot(t)
	s.identity.nsid, s.identity.chaos = false, false
	r, _ := s.Answer(query("id.server.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), testClient, false)
	if r.Rcode != dns.RcodeRefused {
		t.Errorf("CH TXT with chaos off: got %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	r, _ = s.Answer(query("host.example.test.", dns.TypeA, withEDNS(1232, false, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})), testClient, false)
	if o := r.IsEdns0(); o == nil || len(o.Option) != 0 {
		t.Errorf("NSID off: got OPT %v, want one without options", o)
	}
}

func TestAcceptQueryDropsResponses(t *testing.T) {
	if got := acceptQuery(dns.Header{Bits: 1 << 15, Qdcount: 1}); got != dns.MsgIgnore {
		t.Errorf("QR set: got %v, want MsgIgnore", got)
	}
	if got := acceptQuery(dns.Header{Qdcount: 2}); got != dns.MsgAccept {
		t.Errorf("QDCOUNT 2: got %v, want MsgAccept (Answer replies FORMERR with the OPT)", got)
	}
}

// recorder is a dns.ResponseWriter that keeps what was written.
type recorder struct {
	msgs   []*dns.Msg
	remote net.Addr
}

func (r *recorder) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr {
	if r.remote != nil {
		return r.remote
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (r *recorder) WriteMsg(m *dns.Msg) error { r.msgs = append(r.msgs, m); return nil }
func (r *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	r.msgs = append(r.msgs, m)
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

func newTestServer(tb testing.TB, snap *Snapshot) (*Server, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return NewServer(snap, NewMetrics(reg), slog.New(slog.NewTextHandler(io.Discard, nil))), reg
}

func TestPanicBecomesServfail(t *testing.T) {
	// A zone with no SOA makes a negative answer dereference nil: the
	// kind of bug the recover is there for.
	broken := &Snapshot{zones: map[string]*zone{"broken.test.": {origin: "broken.test."}}}
	srv, reg := newTestServer(t, broken)
	w := &recorder{}
	req := query("nope.broken.test.", dns.TypeA)
	srv.ServeDNS(w, req)
	if len(w.msgs) != 1 {
		t.Fatalf("got %d responses, want 1", len(w.msgs))
	}
	if r := w.msgs[0]; r.Rcode != dns.RcodeServerFailure || r.Id != req.Id {
		t.Errorf("got %s id %d, want SERVFAIL id %d", dns.RcodeToString[r.Rcode], r.Id, req.Id)
	}
	if got := testutil.ToFloat64(srv.metrics.panics); got != 1 {
		t.Errorf("gslb_dns_panics_total: got %v, want 1", got)
	}
	// The server goes on answering after a panic.
	srv.Swap(testSnapshot(t))
	srv.ServeDNS(w, query("host.example.test.", dns.TypeA))
	if len(w.msgs) != 2 || w.msgs[1].Rcode != dns.RcodeSuccess {
		t.Errorf("after a panic: got %v, want a NOERROR answer", w.msgs[len(w.msgs)-1])
	}
	_ = reg
}

func TestMetricsLabels(t *testing.T) {
	srv, reg := newTestServer(t, testSnapshot(t))
	w := &recorder{}
	srv.ServeDNS(w, query("host.example.test.", dns.TypeA))
	srv.ServeDNS(w, query("nope.example.test.", dns.TypeA))
	srv.ServeDNS(w, query("x.example.com.", dns.TypeA))
	srv.ServeDNS(w, query("host.example.test.", dns.TypeNULL))
	w.remote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
	srv.ServeDNS(w, query("host.example.test.", dns.TypeAAAA))
	want := `
# HELP gslb_dns_responses_total DNS responses sent, by zone, query type, response code and transport.
# TYPE gslb_dns_responses_total counter
gslb_dns_responses_total{proto="tcp",qtype="AAAA",rcode="NOERROR",zone="example.test."} 1
gslb_dns_responses_total{proto="udp",qtype="A",rcode="NOERROR",zone="example.test."} 1
gslb_dns_responses_total{proto="udp",qtype="A",rcode="NXDOMAIN",zone="example.test."} 1
gslb_dns_responses_total{proto="udp",qtype="A",rcode="REFUSED",zone="none"} 1
gslb_dns_responses_total{proto="udp",qtype="other",rcode="NOERROR",zone="example.test."} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gslb_dns_responses_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(srv.metrics.requests); n != 4 {
		t.Errorf("gslb_dns_requests_total series: got %d, want 4 (two queries share labels)", n)
	}
}

func TestMetricNamesLint(t *testing.T) {
	srv, reg := newTestServer(t, testSnapshot(t))
	srv.ServeDNS(&recorder{}, query("host.example.test.", dns.TypeA))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestListeners serves real sockets on loopback and queries them with the
// miekg/dns client over UDP and TCP, several queries on one connection.
func TestListeners(t *testing.T) {
	srv, reg := newTestServer(t, testSnapshot(t))
	ln, err := srv.Listen(ListenConfig{
		Addrs:             []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		TCPIdleTimeout:    time.Second,
		TCPMaxConnections: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ln.Serve() }()
	t.Cleanup(func() {
		if err := ln.Shutdown(t.Context()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addrs := ln.Addrs()
	udpAddr, tcpAddr := addrs[0].String(), addrs[1].String()

	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(query("host.example.test.", dns.TypeA), udpAddr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("UDP: got %v, %v; want one answer", r, err)
	}
	r, _, err = c.Exchange(query("big.example.test.", dns.TypeTXT), udpAddr)
	if err != nil || !r.Truncated {
		t.Fatalf("UDP big: got %v, %v; want TC", r, err)
	}

	conn, err := dns.DialTimeout("tcp", tcpAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, name := range []string{"host.example.test.", "big.example.test.", "mail.example.test."} {
		qt := dns.TypeA
		if name == "big.example.test." {
			qt = dns.TypeTXT
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if err := conn.WriteMsg(query(name, qt)); err != nil {
			t.Fatalf("TCP query %d: %v", i, err)
		}
		r, err := conn.ReadMsg()
		if err != nil || r.Truncated || len(r.Answer) == 0 {
			t.Fatalf("TCP query %d on one connection: got %v, %v; want a whole answer", i, r, err)
		}
	}

	// Two connections are allowed; a third is closed at once.
	second, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	third, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	_ = third.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("third connection over the bound of 2: got %v, want EOF", err)
	}
	if got := testutil.ToFloat64(srv.metrics.tcpRefuse); got != 1 {
		t.Errorf("gslb_dns_tcp_connections_refused_total: got %v, want 1", got)
	}

	// An idle connection is closed after the idle timeout.
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: got %v, want EOF after dns.tcp_idle_timeout", err)
	}
	_ = reg
}

// TestWildcardListenerSourceAddress: on 0.0.0.0 the reply must leave from
// the address the query was sent to. The miekg/dns client uses a
// connected UDP socket, which drops a reply from any other address, so an
// answer received via 127.0.0.2 proves the source was 127.0.0.2.
func TestWildcardListenerSourceAddress(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	ln, err := srv.Listen(ListenConfig{
		Addrs:             []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:0")},
		TCPIdleTimeout:    time.Second,
		TCPMaxConnections: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ln.Serve() }()
	defer func() {
		_ = ln.Shutdown(t.Context())
		<-served
	}()
	port := ln.Addrs()[0].(*net.UDPAddr).Port
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		addr := net.JoinHostPort(ip, itoa(port))
		r, _, err := c.Exchange(query("host.example.test.", dns.TypeA), addr)
		if err != nil || len(r.Answer) != 1 {
			t.Errorf("query to %s on a wildcard listener: got %v, %v; want the answer from %s", addr, r, err, ip)
		}
	}
}

func TestSampledLog(t *testing.T) {
	var buf strings.Builder
	l := newSampledLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 100 {
		l.log("bad packet")
	}
	if n := strings.Count(buf.String(), "bad packet"); n != 1 {
		t.Errorf("got %d log lines for 100 events in one interval, want 1", n)
	}
	l.next.Store(0) // the interval has passed
	l.log("bad packet")
	if !strings.Contains(buf.String(), "suppressed_since_last=99") {
		t.Errorf("got %q, want the second line to report 99 suppressed", buf.String())
	}
}
