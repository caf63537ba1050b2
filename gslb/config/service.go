package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"

	"slices"
	"sort"
	"strings"

	"github.com/spf13/viper"
)

// applyPolicyDefaults fills what a policy derives: the datacenters a
// hybrid or geo service may use come from its groups or maps when the
// service does not list them, and map keys, which viper lower-cases, get
// the upper case ISO codes are written in.
func (s *Service) applyPolicyDefaults() {
	if s.Geo != nil {
		s.Geo.Subdivisions = upperKeys(s.Geo.Subdivisions)
		s.Geo.Countries = upperKeys(s.Geo.Countries)
		s.Geo.Continents = upperKeys(s.Geo.Continents)
	}
	if len(s.Datacenters) > 0 {
		return
	}
	s.datacentersDerived = true
	add := func(ids []string) {
		for _, id := range ids {
			if !slices.Contains(s.Datacenters, id) {
				s.Datacenters = append(s.Datacenters, id)
			}
		}
	}
	switch {
	case s.Policy == "hybrid":
		for _, g := range s.Groups {
			add(g)
		}
	case s.Policy == "geo" && s.Geo != nil:
		add(s.Geo.Default)
		for _, m := range []map[string][]string{s.Geo.Subdivisions, s.Geo.Countries, s.Geo.Continents} {
			for _, k := range slices.Sorted(maps.Keys(m)) {
				add(m[k])
			}
		}
	case s.Policy == "weighted":
		add(slices.Sorted(maps.Keys(s.Ratios)))
	}
}

func upperKeys(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[strings.ToUpper(k)] = v
	}
	return out
}

