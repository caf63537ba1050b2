package gslb

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/gslb/geo"
)

// Policy picks the datacenters a service answers with, best first. It
// reads only the snapshot and the query, appends into dst so that it
// allocates nothing, and returns the ECS scope its choice depended on.
type Policy interface {
	Select(s *Snapshot, svc *service, q *request, dst []int) ([]int, int)
	Name() string
}

// request is what policies may know about the client. The location is
// looked up on first use: static records and the all policy never pay
// for GeoIP.
type request struct {
	client netip.Addr   // the address located: ECS when usable, else the source
	key    netip.Prefix // client prefix for hashing: /24 or /56 of client
	snap   *Snapshot
	loc    geo.Location
	found  bool
	trace  *Trace
}

func (q *request) location() *geo.Location {
	if !q.found {
		q.loc = q.snap.locate(q.client)
		q.found = true
		if q.trace != nil {
			q.trace.setLocation(q.loc, q.snap.locator != nil)
		}
	}
	return &q.loc
}

// locationScope is the ECS scope of an answer that depended only on the
// client's location: every address of the database network is in the same
// place. With no database every client is at the default location, and
// nothing about the client mattered.
func (q *request) locationScope() int {
	l := q.location()
	if !l.Network.IsValid() {
		return 0
	}
	return l.Network.Bits()
}

// keyScope is the scope of an answer that depended on the client prefix
// itself (a hash of it), which must not be shared beyond that prefix.
func (q *request) keyScope() int { return q.key.Bits() }

// allPolicy answers with every up datacenter.
type allPolicy struct{}

func (allPolicy) Name() string { return "all" }

func (allPolicy) Select(s *Snapshot, svc *service, q *request, dst []int) ([]int, int) {
	for _, i := range svc.datacenters {
		if s.datacenters[i].Up {
			dst = append(dst, i)
		}
		if q.trace != nil {
			dc := &s.datacenters[i]
			q.trace.Candidates = append(q.trace.Candidates, Candidate{Datacenter: dc.ID, Up: dc.Up, Chosen: dc.Up, Why: upWhy(dc.Up, "every up datacenter is answered")})
		}
	}
	return dst, 0
}

func upWhy(up bool, ok string) string {
	if up {
		return ok
	}
	return "down"
}

// scorePolicy ranks datacenters by a weighted sum of distance, load and
// latency; lowest wins. Candidates within slack of the best share clients
// by a stable hash of the client prefix, so near-equal datacenters split
// traffic instead of one taking all of it.
type scorePolicy struct {
	weights         config.Weights
	distanceScaleKM float64
	latencyScaleMS  float64
	slack           float64
}

func (p *scorePolicy) Name() string { return "score" }

// earthRadiusKM is the mean radius, which is what haversine assumes.
const earthRadiusKM = 6371.0088

// terms are a candidate's weighted score components.
type terms struct{ distanceKM, distance, load, latency float64 }

func (p *scorePolicy) score(dc *Datacenter, c point) (float64, terms) {
	var t terms
	t.distanceKM = c.distanceKM(dc.point)
	// Capped at 1 like the latency term: with the default scale (half the
	// Earth's circumference) it never saturates, and a 10,000 km scale
	// saturates it as the origin's normalisation did.
	t.distance = p.weights.Distance * min(t.distanceKM/p.distanceScaleKM, 1)
	t.load = p.weights.Load * dc.Load / dc.Capacity
	t.latency = p.weights.Latency * min(dc.LatencyMS/p.latencyScaleMS, 1)
	return t.distance + t.load + t.latency, t
}

