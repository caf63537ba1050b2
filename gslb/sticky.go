package gslb

import (
	"net/netip"
)

// Affinity is the session store as the DNS path sees it. Sticky answers
// from a local cache or within a small budget, and says ok=false rather
// than wait: a miss, a timeout or a store failure is never SERVFAIL and
// never a late answer. Repin only queues a write.
type Affinity interface {
	Sticky(service string, client netip.Prefix, proposal string) (dc, displacedFrom string, ok bool)
	Repin(service string, client netip.Prefix, dc, displacedFrom string)
}

// SetAffinity gives the snapshot its session store; failbackReturn sends
// displaced clients home when their datacenter recovers. Call it before
// the snapshot is published.
func (s *Snapshot) SetAffinity(a Affinity, failbackReturn bool) {
	s.affinity, s.failbackReturn = a, failbackReturn
}

// applySticky puts the client's pinned datacenter first in dst[start:],
// creating the pin from the policy's choice for a new client, moving it
// when the pinned datacenter cannot take the client, and moving it home
// when the datacenter it was displaced from is usable again.
func (s *Snapshot) applySticky(svc *service, q *request, dst []int, start, scope int) ([]int, int) {
	proposal := dst[start]
	dcID, from, ok := s.affinity.Sticky(svc.name, q.key, s.datacenters[proposal].ID)
	if !ok {
		if q.trace != nil {
			q.trace.Session = "no affinity this time (store slow, unreachable or breaker open): the policy's choice"
		}
		return dst, scope
	}
	pinned, known := s.serviceDC(svc, dcID)
	home, homeKnown := s.serviceDC(svc, from)
	why := ""
	switch {
	case from != "" && homeKnown && s.failbackReturn && q.usable(&s.datacenters[home]):
		pinned, why = home, "returned home to "+from+", which recovered"
		s.affinity.Repin(svc.name, q.key, from, "")
	case known && q.usable(&s.datacenters[pinned]):
		why = "pinned to " + dcID
		if dcID == s.datacenters[proposal].ID {
			why += " (the policy's choice, at placement or still)"
		}
	default:
		// The pinned datacenter cannot take the client: move it to the
		// policy's choice and remember where it came from, once.
		orig := dcID
		if from != "" {
			orig = from
		}
		if !known {
			orig = ""
		}
		pinned, why = proposal, "moved from "+dcID+", which cannot take it, to "+s.datacenters[proposal].ID
		s.affinity.Repin(svc.name, q.key, s.datacenters[proposal].ID, orig)
	}
	if q.trace != nil {
		q.trace.Session = why
	}
	// Pinned first, without repeating it among the rest.
	for k := start; k < len(dst); k++ {
		if dst[k] == pinned {
			copy(dst[start+1:k+1], dst[start:k])
			dst[start] = pinned
			return dst, q.keyScope()
		}
	}
	dst[start] = pinned
	return dst, q.keyScope()
}

// serviceDC finds a datacenter of the service by ID.
func (s *Snapshot) serviceDC(svc *service, id string) (int, bool) {
	if id == "" {
		return 0, false
	}
	for _, i := range svc.datacenters {
		if s.datacenters[i].ID == id {
			return i, true
		}
	}
	return 0, false
}
