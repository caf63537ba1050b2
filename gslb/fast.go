package gslb

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// The fast path answers the common UDP query straight from and into wire
// bytes, without a dns.Msg and without allocating: one question of class
// IN for a name inside a served zone, with at most an OPT record (version
// 0, DO clear) carrying at most an ECS option. Anything else (ANY,
// DNSSEC OK, NSID, unusual EDNS, TSIG, UPDATE, names that need escaping,
// a response that would need truncating) is declined and goes through
// ServeDNS unchanged. It never declines by answering differently:
// fast_test.go's differential test and FuzzFastPath hold it to the bytes
// the full path would send, parsed.
//
// Responses are written without name compression. That makes their
// length exactly the uncompressed length miekg/dns's Truncate measures
// first, so "fits here" is "the full path neither truncates nor reorders
// the additional section", and a response that does not fit is declined.

// fastMaxGlue bounds the additional-section RRsets one answer may carry;
// an answer with more (a huge NS or MX set) is declined.
const fastMaxGlue = 16

// maxNameWire is the longest name in wire form (RFC 1035 section 3.1).
const maxNameWire = 255

// fastScratch is one reader's working memory, reused for every packet.
type fastScratch struct {
	msg  dns.Msg // a one-record message, packed to take a record's wire form
	one  [1]dns.RR
	pack [dns.MaxMsgSize]byte
	glue [fastMaxGlue][]dns.RR
	name [maxNameWire + 2]byte // lowercase query name
	alt  [maxNameWire + 2]byte // wildcards
	// CNAME targets followed so far, as resolve's visited list
	visited    [maxCNAMEChain][maxNameWire + 2]byte
	visitedLen [maxCNAMEChain]int
	cookie     [clientCookieLen + serverCookieLen]byte // the reply's cookie
}

// fastQuery is what the parser took from a query packet.
type fastQuery struct {
	pkt       []byte
	qnameEnd  int // offset just past the question name
	qtype     uint16
	name      []byte // lowercase presentation form, in scratch
	opt       bool
	udpSize   uint16
	ecs       bool
	ecsFamily uint16
	ecsSource uint8
	ecsAddr   netip.Addr
	ecsBytes  []byte // the address bytes as sent (exactly the prefix's)
	ecsUsable bool
	cookie    []byte // the COOKIE option's data, nil without one
}

// fastResult is what the metrics need to know about a fast answer.
type fastResult struct {
	zone     string // "" outside every zone
	qtype    uint16
	rcode    int
	answered answered
	cookie   bool   // the query carried a COOKIE option
	name     []byte // the lowercase query name, in the scratch: valid until the next query
	qend     int    // the length of header and question, which a slipped reply keeps
	// cookieValid: it carried a valid server cookie (answered only when
	// cookies are on), which exempts it from rate limiting
	cookieValid bool
	// volatile: the answer depended on state outside the snapshot (a
	// session), so the answer cache must not keep it
	volatile bool
}

// fastAnswer writes the response to the query in pkt from a client at
// src into out and returns its length; ok is false when it declines, and
// out then holds nothing of value.
func (s *Snapshot) fastAnswer(pkt []byte, src netip.Addr, out []byte, sc *fastScratch) (n int, res fastResult, ok bool) {
	return s.fastAnswerCookie(pkt, src, out, sc, nil)
}

