package gslb

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/gslb/geo"
)

// Snapshot is everything a query needs, built once and never modified: a
// reload builds a new one and swaps it in whole, so a query sees either the
// old configuration or the new one, never a mix.
type Snapshot struct {
	zones       map[string]*zone // by lowercase origin
	zoneOrigins []string         // for metric labels, sorted
	datacenters []Datacenter
	identity    identity
	udpSize     uint16
	// answerCacheSize is dns.answer_cache_size: the UDP readers size
	// their answer caches by the snapshot they serve.
	answerCacheSize int
	locator         *geo.Locator // nil: every client is at defaultLoc
	defaultLoc      geo.Location
	services        []*service
	targetFiles     []*targetFile
	// ttls holds each service's TTL as of this snapshot's health: shorter
	// while one of its datacenters is down or changing.
	ttls      []uint32
	ttlFactor float64
	minTTL    uint32

	affinity       Affinity // nil: no sessions
	failbackReturn bool
	sessionBits4   int
	sessionBits6   int
}

// Datacenter is a site's answerable state as of this snapshot.
type Datacenter struct {
	ID        string
	Region    string
	Up        bool
	Capacity  float64
	Load      float64 // in the unit of Capacity
	LatencyMS float64 // the datacenter's own service latency
	a         []netip.Addr
	aaaa      []netip.Addr
	point     point // where it is, for the distance term
	hasCoords bool
	// ramp is the share of client prefixes a datacenter in slow start
	// admits, 0..1; 1 otherwise.
	ramp      float64
	unsettled bool
	// The configured values, which health reports replace and a later
	// snapshot may need again.
	drained             bool
	cfgLoad, cfgLatency float64
	cfgA, cfgAAAA       []netip.Addr
	hash                uint64 // of ID, for rendezvous hashing
}

type identity struct {
	id      string
	nsidHex string // NSID option payload, hex as miekg/dns wants it
	nsid    bool
	chaos   bool
}

type zone struct {
	origin string
	soa    *dns.SOA
	// negTTL is the TTL of the SOA in negative answers: the lesser of the
	// SOA's own TTL and its MINIMUM field (RFC 2308 section 5).
	negTTL uint32
	nodes  map[string]*node
}

// node is one owner name. A node with no records and no service is an
// empty non-terminal: it exists (NODATA), it is not NXDOMAIN (RFC 8020).
type node struct {
	rrsets  map[uint16][]dns.RR
	service *service
	acme    bool // holds only ACME records added by UPDATE (dynamic.go)
}

type service struct {
	name        string
	zone        string
	policy      Policy
	ttl         uint32
	datacenters []int // indexes into Snapshot.datacenters, in configured order
	want        int   // how many datacenters the policy ranks
	answers     int   // address records per response; 0: all of the chosen
	spread      bool  // one address from each of the want best
	whenAllDown string
	targets     *targets
	file        *targetFile
	index       int // in Snapshot.services and ttls
	sticky      bool
}

func (svc *service) fileTargets() *targets {
	if svc.file == nil {
		return nil
	}
	return svc.file.cur.Load()
}

