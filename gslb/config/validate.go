package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Policies lists the service policies this build implements, in the order
// error messages name them.
var Policies = []string{"score", "failover", "geo", "weighted", "hybrid", "all"}

// WhenAllDown lists what a service may answer when none of its
// datacenters is up.
var WhenAllDown = []string{"all", "first", "nodata"}

// RecordTypes lists the static record types a zone may carry.
var RecordTypes = []string{"A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA"}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	// Identifiers appear in metric labels and API paths, so keep them to a
	// set that needs no escaping anywhere.
	identifier = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
)

// applyDefaults fills per-element defaults that decoding on top of
// defaults() cannot reach, because list elements start from zero.
func (c *Config) applyDefaults() {
	if c.Instance.Name == "" {
		if h, err := os.Hostname(); err == nil {
			c.Instance.Name = h
		} else {
			c.Instance.Name = "gslbd"
		}
	}
	if c.DNS.Identity.ID == "" {
		c.DNS.Identity.ID = c.Instance.Name
		c.identityDerived = true
	}
	for i := range c.Datacenters {
		dc := &c.Datacenters[i]
		if dc.Capacity == 0 {
			dc.Capacity = DefaultCapacity
		}
		if dc.Latency == 0 {
			dc.Latency = DefaultLatency
		}
	}
	for i := range c.Zones {
		z := &c.Zones[i]
		z.Origin = canonicalName(z.Origin)
		if z.TTL == nil {
			z.TTL = ptr(uint32(DefaultZoneTTL))
		}
		s := &z.SOA
		if s.Refresh == 0 {
			s.Refresh = DefaultSOARefresh
		}
		if s.Retry == 0 {
			s.Retry = DefaultSOARetry
		}
		if s.Expire == 0 {
			s.Expire = DefaultSOAExpire
		}
		if s.Minimum == 0 {
			s.Minimum = DefaultSOAMinimum
		}
		if s.TTL == nil {
			s.TTL = ptr(uint32(DefaultSOATTL))
		}
		for j := range z.Records {
			if z.Records[j].TTL == nil {
				z.Records[j].TTL = ptr(*z.TTL)
			}
			z.Records[j].Type = strings.ToUpper(z.Records[j].Type)
		}
		for j := range z.Services {
			if z.Services[j].Policy == "" {
				z.Services[j].Policy = "all"
			}
			sv := &z.Services[j]
			if sv.TTL == nil {
				sv.TTL = ptr(uint32(DefaultServiceTTL))
			}
			if sv.Weights == nil {
				sv.Weights = ptr(DefaultWeights)
			}
			if sv.DistanceScaleKM == nil {
				sv.DistanceScaleKM = ptr(float64(DefaultDistanceScaleKM))
			}
			if sv.LatencyScaleMS == nil {
				sv.LatencyScaleMS = ptr(float64(DefaultLatencyScaleMS))
			}
			if sv.Slack == nil {
				sv.Slack = ptr(DefaultSlack)
			}
			if sv.WhenAllDown == "" {
				sv.WhenAllDown = "all"
			}
			sv.NetworksFile = resolvePath(c.File, sv.NetworksFile)
			sv.applyPolicyDefaults()
		}
	}
}

func ptr[T any](v T) *T { return &v }

func canonicalName(s string) string {
	return strings.ToLower(dns.Fqdn(strings.TrimSpace(s)))
}

// validator gathers every problem instead of stopping at the first, so
// one run of check-config lists them all.
type validator struct {
	file    string
	sources map[string]string
	errs    []error
}

