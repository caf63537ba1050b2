package gslb

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/gslbd/gslbd/gslb/geo"
)

// Policy ranks the datacenters a service answers with. It appends to dst
// at most want datacenters, best first, among those the request admits
// (q.usable), reads only the snapshot and the request, allocates nothing,
// and returns the ECS scope its choice depended on.
type Policy interface {
	Select(s *Snapshot, svc *service, q *request, want int, dst []int) ([]int, int)
	Name() string
}

// selectDCs calls the service's policy. The switch on concrete types is
// what lets the compiler see that neither the request nor the caller's
// stack buffer outlives the call; through the interface both would escape
// to the heap, two allocations on every query.
func (svc *service) selectDCs(s *Snapshot, q *request, dst []int) ([]int, int) {
	switch p := svc.policy.(type) {
	case *scorePolicy:
		return p.Select(s, svc, q, svc.want, dst)
	case *hybridPolicy:
		return p.Select(s, svc, q, svc.want, dst)
	case *geoPolicy:
		return p.Select(s, svc, q, svc.want, dst)
	case *weightedPolicy:
		return p.Select(s, svc, q, svc.want, dst)
	case failoverPolicy:
		return p.Select(s, svc, q, svc.want, dst)
	}
	// allPolicy, and the fallback: a policy added to newPolicy but not
	// here answers with every datacenter, which TestPolicies would catch.
	return allPolicy{}.Select(s, svc, q, svc.want, dst)
}

// request is what policies may know about the client. The location is
// looked up on first use: static records and location-blind policies
// never pay for GeoIP.
type request struct {
	client netip.Addr   // the address located: ECS when usable, else the source
	key    netip.Prefix // client prefix for hashing: /24 or /56 of client
	snap   *Snapshot
	loc    geo.Location
	found  bool
	// locScope overrides the location's scope when a network target
	// supplied the location: the target's prefix is what decided it.
	locScope int
	trace    *Trace
	// Fail-open and spillover: when no datacenter of the service is up,
	// or every up one is full, policies choose as if they were not.
	ignoreDown, ignoreFull bool
	// answered is the service and first datacenter the query got.
	answered answered
	// cacheOnly: the UDP fast path asks, which must not wait, so a
	// session comes from the local cache or not at all; declined says it
	// was not there and the full path must answer. usedSession: the
	// answer depended on a session, which no snapshot swap announces, so
	// it must not be replayed from the answer cache.
	cacheOnly, declined, usedSession bool
}

func (q *request) location() *geo.Location {
	if !q.found {
		q.loc = q.snap.locate(q.client)
		q.found = true
		q.locScope = -1
		if q.trace != nil {
			q.trace.setLocation(q.loc, q.snap.locator != nil)
		}
	}
	return &q.loc
}

// usable reports whether a datacenter may take this client: up (or every
// one is down and the service fails open), and below its capacity (or
// every up one is full, so spilling over has nowhere to go).
func (q *request) usable(dc *Datacenter) bool {
	return (dc.Up || q.ignoreDown) && (q.ignoreFull || dc.Load < dc.Capacity && q.admits(dc))
}

// admits reports whether a datacenter in slow start takes this client:
// the client prefix's hash against the ramp, so the admitted share grows
// smoothly and a prefix once admitted stays admitted as the ramp rises.
func (q *request) admits(dc *Datacenter) bool {
	if dc.ramp >= 1 {
		return true
	}
	u := float64(mix(prefixHash(q.key)^dc.hash^0x5bd1e995)>>11) / (1 << 53)
	return u < dc.ramp
}

// locationScope is the ECS scope of an answer that depended only on the
// client's location: every address of the database network is in the same
// place. With no database every client is at the default location, and
// nothing about the client mattered.
func (q *request) locationScope() int {
	l := q.location()
	if q.locScope >= 0 {
		return q.locScope
	}
	if !l.Network.IsValid() {
		return 0
	}
	return l.Network.Bits()
}

// keyScope is the scope of an answer that depended on the client prefix
// itself (a hash of it), which must not be shared beyond that prefix.
func (q *request) keyScope() int { return q.key.Bits() }