// NewSnapshot builds the serving state from a validated configuration;
// locator may be nil, which places every client at the default location.
func NewSnapshot(cfg *config.Config, locator *geo.Locator) (*Snapshot, error) {
	dl := cfg.GeoIP.DefaultLocation
	s := &Snapshot{
		locator:         locator,
		defaultLoc:      geo.Location{Lat: dl.Lat, Lon: dl.Lon, Country: dl.Country, Continent: dl.Continent, Subdivision: dl.Subdivision},
		zones:           make(map[string]*zone, len(cfg.Zones)),
		udpSize:         cfg.DNS.UDPSize,
		answerCacheSize: cfg.DNS.AnswerCacheSize,
		identity: identity{
			id:      cfg.DNS.Identity.ID,
			nsidHex: hex.EncodeToString([]byte(cfg.DNS.Identity.ID)),
			nsid:    cfg.DNS.Identity.NSID,
			chaos:   cfg.DNS.Identity.Chaos,
		},
	}
	dcIndex := make(map[string]int, len(cfg.Datacenters))
	for i, dc := range cfg.Datacenters {
		d := Datacenter{
			ID: dc.ID, Region: dc.Region, Up: !dc.Drain,
			Capacity: dc.Capacity, Load: dc.Load, LatencyMS: float64(dc.Latency) / float64(time.Millisecond),
			hash: stringHash(dc.ID), ramp: 1, drained: dc.Drain, unsettled: dc.Drain,
		}
		d.cfgLoad, d.cfgLatency = d.Load, d.LatencyMS
		if dc.Lat != nil && dc.Lon != nil {
			d.hasCoords = true
			d.point = pointAt(*dc.Lat, *dc.Lon)
		}
		for _, ep := range dc.Endpoints {
			if ep.Address.Is4() {
				d.a = append(d.a, ep.Address)
			} else {
				d.aaaa = append(d.aaaa, ep.Address)
			}
		}
		d.cfgA, d.cfgAAAA = d.a, d.aaaa
		s.datacenters = append(s.datacenters, d)
		dcIndex[dc.ID] = i
	}
	for i := range cfg.Zones {
		z, err := s.buildZone(&cfg.Zones[i], dcIndex, cfg.GeoIP.ASNDB != "")
		if err != nil {
			return nil, fmt.Errorf("%s: zones[%d]: %w", cfg.File, i, err)
		}
		s.zones[z.origin] = z
		s.zoneOrigins = append(s.zoneOrigins, z.origin)
	}
	slices.Sort(s.zoneOrigins)
	s.ttlFactor, s.minTTL = cfg.Health.TTLFactor, cfg.Health.MinTTL
	s.computeTTLs()
	return s, nil
}

// DCState is a datacenter's live state, as health checking reports it.
type DCState struct {
	Up bool
	// Load and LatencyMS replace the configured values unless NaN.
	Load, LatencyMS float64
	// Ramp is the share of new clients a recovering datacenter takes,
	// 0..1 (slow start).
	Ramp float64
	// Unsettled shortens the TTL of services that use the datacenter.
	Unsettled bool
	// Down lists endpoint addresses that are down: they are left out of
	// answers while the datacenter itself is up.
	Down []netip.Addr
}

// WithHealth returns a snapshot that answers from the given datacenter
// states and shares everything else with s; datacenters without a state
// keep their configured ones. The zones are not copied: a health change
// costs one small slice, not a rebuild.
func (s *Snapshot) WithHealth(states map[string]DCState) *Snapshot {
	n := *s
	n.datacenters = slices.Clone(s.datacenters)
	for i := range n.datacenters {
		d := &n.datacenters[i]
		st, ok := states[d.ID]
		if !ok {
			continue
		}
		d.Up = st.Up && !d.drained
		d.Load, d.LatencyMS = d.cfgLoad, d.cfgLatency
		if !math.IsNaN(st.Load) {
			d.Load = st.Load
		}
		if !math.IsNaN(st.LatencyMS) {
			d.LatencyMS = st.LatencyMS
		}
		d.ramp = min(max(st.Ramp, 0), 1)
		d.unsettled = st.Unsettled || d.drained
		if len(st.Down) > 0 {
			d.a, d.aaaa = withoutAddrs(d.cfgA, st.Down), withoutAddrs(d.cfgAAAA, st.Down)
		} else {
			d.a, d.aaaa = d.cfgA, d.cfgAAAA
		}
	}
	n.computeTTLs()
	return &n
}

// withoutAddrs returns addrs less the down ones; when every address of a
// family is down the datacenter answers none of that family, which is
// NODATA, not another site's address.
func withoutAddrs(addrs, down []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if !slices.Contains(down, a) {
			out = append(out, a)
		}
	}
	return out
}

// computeTTLs shortens the TTL of every service with a datacenter that is
// down or changing, so resolvers come back sooner while answers may move.
func (s *Snapshot) computeTTLs() {
	s.ttls = make([]uint32, len(s.services))
	for k, svc := range s.services {
		ttl := svc.ttl
		for _, i := range svc.datacenters {
			if s.datacenters[i].unsettled {
				ttl = max(uint32(float64(svc.ttl)*s.ttlFactor), min(s.minTTL, svc.ttl))
				break
			}
		}
		s.ttls[k] = ttl
	}
}