// fastAnswerCookie is fastAnswer answering DNS cookies with jar, as the
// full path's protect does; with jar nil a COOKIE option is ignored. A
// malformed cookie, which gets FORMERR, is declined.
func (s *Snapshot) fastAnswerCookie(pkt []byte, src netip.Addr, out []byte, sc *fastScratch, jar *cookieJar) (n int, res fastResult, ok bool) {
	var q fastQuery
	if !parseFast(pkt, &q, sc) {
		return 0, res, false
	}
	res.qtype, res.cookie, res.name, res.qend = q.qtype, q.cookie != nil, q.name, q.qnameEnd+4
	var cookie []byte // the reply's
	if jar != nil && q.cookie != nil {
		v, fresh := jar.check(q.cookie, src)
		switch {
		case v == cookieMalformed:
			return 0, res, false
		case fresh:
			cookie = jar.make(sc.cookie[:0], q.cookie[:clientCookieLen], src)
		default:
			cookie = q.cookie
		}
		res.cookieValid = v == cookieValid
	}
	limit := dns.MinMsgSize
	if q.opt {
		limit = int(max(dns.MinMsgSize, min(q.udpSize, s.udpSize)))
	}
	w := fastWriter{buf: out[:min(limit, len(out))]}
	// Header: ID, QR, opcode QUERY, RD and CD copied; AA, TC, RA, Z, AD clear.
	w.u16(binary.BigEndian.Uint16(pkt))
	w.u16(1<<15 | binary.BigEndian.Uint16(pkt[2:])&(1<<8|1<<4))
	w.u16(1)
	w.u16(0)
	w.u16(0)
	w.u16(0)
	w.bytes(pkt[12 : q.qnameEnd+4])

	z := s.fastZone(q.name)
	if z == nil {
		// Not ours: REFUSED, as in answer.
		w.rcode(dns.RcodeRefused)
		if q.opt {
			w.opt(s.udpSize, nil, 0, cookie)
		}
		return w.finish(res, dns.RcodeRefused)
	}
	res.zone = z.origin
	w.flag(1 << 10) // AA
	cq := request{client: src, snap: s, cacheOnly: true}
	if q.ecsUsable {
		cq.client = q.ecsAddr
	}
	cq.key = geoKey(cq.client)
	glue := 0
	rcode, scope, ok := s.fastResolve(z, &w, sc, &q, &cq, &glue)
	if !ok {
		return 0, res, false
	}
	res.answered, res.volatile = cq.answered, cq.usedSession
	w.rcode(rcode)
	if q.opt {
		if !q.ecsUsable {
			scope = 0
		}
		w.opt(s.udpSize, &q, scope, cookie)
	}
	for _, set := range sc.glue[:glue] {
		for _, rr := range set {
			w.record(sc, rr, nil, false, 0)
			w.count(10)
		}
	}
	return w.finish(res, rcode)
}

// parseFast reads a query the fast path can take, or reports false.
func parseFast(pkt []byte, q *fastQuery, sc *fastScratch) bool {
	if len(pkt) < 12+1+4 {
		return false
	}
	bits := binary.BigEndian.Uint16(pkt[2:])
	// QR (a response: the full path ignores it) and any opcode but QUERY
	// go the full way; so do counts other than one question and at most
	// one additional record.
	if bits&(1<<15|0xf<<11) != 0 ||
		binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 ||
		binary.BigEndian.Uint16(pkt[8:]) != 0 || binary.BigEndian.Uint16(pkt[10:]) > 1 {
		return false
	}
	off, nlen, ok := lowerName(pkt, 12, sc.name[:])
	if !ok || off+4 > len(pkt) {
		return false
	}
	q.pkt, q.qnameEnd, q.name = pkt, off, sc.name[:nlen]
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	switch q.qtype {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR:
		return false
	}
	if binary.BigEndian.Uint16(pkt[off+2:]) != dns.ClassINET {
		return false
	}
	off += 4
	if binary.BigEndian.Uint16(pkt[10:]) == 1 {
		if off, ok = parseOPT(pkt, off, q); !ok {
			return false
		}
	}
	// Trailing bytes (miekg/dns ignores them) or a short count: declined.
	return off == len(pkt)
}