func (p *scorePolicy) Select(s *Snapshot, svc *service, q *request, dst []int) ([]int, int) {
	loc := q.location()
	c := pointAt(loc.Lat, loc.Lon)
	// Scores are kept on the stack for the second pass; services with more
	// datacenters than fit compute them twice rather than allocate.
	var kept [64]float64
	scoreOf := func(k int, dc *Datacenter) float64 {
		if k < len(kept) {
			return kept[k]
		}
		sc, _ := p.score(dc, c)
		return sc
	}
	best := math.Inf(1)
	for k, i := range svc.datacenters {
		dc := &s.datacenters[i]
		if !dc.Up {
			continue
		}
		sc, _ := p.score(dc, c)
		if k < len(kept) {
			kept[k] = sc
		}
		best = min(best, sc)
	}
	if math.IsInf(best, 1) {
		if q.trace != nil {
			p.trace(s, svc, q, c, best, -1)
		}
		return dst, q.locationScope()
	}
	// Rendezvous hashing inside the slack band: each client prefix ranks
	// the candidates by hash and takes the first, so adding or losing a
	// candidate moves only the clients that candidate wins or loses.
	limit := best * (1 + p.slack)
	keyHash := prefixHash(q.key)
	winner, candidates := -1, 0
	var top uint64
	for k, i := range svc.datacenters {
		dc := &s.datacenters[i]
		if !dc.Up || scoreOf(k, dc) > limit {
			continue
		}
		candidates++
		if h := mix(keyHash ^ dc.hash); winner < 0 || h > top {
			winner, top = i, h
		}
	}
	scope := q.locationScope()
	if candidates > 1 {
		scope = q.keyScope()
	}
	if q.trace != nil {
		p.trace(s, svc, q, c, best, winner)
	}
	return append(dst, winner), scope
}

// trace records every candidate for explain. It recomputes the scores,
// which costs nothing on the DNS path: only explain passes a trace.
func (p *scorePolicy) trace(s *Snapshot, svc *service, q *request, c point, best float64, winner int) {
	limit := best * (1 + p.slack)
	var inBand []string
	runnerUp, runnerScore := "", math.Inf(1)
	for _, i := range svc.datacenters {
		dc := &s.datacenters[i]
		sc, t := p.score(dc, c)
		d := &ScoreDetail{
			DistanceKM: round(t.distanceKM, 1), Load: dc.Load, Capacity: dc.Capacity, LatencyMS: dc.LatencyMS,
			Terms: Terms{Distance: round(t.distance, 6), Load: round(t.load, 6), Latency: round(t.latency, 6)},
			Score: round(sc, 6), WithinSlack: dc.Up && sc <= limit,
		}
		cand := Candidate{Datacenter: dc.ID, Up: dc.Up, Score: d, Chosen: i == winner}
		switch {
		case !dc.Up:
			cand.Why = "down"
		case d.WithinSlack:
			inBand = append(inBand, dc.ID)
			cand.Why = "lowest score"
		default:
			cand.Why = fmt.Sprintf("score more than %g%% above the best", p.slack*100)
		}
		if dc.Up && i != winner && sc < runnerScore {
			runnerUp, runnerScore = dc.ID, sc
		}
		q.trace.Candidates = append(q.trace.Candidates, cand)
	}
	switch {
	case winner < 0:
		q.trace.Reason = "no datacenter of the service is up"
	case len(inBand) == 1 && runnerUp == "":
		q.trace.Reason = fmt.Sprintf("%s is the only datacenter up", s.datacenters[winner].ID)
	case len(inBand) == 1:
		q.trace.Reason = fmt.Sprintf("%s has the lowest score (%.6f); the next best, %s (%.6f), is more than %g%% above it",
			s.datacenters[winner].ID, best, runnerUp, runnerScore, p.slack*100)
	default:
		q.trace.Reason = fmt.Sprintf("%s are within %g%% of the best score (%.6f); the client prefix %s hashes to %s",
			strings.Join(inBand, ", "), p.slack*100, best, q.key, s.datacenters[winner].ID)
		for k := range q.trace.Candidates {
			cd := &q.trace.Candidates[k]
			if cd.Score.WithinSlack {
				cd.Why = "within slack of the best; the client prefix hashes elsewhere"
				if cd.Chosen {
					cd.Why = "within slack of the best; chosen by the client prefix's hash"
				}
			}
		}
	}
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