func (v *validator) add(path, format string, args ...any) {
	file := v.file
	key, _, _ := strings.Cut(path, "[") // dns.listen[1] was set as dns.listen
	if src, ok := v.sources[key]; ok {
		file = src
	}
	v.errs = append(v.errs, &FieldError{File: file, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func oneOf(s string, allowed []string) string {
	return fmt.Sprintf("%q is not one of %s", s, strings.Join(allowed, ", "))
}

func (c *Config) validate() error {
	v := &validator{file: c.File, sources: c.sources}
	c.validateProcess(v)
	dcs := c.validateDatacenters(v)
	c.validateZones(v, dcs)
	c.validateDrills(v)
	c.validateReplication(v)
	c.validateACME(v)
	c.validateFleet(v)
	return errors.Join(v.errs...)
}

func (c *Config) validateProcess(v *validator) {
	if c.Instance.DatacenterID < 0 || c.Instance.DatacenterID > 31 {
		v.add("instance.datacenter_id", "%d is outside 0..31", c.Instance.DatacenterID)
	}
	if c.Instance.WorkerID < 0 || c.Instance.WorkerID > 31 {
		v.add("instance.worker_id", "%d is outside 0..31", c.Instance.WorkerID)
	}
	if !slices.Contains(logLevels, c.Log.Level) {
		v.add("log.level", "%s", oneOf(c.Log.Level, logLevels))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		v.add("log.format", "%s", oneOf(c.Log.Format, logFormats))
	}
	if len(c.DNS.Listen) == 0 {
		v.add("dns.listen", "expected at least one address:port")
	}
	for i, ap := range c.DNS.Listen {
		if slices.Index(c.DNS.Listen, ap) != i {
			v.add(fmt.Sprintf("dns.listen[%d]", i), "%s is listed twice", ap)
		}
	}
	if c.DNS.UDPSize < 512 || c.DNS.UDPSize > 4096 {
		v.add("dns.udp_size", "%d is outside 512..4096", c.DNS.UDPSize)
	}
	if c.DNS.TCPIdleTimeout <= 0 {
		v.add("dns.tcp_idle_timeout", "expected a positive duration, got %s", c.DNS.TCPIdleTimeout)
	}
	if p := c.DNS.HandoverSocket; p != "" && !filepath.IsAbs(p) {
		v.add("dns.handover_socket", "expected an absolute path, got %q", p)
	}
	if c.DNS.TCPMaxConnections < 1 {
		v.add("dns.tcp_max_connections", "expected at least 1, got %d", c.DNS.TCPMaxConnections)
	}
	if len(c.DNS.Identity.ID) > 255 {
		v.add("dns.identity.id", "is %d bytes, longer than the 255 a TXT string holds", len(c.DNS.Identity.ID))
	}
	if !c.HTTP.Listen.IsValid() {
		v.add("http.listen", "expected an address:port such as 127.0.0.1:9053")
	}
	if c.HTTP.TokenFile != "" {
		c.HTTP.TokenFile = resolvePath(c.File, c.HTTP.TokenFile)
		b, err := readSmallFile(c.HTTP.TokenFile, 4096)
		switch {
		case err != nil:
			v.add("http.token_file", "cannot read %s: %v", c.HTTP.TokenFile, err)
		case strings.TrimSpace(string(b)) == "":
			v.add("http.token_file", "%s is empty; expected a bearer token", c.HTTP.TokenFile)
		default:
			c.HTTP.Token = strings.TrimSpace(string(b))
		}
	}
	if c.HTTP.AllowUnauthenticatedLoopback && c.HTTP.Listen.IsValid() && !c.HTTP.Listen.Addr().IsLoopback() {
		v.add("http.allow_unauthenticated_loopback", "is set but http.listen %s is not a loopback address", c.HTTP.Listen)
	}
	c.validateLimits(v)
	c.validateGeoIP(v)
	c.validateHealth(v)
	c.validateSessions(v)
	if c.IDGen.MaxClockBackwards < 0 {
		v.add("idgen.max_clock_backwards", "expected a duration of zero or more, got %s", c.IDGen.MaxClockBackwards)
	}
}

func (c *Config) validateGeoIP(v *validator) {
	g := &c.GeoIP
	g.CityDB = resolvePath(c.File, g.CityDB)
	g.ASNDB = resolvePath(c.File, g.ASNDB)
	if g.CacheSize < 1 {
		v.add("geoip.cache_size", "expected at least 1, got %d", g.CacheSize)
	}
	if g.ReloadInterval < time.Second {
		v.add("geoip.reload_interval", "expected at least 1s, got %s", g.ReloadInterval)
	}
	d := g.DefaultLocation
	validateLocation(v, "geoip.default_location", &d)
}

func validateLocation(v *validator, p string, d *Location) {
	if !(d.Lat >= -90 && d.Lat <= 90) {
		v.add(p+".lat", "%v is outside -90..90", d.Lat)
	}
	if !(d.Lon >= -180 && d.Lon <= 180) {
		v.add(p+".lon", "%v is outside -180..180", d.Lon)
	}
	if d.Country != "" && !IsCountry(d.Country) {
		v.add(p+".country", "%q is not an ISO 3166-1 alpha-2 code such as DE", d.Country)
	}
	if d.Continent != "" && !slices.Contains(continents, d.Continent) {
		v.add(p+".continent", "%s", oneOf(d.Continent, continents))
	}
}

func (c *Config) validateDatacenters(v *validator) map[string]int {
	seen := make(map[string]int, len(c.Datacenters))
	for i, dc := range c.Datacenters {
		p := fmt.Sprintf("datacenters[%d]", i)
		switch {
		case dc.ID == "":
			v.add(p+".id", "is required")
		case !identifier.MatchString(dc.ID):
			v.add(p+".id", "%q must be lowercase letters, digits, '-', '_' or '.', starting with a letter or digit", dc.ID)
		default:
			if j, dup := seen[dc.ID]; dup {
				v.add(p+".id", "%q is already used by datacenters[%d]", dc.ID, j)
			} else {
				seen[dc.ID] = i
			}
		}
		// Written as !(in range) so that NaN, which every comparison
		// fails, is out of range too.
		if dc.Lat != nil && !(*dc.Lat >= -90 && *dc.Lat <= 90) {
			v.add(p+".lat", "%v is outside -90..90", *dc.Lat)
		}
		if dc.Lon != nil && !(*dc.Lon >= -180 && *dc.Lon <= 180) {
			v.add(p+".lon", "%v is outside -180..180", *dc.Lon)
		}
		if (dc.Lat == nil) != (dc.Lon == nil) {
			v.add(p, "lat and lon must be given together")
		}
		if !(dc.Capacity > 0) || math.IsInf(dc.Capacity, 1) {
			v.add(p+".capacity", "expected a positive number, got %v", dc.Capacity)
		}
		if !(dc.Load >= 0) || math.IsInf(dc.Load, 1) {
			v.add(p+".load", "expected zero or more, got %v", dc.Load)
		}
		if dc.Latency < 0 {
			v.add(p+".latency", "expected zero or more, got %s", dc.Latency)
		}
		if len(dc.Endpoints) == 0 {
			v.add(p+".endpoints", "expected at least one endpoint")
		}
		addrs := map[string]int{}
		for j, ep := range dc.Endpoints {
			ep := ep
			ep.Address = ep.Address.Unmap()
			c.Datacenters[i].Endpoints[j].Address = ep.Address
			ep2 := fmt.Sprintf("%s.endpoints[%d].address", p, j)
			if !ep.Address.IsValid() {
				v.add(ep2, "is required")
				continue
			}
			if ep.Address.Zone() != "" {
				v.add(ep2, "%s has a zone, which DNS cannot carry", ep.Address)
			}
			if k, dup := addrs[ep.Address.String()]; dup {
				v.add(ep2, "%s is already endpoints[%d]", ep.Address, k)
			}
			addrs[ep.Address.String()] = j
		}
	}
	if c.Instance.Datacenter != "" {
		if _, ok := seen[c.Instance.Datacenter]; !ok {
			v.add("instance.datacenter", "%q is not a configured datacenter", c.Instance.Datacenter)
		}
	}
	return seen
}

func (c *Config) validateZones(v *validator, dcs map[string]int) {
	if len(c.Zones) == 0 {
		v.add("zones", "expected at least one zone: gslbd answers only for the zones it is given")
	}
	origins := map[string]int{}
	for i := range c.Zones {
		z := &c.Zones[i]
		p := fmt.Sprintf("zones[%d]", i)
		if z.Origin == "." || strings.TrimSpace(z.Origin) == "" {
			v.add(p+".origin", "is required (a domain name such as gslb.example.)")
			continue
		}
		if _, ok := dns.IsDomainName(z.Origin); !ok {
			v.add(p+".origin", "%q is not a valid domain name", z.Origin)
			continue
		}
		if j, dup := origins[z.Origin]; dup {
			v.add(p+".origin", "%s is already zones[%d]", z.Origin, j)
		}
		origins[z.Origin] = i
		z.validate(v, p, dcs, c.Datacenters, c.GeoIP.ASNDB != "")
	}
}

// Owner resolves a name written in the file against the zone, as a zone
// file does: "@" is the origin, a name without a trailing dot is relative.
func (z *Zone) Owner(name string) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "@" || name == "":
		return z.Origin
	case strings.HasSuffix(name, "."):
		return strings.ToLower(name)
	default:
		return strings.ToLower(name) + "." + z.Origin
	}
}

// InZone reports whether name is the origin or below it.
func (z *Zone) InZone(name string) bool {
	return dns.IsSubDomain(z.Origin, name)
}

func (z *Zone) validate(v *validator, p string, dcs map[string]int, dcList []Datacenter, hasASNDB bool) {
	checkName := func(path, name string, mustBeInZone bool) (string, bool) {
		owner := z.Owner(name)
		if _, ok := dns.IsDomainName(owner); !ok || strings.Contains(owner, "..") {
			v.add(path, "%q is not a valid domain name", name)
			return "", false
		}
		if mustBeInZone && !z.InZone(owner) {
			v.add(path, "%s is outside the zone %s", owner, z.Origin)
			return "", false
		}
		return owner, true
	}
	if z.SOA.MName == "" {
		v.add(p+".soa.mname", "is required (the primary name server, such as ns1.%s)", z.Origin)
	} else if n, ok := checkName(p+".soa.mname", z.SOA.MName, false); ok {
		z.SOA.MName = n
	}
	if z.SOA.RName == "" {
		v.add(p+".soa.rname", "is required (the contact mailbox, such as hostmaster.%s)", z.Origin)
	} else {
		rname := z.SOA.RName
		if local, domain, ok := strings.Cut(rname, "@"); ok {
			// Accept the mailbox as people write it; DNS wants the first
			// dot escaped if the local part has one.
			rname = strings.ReplaceAll(local, ".", `\.`) + "." + dns.Fqdn(domain)
		}
		if n, ok := checkName(p+".soa.rname", rname, false); ok {
			z.SOA.RName = n
		}
	}
	if len(z.NS) == 0 {
		v.add(p+".ns", "expected at least one name server")
	}
	for j := range z.NS {
		ns := &z.NS[j]
		np := fmt.Sprintf("%s.ns[%d]", p, j)
		n, ok := checkName(np+".name", ns.Name, false)
		if !ok {
			continue
		}
		ns.Name = n
		inZone := z.InZone(n)
		if inZone && len(ns.Addresses) == 0 {
			v.add(np+".addresses", "%s is inside the zone, so it needs glue addresses", n)
		}
		if !inZone && len(ns.Addresses) > 0 {
			v.add(np+".addresses", "%s is outside the zone; glue is only served for in-zone name servers", n)
		}
		for k, a := range ns.Addresses {
			ns.Addresses[k] = a.Unmap()
			if !a.IsValid() {
				v.add(fmt.Sprintf("%s.addresses[%d]", np, k), "expected an IP address")
			}
		}
	}

	type ownerUse struct {
		path  string
		cname bool
	}
	owners := map[string][]ownerUse{}
	rrs := map[string]int{}
	for j := range z.Records {
		r := &z.Records[j]
		rp := fmt.Sprintf("%s.records[%d]", p, j)
		owner, ok := checkName(rp+".name", r.Name, true)
		if !ok {
			continue
		}
		if !slices.Contains(RecordTypes, r.Type) {
			v.add(rp+".type", "%s", oneOf(r.Type, RecordTypes))
			continue
		}
		if strings.TrimSpace(r.Data) == "" {
			v.add(rp+".data", "is required (the %s record's data in zone-file syntax)", r.Type)
			continue
		}
		rr, err := parseRR(z.Origin, owner, r.Type, *r.TTL, r.Data)
		if err != nil {
			v.add(rp+".data", "%q is not valid %s data: %v", r.Data, r.Type, err)
			continue
		}
		r.rr = rr
		key := rr.String()
		if k, dup := rrs[key]; dup {
			v.add(rp, "duplicates %s.records[%d]", p, k)
			continue
		}
		rrs[key] = j
		if r.Type == "CNAME" && owner == z.Origin {
			v.add(rp+".name", "a CNAME cannot sit at the zone apex, which has SOA and NS")
		}
		if strings.Contains(owner, "*") && !strings.HasPrefix(owner, "*.") || strings.Count(owner, "*") > 1 {
			v.add(rp+".name", "%s: a wildcard must be the leftmost label alone (RFC 4592)", owner)
		}
		owners[owner] = append(owners[owner], ownerUse{path: rp, cname: r.Type == "CNAME"})
	}
	for _, owner := range slices.Sorted(maps.Keys(owners)) {
		uses := owners[owner]
		var cname, other bool
		for _, u := range uses {
			cname = cname || u.cname
			other = other || !u.cname
		}
		if cname && (other || len(uses) > 1) {
			for _, u := range uses {
				if u.cname {
					v.add(u.path+".name", "%s has a CNAME and other records; a CNAME must stand alone (RFC 1034)", owner)
				}
			}
		}
	}

	services := map[string]int{}
	for j := range z.Services {
		s := &z.Services[j]
		sp := fmt.Sprintf("%s.services[%d]", p, j)
		owner, ok := checkName(sp+".name", s.Name, true)
		if ok {
			if owner == z.Origin {
				v.add(sp+".name", "a service cannot sit at the zone apex")
			}
			if k, dup := services[owner]; dup {
				v.add(sp+".name", "%s is already %s.services[%d]", owner, p, k)
			}
			services[owner] = j
			if uses, clash := owners[owner]; clash {
				v.add(sp+".name", "%s is also a static record at %s; a service name must stand alone", owner, uses[0].path)
			}
			s.owner = owner
		}
		validateService(v, sp, s, dcs, dcList, hasASNDB)
	}
}

func parseRR(origin, owner, typ string, ttl uint32, data string) (dns.RR, error) {
	if strings.ContainsAny(data, "\n\r;") && typ != "TXT" {
		return nil, fmt.Errorf("expected one line without comments")
	}
	zp := dns.NewZoneParser(strings.NewReader(fmt.Sprintf("%s %d IN %s %s\n", owner, ttl, typ, data)), origin, "")
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		var pe *dns.ParseError
		if errors.As(err, &pe) {
			// The parser's position refers to the one-line zone file we
			// built, which would only mislead; the key path locates it.
			msg, _, _ := strings.Cut(strings.TrimPrefix(pe.Error(), "dns: "), " at line: ")
			return nil, errors.New(msg)
		}
		return nil, err
	}
	if !ok || rr == nil {
		return nil, fmt.Errorf("no record")
	}
	if _, more := zp.Next(); more {
		return nil, fmt.Errorf("expected exactly one record")
	}
	return rr, nil
}

