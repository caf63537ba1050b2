package gslb

import (
	"fmt"
	"math"
)

// weightedPolicy splits clients by ratio. Each client prefix ranks the
// datacenters by weighted rendezvous hashing (score = w / -ln(u), u a
// uniform hash of prefix and datacenter), so shares follow the ratios,
// a prefix keeps its datacenter while ratios stay, and changing one
// datacenter's ratio moves only clients to or from that datacenter.
type weightedPolicy struct {
	ratio []float64 // by index into Snapshot.datacenters; 0: not in the service
}

func (p *weightedPolicy) Name() string { return "weighted" }

func (p *weightedPolicy) weight(s *Snapshot, keyHash uint64, i int) float64 {
	w := p.ratio[i]
	if w <= 0 {
		return 0
	}
	// 53 bits of the hash as a uniform in (0, 1).
	u := (float64(mix(keyHash^s.datacenters[i].hash)>>11) + 0.5) / (1 << 53)
	return w / -math.Log(u)
}

func (p *weightedPolicy) Select(s *Snapshot, svc *service, q *request, want int, dst []int) ([]int, int) {
	keyHash := prefixHash(q.key)
	start := len(dst)
	for len(dst)-start < want {
		next, top := -1, 0.0
		for _, i := range svc.datacenters {
			if !q.usable(&s.datacenters[i]) || contains(dst[start:], i) {
				continue
			}
			if w := p.weight(s, keyHash, i); w > top {
				next, top = i, w
			}
		}
		if next < 0 {
			break
		}
		dst = append(dst, next)
	}
	if q.trace != nil {
		total := 0.0
		for _, i := range svc.datacenters {
			if q.usable(&s.datacenters[i]) {
				total += p.ratio[i]
			}
		}
		for _, i := range svc.datacenters {
			dc := &s.datacenters[i]
			c := Candidate{Datacenter: dc.ID, Up: dc.Up, Chosen: contains(dst[start:], i)}
			switch {
			case c.Chosen:
				c.Why = fmt.Sprintf("ratio %g: the client prefix's weighted hash ranks it first", p.ratio[i])
			case q.whyNot(dc) != "":
				c.Why = q.whyNot(dc)
			case p.ratio[i] == 0:
				c.Why = "ratio 0"
			default:
				c.Why = fmt.Sprintf("ratio %g (%.0f%% of clients); this prefix hashes elsewhere", p.ratio[i], 100*p.ratio[i]/total)
			}
			q.trace.Candidates = append(q.trace.Candidates, c)
		}
		q.trace.Reason = fmt.Sprintf("weighted: the client prefix %s is hashed onto the ratios", q.key)
	}
	return dst, q.keyScope()
}
