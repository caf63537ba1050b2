package gslb

import (
	"strings"

	"github.com/miekg/dns"
)

// maxCNAMEChain bounds in-zone CNAME chasing; a longer chain is almost
// certainly a loop the configuration did not intend, and the resolver can
// take over from where the answer stops.
const maxCNAMEChain = 8

// resolve fills m's sections for a query inside z and returns the ECS
// scope the answer depended on (0 for static data). qname keeps the
// client's case for the owner names it echoes; name is its lowercase form.
func (s *Snapshot) resolve(z *zone, m *dns.Msg, qname, name string, qtype uint16, q *request) int {
	m.Authoritative = true
	owner := qname
	visited := [maxCNAMEChain]string{}
	for hop := 0; ; hop++ {
		n := z.lookup(name)
		if n == nil {
			// After a CNAME too: the rcode describes the last name in the
			// chain (RFC 6604), and chasing only continues inside the zone.
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, z.negativeSOA(z.negTTL))
			return 0
		}
		if n.service != nil {
			return s.answerService(z, m, n.service, owner, qtype, q)
		}
		if qtype == dns.TypeANY {
			if len(n.rrsets) == 0 {
				m.Ns = append(m.Ns, z.negativeSOA(z.negTTL))
				return 0
			}
			// RFC 8482: one small, honest answer instead of everything.
			m.Answer = append(m.Answer, &dns.HINFO{
				Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: z.negTTL},
				Cpu: "RFC8482",
			})
			return 0
		}
		if set := n.rrsets[qtype]; len(set) > 0 {
			m.Answer = appendOwned(m.Answer, set, owner)
			s.addAdditional(z, m, set)
			return 0
		}
		cname := n.rrsets[dns.TypeCNAME]
		if len(cname) == 0 {
			// NODATA, also for an empty non-terminal (RFC 8020 section 2).
			m.Ns = append(m.Ns, z.negativeSOA(z.negTTL))
			return 0
		}
		m.Answer = appendOwned(m.Answer, cname, owner)
		target := strings.ToLower(cname[0].(*dns.CNAME).Target)
		if !z.InZone(target) || hop+1 >= maxCNAMEChain {
			return 0
		}
		visited[hop] = name
		for _, seen := range visited[:hop+1] {
			if seen == target {
				return 0 // a loop: what was answered so far is all there is
			}
		}
		name, owner = target, target
	}
}

// lookup finds the node for name, synthesising from a wildcard where RFC
// 4592 allows: only when name does not exist, and only from the wildcard
// child of its closest encloser.
func (z *zone) lookup(name string) *node {
	if n, ok := z.nodes[name]; ok {
		return n
	}
	for off := 0; ; {
		var end bool
		off, end = dns.NextLabel(name, off)
		if end {
			return nil
		}
		encloser := name[off:]
		if _, ok := z.nodes[encloser]; !ok {
			continue
		}
		return z.nodes["*."+encloser]
	}
}

func (z *zone) negativeSOA(ttl uint32) dns.RR {
	soa := *z.soa
	soa.Hdr.Ttl = ttl
	return &soa
}

// appendOwned copies a stored RRset into an answer under the owner name
// the client used, so a 0x20-randomised question gets its case back.
func appendOwned(dst []dns.RR, set []dns.RR, owner string) []dns.RR {
	for _, rr := range set {
		c := dns.Copy(rr)
		c.Header().Name = owner
		dst = append(dst, c)
	}
	return dst
}

// addAdditional adds in-zone addresses for names an answer points at: glue
// for NS, and the targets of MX and SRV, saving the resolver a round trip.
func (s *Snapshot) addAdditional(z *zone, m *dns.Msg, set []dns.RR) {
	for _, rr := range set {
		target, ok := glueTarget(rr)
		if !ok {
			return
		}
		target = strings.ToLower(target)
		if !z.InZone(target) {
			continue
		}
		if n, ok := z.nodes[target]; ok {
			m.Extra = append(m.Extra, n.rrsets[dns.TypeA]...)
			m.Extra = append(m.Extra, n.rrsets[dns.TypeAAAA]...)
		}
	}
}

