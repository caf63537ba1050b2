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

// affinityPeeker is an Affinity that can read a session without creating
// or refreshing it. Explain uses it: asking why a client is answered must
// not pin the client, or let an unauthenticated GET write sessions.
type affinityPeeker interface {
	Peek(service string, client netip.Prefix) (dc, displacedFrom string, found, ok bool)
}

// affinityCached is an Affinity that can answer from its local cache
// without ever waiting; hit is false when only the store could answer.
// The UDP fast path uses it and hands a miss to the full path.
type affinityCached interface {
	StickyCached(service string, client netip.Prefix) (dc, displacedFrom string, hit bool)
}

// SetAffinity gives the snapshot its session store; failbackReturn sends
// displaced clients home when their datacenter recovers; bits4 and bits6
// are the client prefix lengths sessions are keyed on (0: /24 and /56).
// Call it before the snapshot is published.
func (s *Snapshot) SetAffinity(a Affinity, failbackReturn bool, bits4, bits6 int) {
	s.affinity, s.failbackReturn = a, failbackReturn
	s.sessionBits4, s.sessionBits6 = bits4, bits6
}

// SessionPrefix is the client prefix a session is keyed on.
func (s *Snapshot) SessionPrefix(client netip.Addr) netip.Prefix {
	client = client.Unmap()
	bits := s.sessionBits6
	if client.Is4() {
		bits = s.sessionBits4
	}
	if bits == 0 {
		return geoKey(client)
	}
	p, _ := client.Prefix(bits)
	return p
}

// applySticky puts the client's pinned datacenter first in dst[start:],
// creating the pin from the policy's choice for a new client, moving it
// when the pinned datacenter cannot take the client, and moving it home
// when the datacenter it was displaced from is usable again.
func (s *Snapshot) applySticky(svc *service, q *request, dst []int, start, scope int) ([]int, int) {
	proposal := dst[start]
	key := s.SessionPrefix(q.client)
	// Explaining reads without writing: a missing session is reported as
	// the pin a query would create, and no move is stored.
	peeker, readOnly := s.affinity.(affinityPeeker)
	readOnly = readOnly && q.trace != nil
	var dcID, from string
	var ok bool
	if readOnly {
		var found bool
		dcID, from, found, ok = peeker.Peek(svc.name, key)
		if ok && !found {
			dcID = s.datacenters[proposal].ID
			q.trace.Session = "no session yet: a query would pin the client to " + dcID + " (explain stores nothing)"
			return dst, max(scope, key.Bits())
		}
	} else if q.cacheOnly {
		// The fast path: a pin only from this instance's cache; anything
		// else is the full path's, which may wait on the store.
		q.usedSession = true
		c, can := s.affinity.(affinityCached)
		if !can {
			q.declined = true
			return dst, scope
		}
		if dcID, from, ok = c.StickyCached(svc.name, key); !ok {
			q.declined = true
			return dst, scope
		}
	} else {
		dcID, from, ok = s.affinity.Sticky(svc.name, key, s.datacenters[proposal].ID)
	}
	if !ok {
		if q.trace != nil {
			q.trace.Session = "no affinity this time (store slow, unreachable or breaker open): the policy's choice"
		}
		return dst, scope
	}
	pinned, known := s.serviceDC(svc, dcID)
	home, homeKnown := s.serviceDC(svc, from)
	// The reason is spelled out for explain only: building the string
	// on every query would allocate on the fast path.
	var why func() string
	switch {
	case from != "" && homeKnown && s.failbackReturn && q.usable(&s.datacenters[home]):
		pinned = home
		why = func() string { return "returned home to " + from + ", which recovered" }
		if !readOnly {
			s.affinity.Repin(svc.name, key, from, "")
		}
	case known && q.usable(&s.datacenters[pinned]):
		why = func() string {
			if dcID == s.datacenters[proposal].ID {
				return "pinned to " + dcID + " (the policy's choice, at placement or still)"
			}
			return "pinned to " + dcID
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
		pinned = proposal
		why = func() string {
			return "moved from " + dcID + ", which cannot take it, to " + s.datacenters[proposal].ID
		}
		if !readOnly {
			s.affinity.Repin(svc.name, key, s.datacenters[proposal].ID, orig)
		}
	}
	if q.trace != nil {
		q.trace.Session = why()
		if pinned != proposal {
			// The session overrode the policy: say so where the reason and
			// the chosen mark are read, not only in the session line.
			q.trace.Reason = "the client's session: " + q.trace.Session + "; the policy alone picks " + s.datacenters[proposal].ID
			for i := range q.trace.Candidates {
				switch c := &q.trace.Candidates[i]; c.Datacenter {
				case s.datacenters[pinned].ID:
					c.Chosen = true
				case s.datacenters[proposal].ID:
					c.Chosen = svc.want > 1 // still answered after the pinned one
				}
			}
		}
	}
	// Pinned first, without repeating it among the rest.
	for k := start; k < len(dst); k++ {
		if dst[k] == pinned {
			copy(dst[start+1:k+1], dst[start:k])
			dst[start] = pinned
			return dst, max(scope, key.Bits())
		}
	}
	dst[start] = pinned
	return dst, max(scope, key.Bits())
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
