package gslb

import "fmt"

// geoPolicy sends clients by where they are: the most specific entry that
// matches the client's location and has a usable datacenter wins
// (subdivision, then country, then continent, then the default); its list
// is in order of preference.
type geoPolicy struct {
	subdivisions map[string][]int // "US-CA"
	countries    map[string][]int
	continents   map[string][]int
	fallback     []int
}

func (p *geoPolicy) Name() string { return "geo" }

func (p *geoPolicy) Select(s *Snapshot, svc *service, q *request, want int, dst []int) ([]int, int) {
	loc := q.location()
	var levels [4][]int
	var names [4]string // for explain only
	n := 0
	if loc.Country != "" && loc.Subdivision != "" && len(p.subdivisions) > 0 {
		// The key is built only when subdivisions are configured: it is
		// the one allocation this policy can make.
		code := loc.Country + "-" + loc.Subdivision
		if ids, ok := p.subdivisions[code]; ok {
			levels[n], names[n] = ids, "subdivision "+code
			n++
		}
	}
	if ids, ok := p.countries[loc.Country]; ok && loc.Country != "" {
		levels[n], names[n] = ids, "country"
		n++
	}
	if ids, ok := p.continents[loc.Continent]; ok && loc.Continent != "" {
		levels[n], names[n] = ids, "continent"
		n++
	}
	levels[n], names[n] = p.fallback, "default"
	n++
	scope := q.locationScope()
	start := len(dst)
	for k, ids := range levels[:n] {
		if dst = pickInOrder(s, ids, q, want, dst); len(dst) > start {
			if q.trace != nil {
				what := names[k]
				switch what {
				case "country":
					what += " " + loc.Country
				case "continent":
					what += " " + loc.Continent
				}
				traceList(s, svc.datacenters, q, dst[start:], "first usable in the list for "+what, "not first in the list for "+what)
				q.trace.Reason = fmt.Sprintf("geo: the client matches %s", what)
			}
			return dst, scope
		}
	}
	// Nothing in any matching list is usable: any usable datacenter of the
	// service beats no answer.
	dst = pickInOrder(s, svc.datacenters, q, want, dst)
	if q.trace != nil {
		traceList(s, svc.datacenters, q, dst[start:], "no matching list has a usable datacenter; first usable of the service", "")
		q.trace.Reason = "geo: no matching list has a usable datacenter"
	}
	return dst, scope
}