// ttl is the service's TTL in this snapshot.
func (s *Snapshot) ttl(svc *service) uint32 {
	if svc.index < len(s.ttls) {
		return s.ttls[svc.index]
	}
	return svc.ttl
}

func (s *Snapshot) buildZone(zc *config.Zone, dcIndex map[string]int, hasASNDB bool) (*zone, error) {
	z := &zone{origin: zc.Origin, nodes: map[string]*node{}}
	z.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: zc.Origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: *zc.SOA.TTL},
		Ns:      zc.SOA.MName,
		Mbox:    zc.SOA.RName,
		Serial:  zc.SOA.Serial,
		Refresh: zc.SOA.Refresh,
		Retry:   zc.SOA.Retry,
		Expire:  zc.SOA.Expire,
		Minttl:  zc.SOA.Minimum,
	}
	z.negTTL = min(z.soa.Hdr.Ttl, z.soa.Minttl)
	z.add(z.soa)
	for _, ns := range zc.NS {
		z.add(&dns.NS{Hdr: dns.RR_Header{Name: zc.Origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: *zc.TTL}, Ns: ns.Name})
		for _, a := range ns.Addresses {
			z.add(addrRR(ns.Name, a, *zc.TTL))
		}
	}
	for i := range zc.Records {
		z.add(dns.Copy(zc.Records[i].RR()))
	}
	for i := range zc.Services {
		sc := &zc.Services[i]
		svc := &service{name: sc.Owner(), zone: zc.Origin, ttl: *sc.TTL, answers: sc.Answers,
			spread: sc.Spread, whenAllDown: sc.WhenAllDown, want: 1, sticky: sc.Sticky}
		for _, id := range sc.Datacenters {
			svc.datacenters = append(svc.datacenters, dcIndex[id])
		}
		svc.policy = newPolicy(sc, dcIndex, len(s.datacenters))
		switch {
		case sc.Spread:
			svc.want = sc.Answers
		case sc.Policy == "all":
			svc.want = len(svc.datacenters)
		}
		svc.targets = buildTargets(sc.Networks, sc.ASN, dcIndex)
		if sc.NetworksFile != "" {
			f, err := newTargetFile(sc.NetworksFile, sc.Datacenters, hasASNDB, dcIndex)
			if err != nil {
				return nil, fmt.Errorf("services: %s: networks_file: %w", svc.name, err)
			}
			svc.file = f
			s.targetFiles = append(s.targetFiles, f)
		}
		svc.index = len(s.services)
		s.services = append(s.services, svc)
		n := z.ensure(svc.name)
		if len(n.rrsets) > 0 {
			return nil, fmt.Errorf("service %s collides with static records", svc.name)
		}
		n.service = svc
	}
	if z.soa.Serial == 0 {
		z.soa.Serial = z.contentSerial(zc)
	}
	return z, nil
}

// contentSerial derives the serial from what the zone serves, so every
// instance given the same configuration serves the same serial without the
// operator keeping one; no zone transfer depends on it increasing.
func (z *zone) contentSerial(zc *config.Zone) uint32 {
	var lines []string
	for name, n := range z.nodes {
		for _, set := range n.rrsets {
			for _, rr := range set {
				lines = append(lines, rr.String())
			}
		}
		if n.service != nil {
			lines = append(lines, fmt.Sprintf("service %s %s %d %v", name, n.service.policy.Name(), n.service.ttl, serviceDCs(zc, name)))
		}
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	serial := binary.BigEndian.Uint32(sum[:4])
	if serial == 0 {
		serial = 1
	}
	return serial
}

func serviceDCs(zc *config.Zone, owner string) []string {
	for i := range zc.Services {
		if zc.Services[i].Owner() == owner {
			return zc.Services[i].Datacenters
		}
	}
	return nil
}

func addrRR(name string, a netip.Addr, ttl uint32) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()}
}