// RR is the parsed record, valid after Load succeeded.
func (r *Record) RR() dns.RR { return r.rr }

// Owner is the service's absolute, lowercase name, valid after Load.
func (s *Service) Owner() string { return s.owner }

// readSmallFile reads a secret-sized regular file. A device or FIFO named
// by mistake (/dev/zero, a pipe) would otherwise hang or exhaust memory
// while the configuration loads.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%d bytes, more than the %d a token may have", st.Size(), limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

func (c *Config) validateDrills(v *validator) {
	for i := range c.Drills {
		d := &c.Drills[i]
		p := fmt.Sprintf("drills[%d]", i)
		d.Service = canonicalName(d.Service)
		var svc *Service
		for zi := range c.Zones {
			for si := range c.Zones[zi].Services {
				if c.Zones[zi].Services[si].Owner() == d.Service {
					svc = &c.Zones[zi].Services[si]
				}
			}
		}
		if svc == nil {
			v.add(p+".service", "%q is not a configured service (give its full name, such as www.gslb.example.)", d.Service)
		} else if !slices.Contains(svc.Datacenters, d.Fail) {
			v.add(p+".fail", "%q is not one of the service's datacenters", d.Fail)
		}
		if len(d.Probes) == 0 {
			v.add(p+".probes", "expected at least one client address or subnet")
		}
		for k, pr := range d.Probes {
			if _, err := netip.ParsePrefix(pr); err != nil {
				if _, err := netip.ParseAddr(pr); err != nil {
					v.add(fmt.Sprintf("%s.probes[%d]", p, k), "%q is not an IP address or a subnet", pr)
				}
			}
		}
		if d.Every < time.Second {
			v.add(p+".every", "expected at least 1s, got %s", d.Every)
		}
	}
}