// validateService checks a service's policy settings against the
// datacenters it may use.
func validateService(v *validator, sp string, s *Service, dcs map[string]int, dcList []Datacenter, hasASNDB bool) {
	if !slices.Contains(Policies, s.Policy) {
		v.add(sp+".policy", "%s", oneOf(s.Policy, Policies))
	}
	if len(s.Datacenters) == 0 {
		v.add(sp+".datacenters", "expected at least one datacenter")
	}
	needsCoords := s.Policy == "score" || s.Policy == "hybrid"
	for k, id := range s.Datacenters {
		dp := fmt.Sprintf("%s.datacenters[%d]", sp, k)
		if s.datacentersDerived {
			// Not written by the operator: the lists it came from are
			// checked, and named, below.
			dp = fmt.Sprintf("%s (datacenter %q)", sp, id)
		}
		i, ok := dcs[id]
		if !ok {
			if !s.datacentersDerived {
				v.add(dp, "%q is not a configured datacenter", id)
			}
		} else if needsCoords && dcList[i].Lat == nil {
			v.add(dp, "%q has no lat/lon, which the %s policy needs to measure distance", id, s.Policy)
		}
		if slices.Index(s.Datacenters, id) != k {
			v.add(dp, "%q is listed twice", id)
		}
	}
	// refs checks a list of datacenters a policy names: each must be one
	// the service may use.
	refs := func(p string, ids []string) {
		if len(ids) == 0 {
			v.add(p, "expected at least one datacenter")
		}
		for k, id := range ids {
			if _, known := dcs[id]; !known {
				v.add(fmt.Sprintf("%s[%d]", p, k), "%q is not a configured datacenter", id)
			} else if !slices.Contains(s.Datacenters, id) {
				v.add(fmt.Sprintf("%s[%d]", p, k), "%q is not one of the service's datacenters", id)
			}
		}
	}
	if s.Answers < 0 {
		v.add(sp+".answers", "expected zero or more, got %d", s.Answers)
	}
	if s.Spread && s.Answers < 1 {
		v.add(sp+".spread", "needs answers, the number of datacenters to spread over")
	}
	if !slices.Contains(WhenAllDown, s.WhenAllDown) {
		v.add(sp+".when_all_down", "%s", oneOf(s.WhenAllDown, WhenAllDown))
	}
	if s.Policy == "score" || s.Policy == "hybrid" {
		validateScore(v, sp, s)
	}
	switch s.Policy {
	case "weighted":
		if len(s.Ratios) == 0 {
			v.add(sp+".ratios", "the weighted policy needs a ratio for each datacenter")
		}
		total := 0.0
		for _, id := range slices.Sorted(maps.Keys(s.Ratios)) {
			r := s.Ratios[id]
			if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
				v.add(sp+".ratios."+id, "expected zero or more, got %v", r)
			}
			total += r
			if _, known := dcs[id]; !known {
				v.add(sp+".ratios."+id, "%q is not a configured datacenter", id)
			} else if !slices.Contains(s.Datacenters, id) {
				v.add(sp+".ratios."+id, "%q is not one of the service's datacenters", id)
			}
		}
		for _, id := range s.Datacenters {
			if _, ok := s.Ratios[id]; !ok && len(s.Ratios) > 0 {
				v.add(sp+".ratios", "%q has no ratio; give it one (0 to send it nothing)", id)
			}
		}
		if len(s.Ratios) > 0 && total <= 0 {
			v.add(sp+".ratios", "at least one ratio must be above zero")
		}
	case "hybrid":
		if len(s.Groups) == 0 {
			v.add(sp+".groups", "the hybrid policy needs region groups, such as [[us-east-1, us-west-2], [eu-central-1]]")
		}
		seen := map[string]string{}
		for g, ids := range s.Groups {
			gp := fmt.Sprintf("%s.groups[%d]", sp, g)
			refs(gp, ids)
			for k, id := range ids {
				if prev, dup := seen[id]; dup {
					v.add(fmt.Sprintf("%s[%d]", gp, k), "%q is already in %s", id, prev)
				}
				seen[id] = gp
			}
		}
	case "geo":
		if s.Geo == nil {
			v.add(sp+".geo", "the geo policy needs a map: subdivisions, countries, continents and a default")
			break
		}
		gp := sp + ".geo"
		for _, k := range slices.Sorted(maps.Keys(s.Geo.Subdivisions)) {
			if !IsSubdivision(k) {
				v.add(gp+".subdivisions."+k, "%q is not an ISO 3166-2 code such as US-CA or GB-ENG", k)
			}
			refs(gp+".subdivisions."+k, s.Geo.Subdivisions[k])
		}
		for _, k := range slices.Sorted(maps.Keys(s.Geo.Countries)) {
			if !IsCountry(k) {
				v.add(gp+".countries."+k, "%q is not an ISO 3166-1 alpha-2 code such as DE", k)
			}
			refs(gp+".countries."+k, s.Geo.Countries[k])
		}
		for _, k := range slices.Sorted(maps.Keys(s.Geo.Continents)) {
			if !slices.Contains(continents, k) {
				v.add(gp+".continents."+k, "%s", oneOf(k, continents))
			}
			refs(gp+".continents."+k, s.Geo.Continents[k])
		}
		if len(s.Geo.Default) == 0 {
			v.add(gp+".default", "expected the datacenters for clients no entry matches")
		} else {
			refs(gp+".default", s.Geo.Default)
		}
	}
	for _, e := range validateTargets(sp, s.Networks, s.ASN, s.Datacenters, hasASNDB) {
		v.add(e.Path, "%s", e.Msg)
	}
	if s.NetworksFile != "" {
		if _, err := LoadTargets(s.NetworksFile, s.Datacenters, hasASNDB); err != nil {
			for _, e := range Errors(err) {
				v.add(sp+".networks_file", "%v", e)
			}
		}
	}
}

func validateScore(v *validator, sp string, s *Service) {
	w := s.Weights
	for _, t := range []struct {
		key string
		val float64
	}{{"distance", w.Distance}, {"load", w.Load}, {"latency", w.Latency}} {
		if !(t.val >= 0) || math.IsInf(t.val, 1) {
			v.add(sp+".weights."+t.key, "expected zero or more, got %v", t.val)
		}
	}
	if w.Distance+w.Load+w.Latency <= 0 {
		v.add(sp+".weights", "at least one weight must be above zero")
	}
	if !(*s.DistanceScaleKM > 0) || math.IsInf(*s.DistanceScaleKM, 1) {
		v.add(sp+".distance_scale_km", "expected a positive number, got %v", *s.DistanceScaleKM)
	}
	if !(*s.LatencyScaleMS > 0) || math.IsInf(*s.LatencyScaleMS, 1) {
		v.add(sp+".latency_scale_ms", "expected a positive number, got %v", *s.LatencyScaleMS)
	}
	if !(*s.Slack >= 0 && *s.Slack <= 1) {
		v.add(sp+".slack", "%v is outside 0..1 (a fraction of the best score)", *s.Slack)
	}
}

// targetError is a problem found in a network or ASN target.
type targetError struct{ Path, Msg string }