// answerService answers A and AAAA from the datacenters the service's
// policy picks. Other types are NODATA with the service's TTL on the SOA,
// so that a negative answer is not cached for longer than a positive one
// would be, and a failover is not hidden behind it.
func (s *Snapshot) answerService(z *zone, m *dns.Msg, svc *service, owner string, qtype uint16, q *request) int {
	ttl := s.ttl(svc)
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
	case dns.TypeANY:
		qtype = dns.TypeA
	default:
		m.Ns = append(m.Ns, z.negativeSOA(ttl))
		return 0
	}
	if q.trace != nil {
		q.trace.Service, q.trace.Policy = svc.name, svc.policy.Name()
	}
	var buf [16]int
	picked, scope := s.pick(svc, q, buf[:0])
	// A and AAAA come from the same choice: a picked datacenter without an
	// address of the asked family gives NODATA, never a different site.
	before := len(m.Answer)
	if len(picked) > 0 {
		q.answered = answered{service: svc.name, datacenter: s.datacenters[picked[0]].ID}
	}
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
			if svc.answers > 0 && len(m.Answer)-before >= svc.answers {
				break
			}
			m.Answer = append(m.Answer, addrRR(owner, a, ttl))
		}
		if q.trace != nil {
			q.trace.Winners = append(q.trace.Winners, dc.ID)
		}
	}
	if len(m.Answer) == before {
		m.Ns = append(m.Ns, z.negativeSOA(ttl))
	}
	return scope
}

// pick chooses the service's datacenters for the request: network and
// ASN targets first, then the policy; with spillover past full
// datacenters and the service's fail-open rule when none is up.
func (s *Snapshot) pick(svc *service, q *request, dst []int) ([]int, int) {
	up, roomy, ramping := false, false, false
	for _, i := range svc.datacenters {
		dc := &s.datacenters[i]
		ramping = ramping || dc.ramp < 1
		if dc.Up {
			up = true
			roomy = roomy || dc.Load < dc.Capacity && q.admits(dc)
		}
	}
	if !up {
		switch svc.whenAllDown {
		case "nodata":
			if q.trace != nil {
				q.trace.Reason = "every datacenter of the service is down; when_all_down: nodata"
			}
			return dst, 0
		case "first":
			if q.trace != nil {
				q.trace.Reason = "every datacenter of the service is down; when_all_down: first answers the first listed"
			}
			return append(dst, svc.datacenters[0]), 0
		}
		// "all": answer as if every datacenter were up. A GSLB that goes
		// silent when its health checks fail turns a monitoring fault
		// into an outage.
		q.ignoreDown = true
	}
	if !roomy {
		// Every up datacenter is full (or, in slow start, not yet taking
		// this client): spill nowhere, answer as if none were.
		q.ignoreFull = true
	}
	for _, t := range [2]*targets{svc.targets, svc.fileTargets()} {
		nt := t.match(q)
		if nt == nil {
			continue
		}
		scope := q.keyScope()
		if nt.prefix.IsValid() {
			scope = nt.prefix.Bits()
		}
		if q.trace != nil {
			q.trace.Target = nt.describe()
		}
		if nt.loc != nil {
			// A location override: the policy decides, from this place.
			q.loc, q.found, q.locScope = *nt.loc, true, scope
			if q.trace != nil {
				q.trace.setLocation(q.loc, true)
				q.trace.Location.Source = "network target " + q.trace.Target
			}
			dst, scope := svc.selectDCs(s, q, dst)
			return dst, s.narrowScope(svc, q, scope, ramping)
		}
		start := len(dst)
		if dst = pickInOrder(s, nt.dcs, q, svc.want, dst); len(dst) > start {
			if q.trace != nil {
				traceList(s, nt.dcs, q, dst[start:], "first usable datacenter of the target", "later in the target's list")
				q.trace.Reason = "the client matches " + q.trace.Target
			}
			// The other table may hold a longer prefix inside this one.
			return dst, s.narrowScope(svc, q, scope, ramping)
		}
		// The target's datacenters are all unusable: the policy decides.
		break
	}
	start := len(dst)
	dst, scope := svc.selectDCs(s, q, dst)
	if svc.sticky && s.affinity != nil && len(dst) > start && q.key.IsValid() {
		dst, scope = s.applySticky(svc, q, dst, start, scope)
	}
	return dst, s.narrowScope(svc, q, scope, ramping)
}

// narrowScope widens an answer's ECS scope to what else it depended on:
// a target table's longer prefixes inside it, and, while a datacenter of
// the service is in slow start, the client prefix whose hash the ramp
// admitted or not.
func (s *Snapshot) narrowScope(svc *service, q *request, scope int, ramping bool) int {
	scope = svc.targets.narrow(q, scope)
	scope = svc.fileTargets().narrow(q, scope)
	if ramping {
		scope = max(scope, q.keyScope())
	}
	return scope
}

// InZone reports whether name lies at or below the zone's origin.
func (z *zone) InZone(name string) bool { return dns.IsSubDomain(z.origin, name) }
