package gslb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb/geo"
)

// Server answers DNS queries from the current Snapshot. It is a
// dns.Handler; Listen binds it to sockets.
type Server struct {
	snap    atomic.Pointer[Snapshot]
	metrics *Metrics
	log     *slog.Logger
	badLog  *sampledLog
	dyn     atomic.Pointer[dynamic] // TSIG keys and UPDATE handler (tsig.go)
	// cookies, rate limiting and the query size bound (rrl_serve.go)
	prot atomic.Pointer[protection]
}

// NewServer returns a Server serving snap.
func NewServer(snap *Snapshot, m *Metrics, log *slog.Logger) *Server {
	s := &Server{metrics: m, log: log, badLog: newSampledLog(log, time.Second)}
	s.snap.Store(snap)
	return s
}

// Swap replaces the snapshot every later query reads. Queries already in
// flight finish with the one they loaded.
func (s *Server) Swap(snap *Snapshot) { s.snap.Store(snap) }

// Snapshot returns the snapshot queries currently read.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	key := seriesKey{zone: noZone, proto: "udp"}
	remote := w.RemoteAddr()
	if _, ok := remote.(*net.TCPAddr); ok {
		key.proto = "tcp"
	}
	if len(r.Question) > 0 {
		key.qtype = qtypeKey(r.Question[0].Qtype)
	}
	defer func() {
		if p := recover(); p != nil {
			s.metrics.panics.Inc()
			s.log.Error("query handler panicked; answered SERVFAIL", "panic", fmt.Sprint(p))
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeServerFailure)
			m.RecursionAvailable = false
			_ = w.WriteMsg(m)
			key.rcode = dns.RcodeServerFailure
			series := s.metrics.series(key)
			series.requests.Inc()
			series.responses.Inc()
		}
	}()

	src, tcp := addrOf(remote), key.proto == "tcp"
	p := s.prot.Load()
	if p != nil && tcp && p.maxQuery > 0 && r.Len() > p.maxQuery {
		s.metrics.malformed.WithLabelValues(key.proto).Inc()
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		m.Question, m.RecursionAvailable = nil, false
		_ = w.WriteMsg(m)
		return
	}
	m, zone, ans := s.dispatch(w, r, src, tcp)
	if zone != "" {
		key.zone = zone
	}
	action := rrlSend
	if p != nil {
		reqOPT, _ := requestOPT(r)
		action = p.protect(r, m, src, tcp, zone, s.snap.Load().clientUDPSize(reqOPT))
	}
	key.rcode = m.Rcode
	series := s.metrics.series(key)
	series.requests.Inc()
	if action == rrlDrop {
		return
	}
	if err := writeReply(w, m); err != nil {
		s.badLog.log("writing DNS response failed", "proto", key.proto, "client", remote.String(), "err", err)
		return
	}
	series.responses.Inc()
	series.duration.Observe(time.Since(start).Seconds())
	if ans.datacenter != "" {
		s.metrics.answer(ans).Inc()
	}
}

// Answer computes the response to r from a client at src, and the zone
// it was answered from ("" when none). It is the whole answering logic,
// free of sockets, so tests, fuzzing and explain run exactly what the
// listener runs.
func (s *Snapshot) Answer(r *dns.Msg, src netip.Addr, tcp bool) (*dns.Msg, string) {
	m, zone, _ := s.answer(r, src, tcp, nil)
	return m, zone
}

// answered is which service and datacenter a query was answered with,
// for the answers metric; empty for static data.
type answered struct{ service, datacenter string }

// Explain answers r as Answer does and reports how the answer was decided.
func (s *Snapshot) Explain(r *dns.Msg, src netip.Addr) (*dns.Msg, *Trace) {
	tr := &Trace{}
	m, zone, _ := s.answer(r, src, false, tr)
	tr.Zone = zone
	tr.Rcode = dns.RcodeToString[m.Rcode]
	tr.Answer = []string{}
	for _, rr := range m.Answer {
		tr.Answer = append(tr.Answer, rr.String())
	}
	return m, tr
}

