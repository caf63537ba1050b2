package fleet

import (
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/gslbd/gslbd/health"
)

// Probe sharing: each endpoint goes to the ProbersPerEndpoint live
// instances that rank highest for it by rendezvous hashing (a hash of the
// instance's name and the endpoint's). Every instance ranks alike from
// the same member list, so they agree without talking, and when one
// leaves only its endpoints move, each to the next in its ranking.

// counted is this instance's verdicts that count: known, and when probing
// is shared, only on endpoints it probes and from a probe made since it
// took them on (an older result is another era's).
func (f *Fleet) counted(local []health.Verdict) map[health.EndpointRef]health.Verdict {
	assigned := f.assigned.Load()
	out := make(map[health.EndpointRef]health.Verdict, len(local))
	for _, v := range local {
		if v.State == health.Unknown {
			continue
		}
		if assigned != nil {
			since, ok := (*assigned)[v.EndpointRef]
			if !ok || v.At.Before(since) {
				continue
			}
		}
		out[v.EndpointRef] = v
	}
	return out
}

// probes reports whether this instance probes the endpoint now. The
// manager calls it under its lock: it only reads.
func (f *Fleet) probes(r health.EndpointRef) bool {
	assigned := f.assigned.Load()
	if assigned == nil {
		return true
	}
	_, ok := (*assigned)[r]
	return ok
}

// stopSharing makes this instance probe every endpoint again.
func (f *Fleet) stopSharing() { f.assigned.Store(nil) }

// assign divides the endpoints among the live members.
func (f *Fleet) assign(now time.Time, local []health.Verdict, members []string) {
	k := f.o.ProbersPerEndpoint
	if k <= 0 {
		return
	}
	old := f.assigned.Load()
	next := map[health.EndpointRef]time.Time{}
	for _, v := range local {
		if !slices.Contains(probersOf(refKey(v.EndpointRef), members, k), f.o.Instance) {
			continue
		}
		since := now
		if old != nil {
			if s, ok := (*old)[v.EndpointRef]; ok {
				since = s
			}
		}
		next[v.EndpointRef] = since
	}
	f.assigned.Store(&next)
}

// probersOf returns the k members that probe an endpoint.
func probersOf(endpoint string, members []string, k int) []string {
	type ranked struct {
		name  string
		score uint64
	}
	r := make([]ranked, len(members))
	for i, m := range members {
		h := fnv.New64a()
		h.Write([]byte(m))
		h.Write([]byte{0})
		h.Write([]byte(endpoint))
		r[i] = ranked{m, h.Sum64()}
	}
	sort.Slice(r, func(i, j int) bool { return r[i].score > r[j].score })
	out := make([]string, 0, k)
	for i := 0; i < len(r) && i < k; i++ {
		out = append(out, r[i].name)
	}
	return out
}

// measurements gathers the fresh "up" verdicts' numbers on an endpoint.
type measurements struct {
	rtts          []float64
	load, latency *float64
	loadAt, latAt int64
}

func (m *measurements) add(w wireVerdict) {
	if w.RTTMS > 0 {
		m.rtts = append(m.rtts, w.RTTMS)
	}
	// What the endpoint reported is the same whoever asked: the latest
	// report is the one to use.
	if w.Load != nil && w.At >= m.loadAt {
		m.load, m.loadAt = w.Load, w.At
	}
	if w.LatencyMS != nil && w.At >= m.latAt {
		m.latency, m.latAt = w.LatencyMS, w.At
	}
}

// effective is the endpoint's fleet verdict: the state the quorum gave,
// the median round trip, and the latest reports.
func (m *measurements) effective(st health.State) health.Effective {
	e := health.Effective{State: st, Load: math.NaN(), LatencyMS: math.NaN()}
	if m.load != nil {
		e.Load = *m.load
	}
	if m.latency != nil {
		e.LatencyMS = *m.latency
	}
	if n := len(m.rtts); n > 0 {
		sort.Float64s(m.rtts)
		e.RTTMS = m.rtts[n/2]
		if n%2 == 0 {
			e.RTTMS = (m.rtts[n/2-1] + m.rtts[n/2]) / 2
		}
	}
	return e
}