// whyNot says why a datacenter was passed over.
func (q *request) whyNot(dc *Datacenter) string {
	switch {
	case !dc.Up && !q.ignoreDown:
		return "down"
	case dc.Load >= dc.Capacity && !q.ignoreFull:
		return "full: load has reached capacity, so it takes no new clients"
	case !q.admits(dc) && !q.ignoreFull:
		return fmt.Sprintf("slow start: taking %.0f%% of new clients, not this prefix yet", dc.ramp*100)
	}
	return ""
}

// pickInOrder appends the first want usable datacenters of ids: the
// order is the operator's preference.
func pickInOrder(s *Snapshot, ids []int, q *request, want int, dst []int) []int {
	n := 0
	for _, i := range ids {
		if n == want {
			break
		}
		if q.usable(&s.datacenters[i]) {
			dst = append(dst, i)
			n++
		}
	}
	return dst
}

// traceList records the candidates of an ordered choice for explain.
func traceList(s *Snapshot, ids []int, q *request, picked []int, chosenWhy, otherWhy string) {
	for _, i := range ids {
		dc := &s.datacenters[i]
		c := Candidate{Datacenter: dc.ID, Up: dc.Up}
		for _, p := range picked {
			if p == i {
				c.Chosen = true
			}
		}
		switch {
		case c.Chosen:
			c.Why = chosenWhy
		case q.whyNot(dc) != "":
			c.Why = q.whyNot(dc)
		default:
			c.Why = otherWhy
		}
		q.trace.Candidates = append(q.trace.Candidates, c)
	}
}

// allPolicy answers with every usable datacenter.
type allPolicy struct{}

func (allPolicy) Name() string { return "all" }

func (allPolicy) Select(s *Snapshot, svc *service, q *request, want int, dst []int) ([]int, int) {
	start := len(dst)
	dst = pickInOrder(s, svc.datacenters, q, want, dst)
	if q.trace != nil {
		traceList(s, svc.datacenters, q, dst[start:], "answered", "beyond the answers limit")
		q.trace.Reason = "every usable datacenter is answered"
	}
	return dst, 0
}

// failoverPolicy is active-passive: the first usable datacenter in the
// configured order wins; the rest wait.
type failoverPolicy struct{}

func (failoverPolicy) Name() string { return "failover" }

func (failoverPolicy) Select(s *Snapshot, svc *service, q *request, want int, dst []int) ([]int, int) {
	start := len(dst)
	dst = pickInOrder(s, svc.datacenters, q, want, dst)
	if q.trace != nil {
		traceList(s, svc.datacenters, q, dst[start:], "first usable in the failover order", "standby: an earlier datacenter is usable")
		q.trace.Reason = "failover: the first usable datacenter in the configured order"
	}
	return dst, 0
}

func round(v float64, places int) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	f := math.Pow(10, float64(places))
	return math.Round(v*f) / f
}

// point is a place as a unit vector from the Earth's centre. The
// great-circle distance between two is 2R·asin(chord/2): the same value as
// the haversine formula, with the trigonometry of the datacenters done
// once when the snapshot is built instead of on every query.
type point struct{ x, y, z float64 }

func pointAt(latDeg, lonDeg float64) point {
	lat, lon := latDeg*math.Pi/180, lonDeg*math.Pi/180
	return point{math.Cos(lat) * math.Cos(lon), math.Cos(lat) * math.Sin(lon), math.Sin(lat)}
}

func (a point) distanceKM(b point) float64 {
	dx, dy, dz := a.x-b.x, a.y-b.y, a.z-b.z
	chord := math.Sqrt(dx*dx + dy*dy + dz*dz)
	return 2 * earthRadiusKM * math.Asin(math.Min(1, chord/2))
}

func prefixHash(p netip.Prefix) uint64 {
	a := p.Addr().As16()
	h := uint64(14695981039346656037)
	for _, b := range a {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h ^ uint64(p.Bits())
}

func stringHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// mix is splitmix64's finaliser: it makes every input bit move every
// output bit, which rendezvous hashing needs to spread clients evenly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