// ensure returns the node for name, creating it and every empty
// non-terminal between it and the origin.
func (z *zone) ensure(name string) *node {
	n, ok := z.nodes[name]
	if !ok {
		n = &node{rrsets: map[uint16][]dns.RR{}}
		z.nodes[name] = n
		for parent := name; parent != z.origin; {
			off, end := dns.NextLabel(parent, 0)
			if end {
				break
			}
			parent = parent[off:]
			if _, ok := z.nodes[parent]; ok {
				break
			}
			z.nodes[parent] = &node{rrsets: map[uint16][]dns.RR{}}
		}
	}
	return n
}

func (z *zone) add(rr dns.RR) {
	h := rr.Header()
	h.Name = strings.ToLower(h.Name)
	n := z.ensure(h.Name)
	for _, have := range n.rrsets[h.Rrtype] {
		if dns.IsDuplicate(have, rr) {
			return
		}
	}
	n.rrsets[h.Rrtype] = append(n.rrsets[h.Rrtype], rr)
}

func newPolicy(sc *config.Service, dcIndex map[string]int, ndc int) Policy {
	ids := func(names []string) []int {
		out := make([]int, 0, len(names))
		for _, n := range names {
			out = append(out, dcIndex[n])
		}
		return out
	}
	score := func() scorePolicy {
		return scorePolicy{weights: *sc.Weights, distanceScaleKM: *sc.DistanceScaleKM, latencyScaleMS: *sc.LatencyScaleMS, slack: *sc.Slack}
	}
	switch sc.Policy {
	case "score":
		p := score()
		return &p
	case "failover":
		return failoverPolicy{}
	case "hybrid":
		p := &hybridPolicy{score: score()}
		for _, g := range sc.Groups {
			p.groups = append(p.groups, ids(g))
		}
		return p
	case "weighted":
		p := &weightedPolicy{ratio: make([]float64, ndc)}
		for id, r := range sc.Ratios {
			p.ratio[dcIndex[id]] = r
		}
		return p
	case "geo":
		p := &geoPolicy{subdivisions: map[string][]int{}, countries: map[string][]int{}, continents: map[string][]int{}, fallback: ids(sc.Geo.Default)}
		for k, v := range sc.Geo.Subdivisions {
			p.subdivisions[k] = ids(v)
		}
		for k, v := range sc.Geo.Countries {
			p.countries[k] = ids(v)
		}
		for k, v := range sc.Geo.Continents {
			p.continents[k] = ids(v)
		}
		return p
	default:
		return allPolicy{}
	}
}

// AllDown lists the services none of whose datacenters is up, which are
// answering by their when_all_down rule.
func (s *Snapshot) AllDown() []string {
	var out []string
	for _, svc := range s.services {
		up := false
		for _, i := range svc.datacenters {
			up = up || s.datacenters[i].Up
		}
		if !up {
			out = append(out, svc.name)
		}
	}
	return out
}

// Services lists the names of the services the snapshot answers for.
func (s *Snapshot) Services() []string {
	out := make([]string, 0, len(s.services))
	for _, svc := range s.services {
		out = append(out, svc.name)
	}
	return out
}

// locate places a client, at the default location when there is no
// database to ask.
func (s *Snapshot) locate(a netip.Addr) geo.Location {
	if s.locator == nil {
		return s.defaultLoc
	}
	return s.locator.Locate(a)
}

// Locator returns the GeoIP locator the snapshot reads, if any.
func (s *Snapshot) Locator() *geo.Locator { return s.locator }

// Zones lists the origins served, sorted.
func (s *Snapshot) Zones() []string { return s.zoneOrigins }

// Serial returns the serial a zone serves, for status and tests.
func (s *Snapshot) Serial(origin string) (uint32, bool) {
	z, ok := s.zones[strings.ToLower(dns.Fqdn(origin))]
	if !ok {
		return 0, false
	}
	return z.soa.Serial, true
}

// findZone returns the most specific zone that contains name, which must be
// lowercase and fully qualified.
func (s *Snapshot) findZone(name string) *zone {
	for off := 0; ; {
		if z, ok := s.zones[name[off:]]; ok {
			return z
		}
		var end bool
		off, end = dns.NextLabel(name, off)
		if end {
			return nil
		}
	}
}
