package gslb

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// fallbackWorkers is how many goroutines per UDP socket answer the
// packets the fast path declines. They run the full path, which may wait
// a session look-up's budget, so there are enough of them that a slow
// store does not queue the rest; the reader itself never waits on them.
const fallbackWorkers = 32

// fallbackQueue bounds the declined packets waiting for a worker. A
// reader that finds it full drops the packet rather than stall every
// query behind it; the drop is logged.
const fallbackQueue = 4096

// errQueryTooLarge is why a UDP query past dns.max_query_size is dropped.
var errQueryTooLarge = errors.New("query larger than dns.max_query_size")

// fallbackPacket is a declined query, copied out of the reader's batch.
type fallbackPacket struct {
	buf     []byte
	src     netip.AddrPort
	dst     netip.Addr // the address the query was sent to, for the reply's source
	ifindex uint32
	// name is the client's address as the kernel gave it, the reply's
	// destination byte for byte (a link-local client's scope included).
	name    [sockaddrSize]byte
	namelen uint32
}

// datagramSender is the socket a fallback reply leaves from.
type datagramSender interface {
	sendTo(b, oob []byte, name *[sockaddrSize]byte, namelen uint32) error
	addr() net.Addr
}

var fallbackPool = sync.Pool{New: func() any { return &fallbackPacket{buf: make([]byte, 0, 4096)} }}

// serveFallback answers a declined packet exactly as miekg/dns's UDP
// server would: the same accept filter, FORMERR for what does not
// unpack, TSIG verified against the raw packet, then ServeDNS with a
// writer that signs and sends from the address the query came to.
func (s *Server) serveFallback(out datagramSender, p *fallbackPacket) {
	b := p.buf
	if len(b) < 12 {
		s.malformedUDP(b, dns.ErrShortRead)
		return
	}
	if pr := s.prot.Load(); pr != nil && pr.maxQuery > 0 && len(b) > pr.maxQuery {
		s.malformedUDP(b, errQueryTooLarge)
		return
	}
	w := &udpWriter{out: out, src: p.src, dst: p.dst, ifindex: p.ifindex, name: p.name, namelen: p.namelen}
	req := new(dns.Msg)
	var hdr dns.Header
	hdr.Bits = uint16(b[2])<<8 | uint16(b[3])
	if acceptQuery(hdr) != dns.MsgAccept {
		return
	}
	if err := req.Unpack(b); err != nil {
		s.malformedUDP(b, err)
		req.SetRcodeFormatError(req)
		req.Zero = false
		req.Ns, req.Answer, req.Extra = nil, nil, nil
		_ = w.WriteMsg(req)
		return
	}
	if t := req.IsTsig(); t != nil {
		w.tsig = s.TSIG()
		w.tsigStatus = dns.TsigVerifyWithProvider(b, w.tsig, "", false)
		w.tsigRequestMAC = t.MAC
	}
	s.ServeDNS(w, req)
}

func (s *Server) malformedUDP(b []byte, err error) {
	s.metrics.malformed.WithLabelValues("udp").Inc()
	s.badLog.log("malformed DNS packet", "proto", "udp", "bytes", len(b), "err", err)
}

// udpWriter is the fallback path's dns.ResponseWriter, miekg/dns's UDP
// writer in behaviour: TSIG signing with the request's MAC, and the
// reply sent from the address the query was sent to.
type udpWriter struct {
	out            datagramSender
	name           [sockaddrSize]byte
	namelen        uint32
	src            netip.AddrPort
	dst            netip.Addr
	ifindex        uint32
	closed         bool
	tsig           dns.TsigProvider
	tsigStatus     error
	tsigRequestMAC string
	tsigTimersOnly bool
}

func (w *udpWriter) LocalAddr() net.Addr { return w.out.addr() }
func (w *udpWriter) RemoteAddr() net.Addr {
	return net.UDPAddrFromAddrPort(w.src)
}

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	if w.closed {
		return &net.OpError{Op: "write", Net: "udp", Err: net.ErrClosed}
	}
	if w.tsig != nil {
		if t := m.IsTsig(); t != nil {
			data, mac, err := dns.TsigGenerateWithProvider(m, w.tsig, w.tsigRequestMAC, w.tsigTimersOnly)
			if err != nil {
				return err
			}
			w.tsigRequestMAC = mac
			_, err = w.Write(data)
			return err
		}
	}
	data, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

func (w *udpWriter) Write(b []byte) (int, error) {
	if w.closed {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: net.ErrClosed}
	}
	var oob [64]byte
	if err := w.out.sendTo(b, oob[:pktinfo(oob[:], w.dst, w.ifindex)], &w.name, w.namelen); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (w *udpWriter) Close() error          { w.closed = true; return nil }
func (w *udpWriter) TsigStatus() error     { return w.tsigStatus }
func (w *udpWriter) TsigTimersOnly(b bool) { w.tsigTimersOnly = b }
func (w *udpWriter) Hijack()               {}

// hotCounters resolves a reader's metric series once and keeps them:
// the fast path counts every query in the existing gslb_dns_* series
// without prometheus's label hashing or an interface conversion per
// packet. The sets are small (zones × a few types × a few rcodes).
type hotCounters struct {
	m   *Metrics
	qs  []hotSeries
	ans []hotAnswer
}

type hotSeries struct {
	zone  string
	qtype uint16
	rcode int
	qs    *querySeries
}

type hotAnswer struct {
	a answered
	c prometheus.Counter
}

// maxHot bounds each reader's cache; series past it are looked up the
// slow way, which a bounded label set makes unlikely.
const maxHot = 512

func (h *hotCounters) series(res *fastResult) *querySeries {
	zone := res.zone
	if zone == "" {
		zone = noZone
	}
	qt := qtypeKey(res.qtype)
	for i := range h.qs {
		e := &h.qs[i]
		if e.qtype == qt && e.rcode == res.rcode && e.zone == zone {
			return e.qs
		}
	}
	qs := h.m.series(seriesKey{zone: zone, qtype: qt, rcode: res.rcode, proto: "udp"})
	if len(h.qs) < maxHot {
		h.qs = append(h.qs, hotSeries{zone: zone, qtype: qt, rcode: res.rcode, qs: qs})
	}
	return qs
}

func (h *hotCounters) answer(a answered) prometheus.Counter {
	for i := range h.ans {
		if h.ans[i].a == a {
			return h.ans[i].c
		}
	}
	c := h.m.answer(a)
	if len(h.ans) < maxHot {
		h.ans = append(h.ans, hotAnswer{a: a, c: c})
	}
	return c
}