func (s *Snapshot) answer(r *dns.Msg, src netip.Addr, tcp bool, tr *Trace) (*dns.Msg, string, answered) {
	m := new(dns.Msg)
	m.SetReply(r)
	// SetReply keeps only the first question; an echo must carry none when
	// the count was wrong, and RA is never set: gslbd does not recurse.
	m.RecursionAvailable = false
	m.Compress = true

	reqOPT, optErr := requestOPT(r)
	var respOPT *dns.OPT
	if reqOPT != nil {
		respOPT = s.responseOPT(reqOPT)
		m.Extra = append(m.Extra, respOPT)
	}
	ecs, ecsAddr, ecsUsable, ecsOK := clientSubnet(reqOPT)
	switch {
	case optErr || !ecsOK:
		m.Rcode = dns.RcodeFormatError
		return m, "", answered{}
	case r.Opcode != dns.OpcodeQuery:
		m.Question = nil
		m.Rcode = dns.RcodeNotImplemented
		return m, "", answered{}
	case len(r.Question) != 1:
		m.Question = nil
		m.Rcode = dns.RcodeFormatError
		return m, "", answered{}
	case reqOPT != nil && reqOPT.Version() != 0:
		// BADVERS lives in the OPT's extended rcode; miekg/dns splits it
		// when packing.
		m.Rcode = dns.RcodeBadVers
		return m, "", answered{}
	}

	q := r.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass == dns.ClassCHAOS {
		s.answerChaos(m, name, q)
		return m, "", answered{}
	}
	if q.Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeRefused
		return m, "", answered{}
	}
	z := s.findZone(name)
	if z == nil {
		// Not ours: REFUSED, without AA and without a referral, so gslbd
		// can never be used as an open resolver or reflector.
		m.Rcode = dns.RcodeRefused
		return m, "", answered{}
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused
		return m, z.origin, answered{}
	}
	cq := request{client: src, snap: s, trace: tr}
	if ecsUsable {
		cq.client = ecsAddr
	}
	cq.key = geoKey(cq.client)
	if tr != nil {
		tr.Name, tr.QType = q.Name, dns.TypeToString[q.Qtype]
		tr.Client, tr.Located, tr.ClientPrefix, tr.ClientSource = src, cq.client, cq.key, "source"
		if ecs != nil {
			tr.ECS = fmt.Sprintf("%s/%d", ecs.Address, ecs.SourceNetmask)
		}
		if ecsUsable {
			tr.ClientSource = "ecs"
		}
	}
	scope := s.resolve(z, m, q.Name, name, q.Qtype, &cq)
	if ecs != nil {
		// Scope 0 when the option was not used: the answer is then the
		// same for every client behind this resolver.
		if !ecsUsable {
			scope = 0
		}
		respOPT.Option = append(respOPT.Option, echoSubnet(ecs, scope))
		if tr != nil {
			echoed := scope
			tr.ECSScope = &echoed
		}
	}
	if !tcp {
		m.Truncate(s.clientUDPSize(reqOPT))
	}
	return m, z.origin, cq.answered
}

func geoKey(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	return geo.KeyPrefix(a)
}

// requestOPT returns the query's OPT record; more than one is malformed
// (RFC 6891 section 6.1.1).
func requestOPT(r *dns.Msg) (*dns.OPT, bool) {
	var opt *dns.OPT
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return opt, true
			}
			opt = o
		}
	}
	return opt, false
}

// responseOPT answers the client's OPT: our own payload size, DO copied
// back (RFC 3225), NSID when asked for and enabled; options we do not
// know are ignored, as RFC 6891 requires.
func (s *Snapshot) responseOPT(req *dns.OPT) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(s.udpSize)
	if req.Do() {
		o.SetDo()
	}
	if s.identity.nsid {
		for _, opt := range req.Option {
			if opt.Option() == dns.EDNS0NSID {
				o.Option = append(o.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: s.identity.nsidHex})
				break
			}
		}
	}
	return o
}