// lowerName reads an uncompressed name at off into dst as lowercase
// presentation text and returns the offset past it and the text's
// length. Names with bytes miekg/dns would escape are declined, so the
// text is exactly what the full path looks up.
func lowerName(pkt []byte, off int, dst []byte) (int, int, bool) {
	n, wire := 0, 0
	for {
		if off >= len(pkt) {
			return 0, 0, false
		}
		l := int(pkt[off])
		off++
		wire += l + 1
		if l == 0 {
			break
		}
		// The root label's byte must still fit in the 255.
		if l > 63 || off+l > len(pkt) || wire >= maxNameWire {
			return 0, 0, false
		}
		for _, c := range pkt[off : off+l] {
			switch {
			case c <= ' ' || c >= 0x7f, c == '.', c == '\'', c == '@', c == ';', c == '(', c == ')', c == '"', c == '\\':
				return 0, 0, false
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			dst[n] = c
			n++
		}
		dst[n] = '.'
		n++
		off += l
	}
	if n == 0 {
		dst[0] = '.'
		n = 1
	}
	return off, n, true
}

// parseOPT reads the OPT record the query ends with.
func parseOPT(pkt []byte, off int, q *fastQuery) (int, bool) {
	// Root owner, type OPT, then class (payload size), TTL and length.
	if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != dns.TypeOPT {
		return 0, false
	}
	q.opt = true
	q.udpSize = binary.BigEndian.Uint16(pkt[off+3:])
	// Extended rcode, version and flags all zero: version 0 without DO.
	if binary.BigEndian.Uint32(pkt[off+5:]) != 0 {
		return 0, false
	}
	rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
	off += 11
	end := off + rdlen
	if end > len(pkt) {
		return 0, false
	}
	for off < end {
		if off+4 > end {
			return 0, false
		}
		code, l := binary.BigEndian.Uint16(pkt[off:]), int(binary.BigEndian.Uint16(pkt[off+2:]))
		off += 4
		if off+l > end {
			return 0, false
		}
		switch code {
		case dns.EDNS0COOKIE:
			// Answered when cookies are on, ignored like padding when
			// they are off. The full path reads the first of several.
			if q.cookie != nil {
				return 0, false
			}
			q.cookie = pkt[off : off+l : off+l]
		case dns.EDNS0PADDING:
			// Ignored by the full path too; it unpacks whatever it holds.
		case dns.EDNS0SUBNET:
			if q.ecs || !parseECS(pkt[off:off+l], q) {
				return 0, false
			}
		default:
			return 0, false
		}
		off += l
	}
	return off, true
}

// parseECS takes the ECS options clientSubnet accepts whose echo the
// full path writes with the very bytes sent: family 1 or 2, the address
// exactly as long as its prefix, no bits set past it.
func parseECS(b []byte, q *fastQuery) bool {
	if len(b) < 4 {
		return false
	}
	family, source, scope := binary.BigEndian.Uint16(b), b[2], b[3]
	bits := 32
	if family == 2 {
		bits = 128
	} else if family != 1 {
		return false
	}
	if int(source) > bits || int(scope) > bits || len(b)-4 != (int(source)+7)/8 {
		return false
	}
	var a16 [16]byte
	copy(a16[:], b[4:])
	var addr netip.Addr
	if family == 1 {
		addr = netip.AddrFrom4([4]byte(a16[:4]))
	} else {
		addr = netip.AddrFrom16(a16)
		if addr.Is4In6() {
			return false
		}
	}
	if p, _ := addr.Prefix(int(source)); p.Addr() != addr {
		return false
	}
	q.ecs, q.ecsFamily, q.ecsSource, q.ecsAddr, q.ecsBytes = true, family, source, addr, b[4:]
	q.ecsUsable = source > 0 && isGlobal(addr)
	return true
}

// fastZone is findZone over the parsed name; the map look-ups with a
// converted byte slice do not allocate.
func (s *Snapshot) fastZone(name []byte) *zone {
	for off := 0; ; {
		if z, ok := s.zones[string(name[off:])]; ok {
			return z
		}
		next, end := nextLabel(name, off)
		if end {
			return nil
		}
		off = next
	}
}

// nextLabel is dns.NextLabel for escape-free names held as bytes.
func nextLabel(name []byte, off int) (int, bool) {
	for i := off; i < len(name)-1; i++ {
		if name[i] == '.' {
			return i + 1, false
		}
	}
	return len(name), true
}

// fastLookup is zone.lookup over bytes; alt holds the wildcard's name.
func (z *zone) fastLookup(name, alt []byte) *node {
	if n, ok := z.nodes[string(name)]; ok {
		return n
	}
	for off := 0; ; {
		var end bool
		off, end = nextLabel(name, off)
		if end {
			return nil
		}
		if _, ok := z.nodes[string(name[off:])]; !ok {
			continue
		}
		alt[0], alt[1] = '*', '.'
		k := copy(alt[2:], name[off:])
		return z.nodes[string(alt[:2+k])]
	}
}

// fastResolve is resolve over wire bytes: the same walk, in the same
// order, writing answer and authority records as it goes. It returns the
// rcode and the ECS scope; ok is false to decline.
func (s *Snapshot) fastResolve(z *zone, w *fastWriter, sc *fastScratch, q *fastQuery, cq *request, glue *int) (int, int, bool) {
	name := q.name
	var owner []byte // nil: the question's own name, as the client wrote it
	visited, visitedLen := &sc.visited, &sc.visitedLen
	for hop := 0; ; hop++ {
		n := z.fastLookup(name, sc.alt[:])
		if n == nil {
			return dns.RcodeNameError, 0, w.soa(sc, z, z.negTTL)
		}
		if n.service != nil {
			scope, ok := s.fastService(z, w, sc, n.service, q, owner, cq)
			return dns.RcodeSuccess, scope, ok
		}
		if set := n.rrsets[q.qtype]; len(set) > 0 {
			for _, rr := range set {
				if !w.recordFor(q, sc, rr, owner, false, 0) {
					return 0, 0, false
				}
				w.count(6)
			}
			return dns.RcodeSuccess, 0, fastGlue(z, sc, set, glue)
		}
		cname := n.rrsets[dns.TypeCNAME]
		if len(cname) == 0 {
			return dns.RcodeSuccess, 0, w.soa(sc, z, z.negTTL)
		}
		for _, rr := range cname {
			if !w.recordFor(q, sc, rr, owner, false, 0) {
				return 0, 0, false
			}
			w.count(6)
		}
		target, ok := lowerText(cname[0].(*dns.CNAME).Target, visited[hop][:0])
		if !ok {
			return 0, 0, false
		}
		visitedLen[hop] = len(target)
		if !z.fastInZone(target) || hop+1 >= maxCNAMEChain {
			return dns.RcodeSuccess, 0, true
		}
		// The full path remembers the names it looked up: the query's,
		// then each target. Slot hop holds this hop's target; the loop
		// check compares it with the names looked up so far.
		if string(target) == string(q.name) {
			return dns.RcodeSuccess, 0, true
		}
		for k := 0; k < hop; k++ {
			if string(visited[k][:visitedLen[k]]) == string(target) {
				return dns.RcodeSuccess, 0, true
			}
		}
		name, owner = target, target
	}
}

// lowerText lowercases a stored name into dst; names that carry escapes
// are declined.
func lowerText(name string, dst []byte) ([]byte, bool) {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '\\' {
			return nil, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// fastInZone is zone.InZone for lowercase escape-free names.
func (z *zone) fastInZone(name []byte) bool {
	o := z.origin
	if o == "." {
		return true
	}
	if len(name) < len(o) || string(name[len(name)-len(o):]) != o {
		return false
	}
	return len(name) == len(o) || name[len(name)-len(o)-1] == '.'
}

// glueTarget is the name a record points at whose in-zone addresses go
// in the additional section: NS glue, and MX and SRV targets.
func glueTarget(rr dns.RR) (string, bool) {
	switch r := rr.(type) {
	case *dns.NS:
		return r.Ns, true
	case *dns.MX:
		return r.Mx, true
	case *dns.SRV:
		return r.Target, true
	}
	return "", false
}

// fastGlue notes the in-zone addresses addAdditional would add.
func fastGlue(z *zone, sc *fastScratch, set []dns.RR, glue *int) bool {
	var buf [maxNameWire + 2]byte
	for _, rr := range set {
		target, ok := glueTarget(rr)
		if !ok {
			return true
		}
		t, ok := lowerText(target, buf[:0])
		if !ok {
			return false
		}
		if !z.fastInZone(t) {
			continue
		}
		if n, ok := z.nodes[string(t)]; ok {
			for _, typ := range [2]uint16{dns.TypeA, dns.TypeAAAA} {
				if set := n.rrsets[typ]; len(set) > 0 {
					if *glue == fastMaxGlue {
						return false
					}
					sc.glue[*glue] = set
					*glue++
				}
			}
		}
	}
	return true
}

// fastService is answerService over wire bytes; the choice itself is
// pick's, the same code the full path runs.
func (s *Snapshot) fastService(z *zone, w *fastWriter, sc *fastScratch, svc *service, q *fastQuery, owner []byte, cq *request) (int, bool) {
	ttl := s.ttl(svc)
	qtype := q.qtype
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		return 0, w.soa(sc, z, ttl)
	}
	var buf [16]int
	picked, scope := s.pick(svc, cq, buf[:0])
	// A session look-up that misses this instance's cache may wait on the
	// store: pick declined it, and the full path, off the reader, takes it.
	if cq.declined {
		return 0, false
	}
	if len(picked) > 0 {
		cq.answered = answered{service: svc.name, datacenter: s.datacenters[picked[0]].ID}
	}
	written := 0
	for _, i := range picked {
		dc := &s.datacenters[i]
		addrs := dc.a
		if qtype == dns.TypeAAAA {
			addrs = dc.aaaa
		}
		if svc.spread && len(addrs) > 1 {
			addrs = addrs[:1]
		}
		for _, a := range addrs {
			if svc.answers > 0 && written >= svc.answers {
				break
			}
			if !w.addr(q, owner, a, ttl) {
				return 0, false
			}
			w.count(6)
			written++
		}
	}
	if written == 0 {
		return scope, w.soa(sc, z, ttl)
	}
	return scope, true
}

// fastWriter appends a response to buf; any write past its end marks it
// overflowed, which declines the packet.
type fastWriter struct {
	buf  []byte
	off  int
	over bool
}

func (w *fastWriter) room(n int) bool {
	if w.over || w.off+n > len(w.buf) {
		w.over = true
		return false
	}
	return true
}

func (w *fastWriter) u16(v uint16) {
	if w.room(2) {
		binary.BigEndian.PutUint16(w.buf[w.off:], v)
		w.off += 2
	}
}

func (w *fastWriter) u32(v uint32) {
	if w.room(4) {
		binary.BigEndian.PutUint32(w.buf[w.off:], v)
		w.off += 4
	}
}

func (w *fastWriter) bytes(b []byte) {
	if w.room(len(b)) {
		w.off += copy(w.buf[w.off:], b)
	}
}

// flag sets bits in the header's flags word.
func (w *fastWriter) flag(f uint16) {
	binary.BigEndian.PutUint16(w.buf[2:], binary.BigEndian.Uint16(w.buf[2:])|f)
}

func (w *fastWriter) rcode(rc int) { w.flag(uint16(rc & 0xf)) }

// count adds one to the header count at byte offset at (6 answer, 8
// authority, 10 additional).
func (w *fastWriter) count(at int) {
	binary.BigEndian.PutUint16(w.buf[at:], binary.BigEndian.Uint16(w.buf[at:])+1)
}

// owner writes a record's owner: the question's name as the client wrote
// it when owner is nil, else the lowercase presentation name.
func (w *fastWriter) owner(q *fastQuery, owner []byte) {
	if owner == nil {
		w.bytes(q.pkt[12:q.qnameEnd])
		return
	}
	w.text(owner)
}

// text writes an escape-free presentation name in wire form.
func (w *fastWriter) text(name []byte) {
	if len(name) == 1 && name[0] == '.' {
		w.bytes([]byte{0})
		return
	}
	start := 0
	for i, c := range name {
		if c != '.' {
			continue
		}
		if !w.room(1 + i - start) {
			return
		}
		w.buf[w.off] = byte(i - start)
		w.off++
		w.off += copy(w.buf[w.off:], name[start:i])
		start = i + 1
	}
	w.bytes([]byte{0})
}

// addr writes an A or AAAA record.
func (w *fastWriter) addr(q *fastQuery, owner []byte, a netip.Addr, ttl uint32) bool {
	w.owner(q, owner)
	if a.Is4() {
		w.u16(dns.TypeA)
		w.u16(dns.ClassINET)
		w.u32(ttl)
		w.u16(4)
		b := a.As4()
		w.bytes(b[:])
	} else {
		w.u16(dns.TypeAAAA)
		w.u16(dns.ClassINET)
		w.u32(ttl)
		w.u16(16)
		b := a.As16()
		w.bytes(b[:])
	}
	return !w.over
}

// record writes a stored record under its own owner name.
func (w *fastWriter) record(sc *fastScratch, rr dns.RR, owner []byte, setTTL bool, ttl uint32) bool {
	return w.recordFor(nil, sc, rr, owner, setTTL, ttl)
}

// recordFor writes a stored record under owner, or, when owner is nil,
// the question's name (q set) or the record's own (q nil). The record's
// wire form comes from miekg/dns packing it alone, uncompressed, which
// reads the shared record without writing to it.
func (w *fastWriter) recordFor(q *fastQuery, sc *fastScratch, rr dns.RR, owner []byte, setTTL bool, ttl uint32) bool {
	if w.over {
		return false
	}
	sc.one[0] = rr
	sc.msg.Answer = sc.one[:]
	b, err := sc.msg.PackBuffer(sc.pack[:])
	sc.one[0], sc.msg.Answer = nil, nil
	if err != nil || len(b) < 12 {
		w.over = true
		return false
	}
	// Skip the stored owner name (uncompressed: labels up to the root).
	off := 12
	for off < len(b) && b[off] != 0 {
		off += int(b[off]) + 1
	}
	off++
	if off+10 > len(b) {
		w.over = true
		return false
	}
	switch {
	case owner != nil:
		w.text(owner)
	case q != nil:
		w.owner(q, nil)
	default:
		w.bytes(b[12:off])
	}
	start := w.off
	w.bytes(b[off:])
	if setTTL && !w.over {
		binary.BigEndian.PutUint32(w.buf[start+4:], ttl)
	}
	return !w.over
}

// soa writes the zone's SOA into the authority section with the given TTL.
func (w *fastWriter) soa(sc *fastScratch, z *zone, ttl uint32) bool {
	ok := w.record(sc, z.soa, nil, true, ttl)
	w.count(8)
	return ok
}

// opt writes the response's OPT record: our payload size and, when the
// query carried ECS, its echo with the answer's scope, then the cookie
// when there is one (the full path's order).
func (w *fastWriter) opt(udpSize uint16, q *fastQuery, scope int, cookie []byte) {
	w.bytes([]byte{0})
	w.u16(dns.TypeOPT)
	w.u16(udpSize)
	w.u32(0)
	rdlen := 0
	if q != nil && q.ecs {
		rdlen += 8 + len(q.ecsBytes)
	}
	if cookie != nil {
		rdlen += 4 + len(cookie)
	}
	w.u16(uint16(rdlen))
	if q != nil && q.ecs {
		w.u16(dns.EDNS0SUBNET)
		w.u16(uint16(4 + len(q.ecsBytes)))
		w.u16(q.ecsFamily)
		if w.room(2) {
			w.buf[w.off], w.buf[w.off+1] = q.ecsSource, uint8(scope)
			w.off += 2
		}
		w.bytes(q.ecsBytes)
	}
	if cookie != nil {
		w.u16(dns.EDNS0COOKIE)
		w.u16(uint16(len(cookie)))
		w.bytes(cookie)
	}
	if !w.over {
		w.count(10)
	}
}

func (w *fastWriter) finish(res fastResult, rcode int) (int, fastResult, bool) {
	if w.over {
		return 0, res, false
	}
	res.rcode = rcode
	return w.off, res, true
}

// slipWire turns the fast answer in out into the empty truncated reply
// rate limiting slips: header and question kept, TC set, no records, not
// even the OPT. It returns the reply's length.
func slipWire(out []byte, qend int) int {
	binary.BigEndian.PutUint16(out[2:], binary.BigEndian.Uint16(out[2:])|1<<9)
	clear(out[6:12])
	return qend
}
