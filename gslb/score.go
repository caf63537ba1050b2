package gslb

import (
	"fmt"
	"math"
	"strings"

	"github.com/gslbd/gslbd/gslb/config"
)

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

func (p *scorePolicy) Select(s *Snapshot, svc *service, q *request, want int, dst []int) ([]int, int) {
	return p.rank(s, svc.datacenters, q, want, dst, true)
}

// maxKept bounds the scores kept on the stack; services with more
// datacenters than this compute scores again rather than allocate. It is
// small on purpose: the frame lives on a per-query goroutine's stack, and
// a large one makes every such stack grow (measured: morestack took a
// fifth of the geo path's CPU with 64).
const maxKept = 16

// rank appends the want best usable datacenters among ids. The first is
// chosen by rendezvous hashing among those within slack of the best score:
// each client prefix ranks the band's candidates by hash and takes the
// first, so adding or losing a candidate moves only the clients that
// candidate wins or loses. The rest follow in score order.
func (p *scorePolicy) rank(s *Snapshot, ids []int, q *request, want int, dst []int, trace bool) ([]int, int) {
	loc := q.location()
	c := pointAt(loc.Lat, loc.Lon)
	var kept [maxKept]float64
	scoreOf := func(k int, dc *Datacenter) float64 {
		if k < maxKept {
			return kept[k]
		}
		sc, _ := p.score(dc, c)
		return sc
	}
	best := math.Inf(1)
	for k, i := range ids {
		dc := &s.datacenters[i]
		if !q.usable(dc) {
			continue
		}
		sc, _ := p.score(dc, c)
		if k < maxKept {
			kept[k] = sc
		}
		best = min(best, sc)
	}
	if math.IsInf(best, 1) || want < 1 {
		if q.trace != nil && trace {
			p.trace(s, ids, q, c, best, -1)
		}
		return dst, q.locationScope()
	}
	limit := best * (1 + p.slack)
	keyHash := prefixHash(q.key)
	winner, candidates := -1, 0
	var top uint64
	for k, i := range ids {
		dc := &s.datacenters[i]
		if !q.usable(dc) || scoreOf(k, dc) > limit {
			continue
		}
		candidates++
		if h := mix(keyHash ^ dc.hash); winner < 0 || h > top {
			winner, top = i, h
		}
	}
	start := len(dst)
	dst = append(dst, winner)
	// The rest in score order: select the next lowest each time, which for
	// the handful of answers a response carries beats sorting.
	for len(dst)-start < want {
		next, nextScore := -1, math.Inf(1)
		for k, i := range ids {
			dc := &s.datacenters[i]
			if !q.usable(dc) || contains(dst[start:], i) {
				continue
			}
			if sc := scoreOf(k, dc); sc < nextScore {
				next, nextScore = i, sc
			}
		}
		if next < 0 {
			break
		}
		dst = append(dst, next)
	}
	scope := q.locationScope()
	if candidates > 1 {
		scope = q.keyScope()
	}
	if q.trace != nil && trace {
		p.trace(s, ids, q, c, best, winner)
	}
	return dst, scope
}

func contains(ids []int, i int) bool {
	for _, x := range ids {
		if x == i {
			return true
		}
	}
	return false
}

// trace records every candidate for explain. It recomputes the scores,
// which costs nothing on the DNS path: only explain passes a trace.
func (p *scorePolicy) trace(s *Snapshot, ids []int, q *request, c point, best float64, winner int) {
	limit := best * (1 + p.slack)
	var inBand []string
	runnerUp, runnerScore := "", math.Inf(1)
	for _, i := range ids {
		dc := &s.datacenters[i]
		sc, t := p.score(dc, c)
		usable := q.usable(dc)
		d := &ScoreDetail{
			DistanceKM: round(t.distanceKM, 1), Load: dc.Load, Capacity: dc.Capacity, LatencyMS: dc.LatencyMS,
			Terms: Terms{Distance: round(t.distance, 6), Load: round(t.load, 6), Latency: round(t.latency, 6)},
			Score: round(sc, 6), WithinSlack: usable && sc <= limit,
		}
		cand := Candidate{Datacenter: dc.ID, Up: dc.Up, Score: d, Chosen: i == winner}
		switch {
		case !usable:
			cand.Why = q.whyNot(dc)
		case d.WithinSlack:
			inBand = append(inBand, dc.ID)
			cand.Why = "lowest score"
		default:
			cand.Why = fmt.Sprintf("score more than %g%% above the best", p.slack*100)
		}
		if usable && i != winner && sc < runnerScore {
			runnerUp, runnerScore = dc.ID, sc
		}
		q.trace.Candidates = append(q.trace.Candidates, cand)
	}
	switch {
	case winner < 0:
		q.trace.Reason = "no datacenter can take the client"
	case len(inBand) == 1 && runnerUp == "":
		q.trace.Reason = fmt.Sprintf("%s is the only usable datacenter", s.datacenters[winner].ID)
	case len(inBand) == 1:
		q.trace.Reason = fmt.Sprintf("%s has the lowest score (%.6f); the next best, %s (%.6f), is more than %g%% above it",
			s.datacenters[winner].ID, best, runnerUp, runnerScore, p.slack*100)
	default:
		q.trace.Reason = fmt.Sprintf("%s are within %g%% of the best score (%.6f); the client prefix %s hashes to %s",
			strings.Join(inBand, ", "), p.slack*100, best, q.key, s.datacenters[winner].ID)
		for k := range q.trace.Candidates {
			cd := &q.trace.Candidates[k]
			if cd.Score != nil && cd.Score.WithinSlack {
				cd.Why = "within slack of the best; the client prefix hashes elsewhere"
				if cd.Chosen {
					cd.Why = "within slack of the best; chosen by the client prefix's hash"
				}
			}
		}
	}
}

// hybridPolicy is active-active inside a region group and active-passive
// between groups: the first group with a usable datacenter is scored; a
// later group is used only when every earlier one has none.
type hybridPolicy struct {
	score  scorePolicy
	groups [][]int
}

func (p *hybridPolicy) Name() string { return "hybrid" }

func (p *hybridPolicy) Select(s *Snapshot, svc *service, q *request, want int, dst []int) ([]int, int) {
	for g, ids := range p.groups {
		for _, i := range ids {
			if q.usable(&s.datacenters[i]) {
				if q.trace != nil {
					q.trace.Reason = fmt.Sprintf("region group %d is the first with a usable datacenter; scored inside it. ", g)
					for _, earlier := range p.groups[:g] {
						traceList(s, earlier, q, nil, "", "in an earlier group")
					}
				}
				before := ""
				if q.trace != nil {
					before = q.trace.Reason
				}
				dst, scope := p.score.rank(s, ids, q, want, dst, q.trace != nil)
				if q.trace != nil {
					q.trace.Reason = before + q.trace.Reason
					for _, later := range p.groups[g+1:] {
						traceList(s, later, q, nil, "", "standby group: an earlier group has a usable datacenter")
					}
				}
				return dst, scope
			}
		}
	}
	if q.trace != nil {
		q.trace.Reason = "no region group has a usable datacenter"
	}
	return dst, 0
}