// clientUDPSize is how large a UDP response may be: what the client
// advertised, never less than 512 (RFC 6891 section 6.2.5) and never more
// than dns.udp_size, which keeps answers below the fragmentation limit.
func (s *Snapshot) clientUDPSize(opt *dns.OPT) int {
	if opt == nil {
		return dns.MinMsgSize
	}
	return int(max(dns.MinMsgSize, min(opt.UDPSize(), s.udpSize)))
}

// answerChaos serves the instance's identity on id.server and hostname.bind
// (RFC 4892), so operators can tell which instance behind an anycast
// address answered.
func (s *Snapshot) answerChaos(m *dns.Msg, name string, q dns.Question) {
	if !s.identity.chaos || (name != "id.server." && name != "hostname.bind.") {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	if q.Qtype != dns.TypeTXT && q.Qtype != dns.TypeANY {
		return
	}
	m.Answer = append(m.Answer, &dns.TXT{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS, Ttl: 0},
		Txt: []string{s.identity.id},
	})
}

// tcpEvictIdle is how long a TCP connection must have been idle before a
// new one at dns.tcp_max_connections may close it to take its place.
const tcpEvictIdle = time.Second

// ListenConfig carries the socket settings Listen needs.
type ListenConfig struct {
	Addrs             []netip.AddrPort
	TCPIdleTimeout    time.Duration
	TCPMaxConnections int
	// Inherited returns a socket that is already bound for network ("udp"
	// or "tcp") and a configured address, or nil to bind a new one. Sockets
	// come from systemd's socket activation or from the process this one
	// takes over from; serving on the same socket rather than a new one is
	// what lets a restart lose no query: the kernel queues what arrives
	// while no process reads.
	Inherited func(network string, ap netip.AddrPort) *os.File
}

// Listeners are the bound DNS sockets, UDP and TCP for every address.
type Listeners struct {
	servers []*dns.Server
	udp     []*udpServer // the fast path's serving loops (udp_linux.go)
	sockets []Socket
	wg      sync.WaitGroup
	errc    chan error
}

// Socket is one bound DNS socket and the configured address it serves,
// the unit a successor process asks for by name.
type Socket struct {
	Network string         // "udp" or "tcp"
	Addr    netip.AddrPort // as configured; the port may be 0
	file    interface{ File() (*os.File, error) }
}

// Name identifies the socket across processes: the successor matches it
// against its own configuration, so "any port" (0) still finds its socket.
func (s Socket) Name() string { return s.Network + " " + s.Addr.String() }

// File returns a duplicate of the socket's descriptor. Closing the
// duplicate, or this process exiting, leaves the socket open for whoever
// else holds it.
func (s Socket) File() (*os.File, error) { return s.file.File() }