// validateTargets checks network and ASN targets: prefixes well formed,
// masked and not overlapping (the longest match would otherwise hide a
// mistake), each target either datacenters or a location, datacenters
// among those the service may use.
func validateTargets(p string, nets []NetworkTarget, asns []ASNTarget, allowed []string, hasASNDB bool) []targetError {
	var errs []targetError
	add := func(path, format string, args ...any) {
		errs = append(errs, targetError{path, fmt.Sprintf(format, args...)})
	}
	target := func(tp string, dcs []string, loc *Location) {
		switch {
		case len(dcs) == 0 && loc == nil:
			add(tp, "expected datacenters or a location")
		case len(dcs) > 0 && loc != nil:
			add(tp, "has both datacenters and a location; give one")
		}
		for k, id := range dcs {
			if !slices.Contains(allowed, id) {
				add(fmt.Sprintf("%s.datacenters[%d]", tp, k), "%q is not one of the service's datacenters", id)
			}
		}
		if loc != nil {
			lv := &validator{}
			validateLocation(lv, tp+".location", loc)
			for _, e := range lv.errs {
				fe := e.(*FieldError)
				add(fe.Path, "%s", fe.Msg)
			}
		}
	}
	type indexed struct {
		p netip.Prefix
		i int
	}
	var valid []indexed
	for i, n := range nets {
		tp := fmt.Sprintf("%s.networks[%d]", p, i)
		switch {
		case !n.Prefix.IsValid():
			add(tp+".prefix", "is required (a CIDR prefix such as 192.0.2.0/24)")
		case n.Prefix.Masked() != n.Prefix:
			add(tp+".prefix", "%s has bits set beyond /%d; did you mean %s?", n.Prefix, n.Prefix.Bits(), n.Prefix.Masked())
		case n.Prefix.Addr().Is4In6():
			add(tp+".prefix", "%s is IPv4-mapped; write it as IPv4", n.Prefix)
		default:
			valid = append(valid, indexed{n.Prefix, i})
		}
		target(tp, n.Datacenters, n.Location)
	}
	sort.Slice(valid, func(a, b int) bool { return valid[a].i < valid[b].i })
	for a := range valid {
		for b := a + 1; b < len(valid); b++ {
			if valid[a].p.Overlaps(valid[b].p) {
				add(fmt.Sprintf("%s.networks[%d].prefix", p, valid[b].i), "%s overlaps %s.networks[%d] (%s)", valid[b].p, p, valid[a].i, valid[a].p)
			}
		}
	}
	seen := map[uint32]int{}
	for i, a := range asns {
		tp := fmt.Sprintf("%s.asn[%d]", p, i)
		if a.ASN == 0 {
			add(tp+".asn", "is required (an AS number such as 64500)")
		} else if j, dup := seen[a.ASN]; dup {
			add(tp+".asn", "AS%d is already %s.asn[%d]", a.ASN, p, j)
		}
		seen[a.ASN] = i
		target(tp, a.Datacenters, a.Location)
	}
	if len(asns) > 0 && !hasASNDB {
		add(p+".asn", "ASN targets need an ASN database: set geoip.asn_db")
	}
	return errs
}

// Targets are network and ASN targets as a networks_file holds them.
type Targets struct {
	Networks []NetworkTarget `mapstructure:"networks"`
	ASN      []ASNTarget     `mapstructure:"asn"`
}

// LoadTargets reads and validates a networks_file. It is used at load
// time and again whenever the file changes, so that a bad edit is
// refused with the same messages and the last good copy keeps serving.
func LoadTargets(path string, allowed []string, hasASNDB bool) (*Targets, error) {
	b, err := readSmallFile(path, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	vp := viper.NewWithOptions(viper.KeyDelimiter(keyDelimiter))
	vp.SetConfigType("yaml")
	if err := vp.ReadConfig(bytes.NewReader(b)); err != nil {
		return nil, &FieldError{File: path, Msg: "parsing YAML: " + strings.TrimSpace(err.Error())}
	}
	var t Targets
	dec, err := newStrictDecoder(&t)
	if err != nil {
		return nil, err
	}
	var errs []error
	if err := dec.Decode(vp.AllSettings()); err != nil {
		for _, fe := range decodeErrors(path, err) {
			errs = append(errs, fe)
		}
		return nil, errors.Join(errs...)
	}
	for _, e := range validateTargets("", t.Networks, t.ASN, allowed, hasASNDB) {
		errs = append(errs, &FieldError{File: path, Path: strings.TrimPrefix(e.Path, "."), Msg: e.Msg})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &t, nil
}