// Listen binds UDP and TCP on every address before serving any of them,
// so a port already in use fails start-up instead of leaving half the
// listeners running.
func (s *Server) Listen(lc ListenConfig) (*Listeners, error) {
	l := &Listeners{errc: make(chan error, 2*len(lc.Addrs))}
	idle := lc.TCPIdleTimeout
	for _, ap := range lc.Addrs {
		var udpFile, tcpFile *os.File
		if lc.Inherited != nil {
			udpFile, tcpFile = lc.Inherited("udp", ap), lc.Inherited("tcp", ap)
		}
		pc, tl, err := listenPair(ap, udpFile, tcpFile)
		if err != nil {
			l.close()
			return nil, err
		}
		l.sockets = append(l.sockets,
			Socket{Network: "udp", Addr: ap, file: pc},
			Socket{Network: "tcp", Addr: ap, file: tl})
		ln := newLimitListener(tl, lc.TCPMaxConnections, tcpEvictIdle, s.metrics)
		servers := []*dns.Server{{Listener: ln, Net: "tcp"}}
		// A UDP socket handed over may still be read by another process.
		switch u, err := newUDPServer(s, pc, udpFile == nil); {
		case err == nil:
			// pc is closed: the socket lives on in u's descriptor.
			l.udp = append(l.udp, u)
			l.sockets[len(l.sockets)-2].file = u
		case errors.Is(err, errors.ErrUnsupported):
			servers = append([]*dns.Server{{PacketConn: pc, Net: "udp"}}, servers...)
		default:
			pc.Close()
			tl.Close()
			l.close()
			return nil, fmt.Errorf("dns: serving udp %s: %w", ap, err)
		}
		for _, srv := range servers {
			srv.Handler = s
			srv.TsigProvider = s.TSIG()
			// Read buffers large enough for any query a client may send
			// with EDNS options; the default 512 would cut them.
			srv.UDPSize = dns.MaxMsgSize
			srv.IdleTimeout = func() time.Duration { return idle }
			srv.ReadTimeout = 2 * time.Second
			srv.WriteTimeout = 2 * time.Second
			srv.MaxTCPQueries = -1
			srv.MsgAcceptFunc = acceptQuery
			proto := srv.Net
			srv.MsgInvalidFunc = func(b []byte, err error) {
				s.metrics.malformed.WithLabelValues(proto).Inc()
				s.badLog.log("malformed DNS packet", "proto", proto, "bytes", len(b), "err", err)
			}
			l.servers = append(l.servers, srv)
		}
	}
	return l, nil
}

// Sockets lists the bound sockets, UDP then TCP for each configured
// address, for handing over to a successor process.
func (l *Listeners) Sockets() []Socket { return l.sockets }

// listenPair binds UDP and TCP on one address, or adopts the inherited
// sockets for it (either file may be nil). With port 0 both get the same
// kernel-chosen port, so a test or a second instance can ask for "any
// free port" and still publish one address for both transports.
func listenPair(ap netip.AddrPort, udpFile, tcpFile *os.File) (*net.UDPConn, *net.TCPListener, error) {
	pc, err := adoptUDP(udpFile, ap)
	if err != nil {
		if tcpFile != nil {
			tcpFile.Close()
		}
		return nil, nil, err
	}
	tl, err := adoptTCP(tcpFile, ap)
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		return nil, nil, err
	}
	family := "4"
	if ap.Addr().Is6() {
		family = "6"
	}
	switch {
	case pc != nil && tl != nil:
		return pc, tl, nil
	case pc != nil: // only UDP was inherited: TCP follows its port
		tl, err := net.ListenTCP("tcp"+family, net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port))))
		if err != nil {
			pc.Close()
			return nil, nil, fmt.Errorf("dns: listening on tcp %s: %w", ap, err)
		}
		return pc, tl, nil
	case tl != nil:
		pc, err := net.ListenUDP("udp"+family, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), uint16(tl.Addr().(*net.TCPAddr).Port))))
		if err != nil {
			tl.Close()
			return nil, nil, fmt.Errorf("dns: listening on udp %s: %w", ap, err)
		}
		return pc, tl, nil
	}
	const attempts = 8 // the UDP port may be taken; a fresh TCP port is tried
	// tcp4/tcp6 rather than tcp: a wildcard [::] then binds IPv6 only, so
	// 0.0.0.0:53 and [::]:53 can both be listed, as operators expect.
	for i := 0; ; i++ {
		tl, err := net.ListenTCP("tcp"+family, net.TCPAddrFromAddrPort(ap))
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listening on tcp %s: %w", ap, err)
		}
		udp := netip.AddrPortFrom(ap.Addr(), uint16(tl.Addr().(*net.TCPAddr).Port))
		pc, err := net.ListenUDP("udp"+family, net.UDPAddrFromAddrPort(udp))
		if err == nil {
			return pc, tl, nil
		}
		tl.Close()
		if ap.Port() != 0 || i == attempts-1 {
			return nil, nil, fmt.Errorf("dns: listening on udp %s: %w", udp, err)
		}
	}
}

// Serve runs every listener until Shutdown; it returns the first error a
// listener fails with, or nil after Shutdown.
func (l *Listeners) Serve() error {
	for _, u := range l.udp {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := u.serve(); err != nil {
				l.errc <- fmt.Errorf("dns: serving udp: %w", err)
			}
		}()
	}
	for _, srv := range l.servers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				l.errc <- fmt.Errorf("dns: serving %s: %w", srv.Net, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case err := <-l.errc:
		return err
	case <-done:
		return nil
	}
}

// Own tells the UDP readers that no other process reads the sockets any
// more (a predecessor in a hand-over has stopped), so they may wait for
// datagrams in blocking reads. Sockets this process bound itself are
// owned from the start.
func (l *Listeners) Own() error {
	var errs []error
	for _, u := range l.udp {
		if err := u.own(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FastReaders is how many UDP sockets are read by the fast path's
// readers, each a goroutine that spends its waits in a blocking system
// call on a thread of its own.
func (l *Listeners) FastReaders() int { return len(l.udp) }

// Addrs lists the bound addresses, UDP then TCP for each configured one;
// with port 0 in the config they carry the ports the kernel chose.
func (l *Listeners) Addrs() []net.Addr {
	var out []net.Addr
	for _, sk := range l.sockets {
		switch c := sk.file.(type) {
		case *net.UDPConn:
			out = append(out, c.LocalAddr())
		case *udpServer:
			out = append(out, c.addr())
		case *net.TCPListener:
			out = append(out, c.Addr())
		}
	}
	return out
}

// Shutdown stops accepting queries and waits, up to ctx, for those in
// flight to be answered.
//
// The sockets may be shared with a successor process (Sockets, hand-over)
// that is already reading them, so Shutdown must stop only this process's
// readers: per-descriptor deadlines or a flag the readers poll, then close
// this process's descriptor. shutdown(2) on a socket, or anything else that
// acts on the socket rather than the descriptor, would stop the successor
// too and lose every query it queues.
func (l *Listeners) Shutdown(ctx context.Context) error {
	var errs []error
	for _, u := range l.udp {
		if err := u.shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	for _, srv := range l.servers {
		if err := srv.ShutdownContext(ctx); err != nil && !errors.Is(err, context.Canceled) {
			// A server that never started has nothing to shut down.
			if !strings.Contains(err.Error(), "not started") {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (l *Listeners) close() {
	for _, u := range l.udp {
		u.closeFD()
	}
	for _, srv := range l.servers {
		if srv.PacketConn != nil {
			srv.PacketConn.Close()
		}
		if srv.Listener != nil {
			srv.Listener.Close()
		}
	}
}

// acceptQuery replaces miekg/dns's default filter, which would answer some
// malformed queries without the OPT record the client sent. Only responses
// are dropped here (never answer a response: that is how loops and
// reflection start); everything else reaches Answer, which applies RFC
// rules with the whole message in hand.
func acceptQuery(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// ExplainQuery is explain's entry point: it asks name/qtype as a resolver
// serving client would, with the client's /24 or /56 in ECS unless
// noECS, and returns the decision. The query runs through Answer's code.
func (s *Snapshot) ExplainQuery(name string, qtype uint16, client netip.Addr, noECS bool) *Trace {
	r := new(dns.Msg)
	r.SetQuestion(dns.Fqdn(name), qtype)
	r.SetEdns0(dns.DefaultMsgSize, false)
	client = client.Unmap()
	if !noECS {
		p := geo.KeyPrefix(client)
		family := uint16(1)
		if client.Is6() {
			family = 2
		}
		opt := r.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family,
			SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
	_, tr := s.Explain(r, client)
	return tr
}
