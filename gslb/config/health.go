package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// CheckTypes lists the probe types.
var CheckTypes = []string{"http", "https", "tcp", "dns"}

var httpMethods = []string{"GET", "HEAD", "POST", "OPTIONS"}

// Health check defaults, as docs/configuration.md lists them.
const (
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultRise          = 2
	DefaultFall          = 3
	DefaultBodyLimit     = 64 << 10
)

func (hc *HealthCheck) applyDefaults() {
	hc.Type = strings.ToLower(hc.Type)
	if hc.Interval == 0 {
		hc.Interval = DefaultCheckInterval
	}
	if hc.Timeout == 0 {
		hc.Timeout = min(DefaultCheckTimeout, hc.Interval/2)
	}
	if hc.Rise == 0 {
		hc.Rise = DefaultRise
	}
	if hc.Fall == 0 {
		hc.Fall = DefaultFall
	}
	if hc.Port == 0 {
		switch hc.Type {
		case "http":
			hc.Port = 80
		case "https":
			hc.Port = 443
		case "dns":
			hc.Port = 53
		}
	}
	if hc.Type == "http" || hc.Type == "https" {
		if hc.Method == "" {
			hc.Method = "GET"
		}
		hc.Method = strings.ToUpper(hc.Method)
		if hc.Path == "" {
			hc.Path = "/health"
		}
		if len(hc.ExpectStatus) == 0 {
			hc.ExpectStatus = []int{200}
		}
		if hc.BodyLimit == 0 {
			hc.BodyLimit = DefaultBodyLimit
		}
	}
	if hc.Type == "dns" {
		if hc.QueryType == "" {
			hc.QueryType = "A"
		}
		if hc.ExpectRcode == "" {
			hc.ExpectRcode = "NOERROR"
		}
		hc.QueryType = strings.ToUpper(hc.QueryType)
		hc.ExpectRcode = strings.ToUpper(hc.ExpectRcode)
	}
}

func (c *Config) validateHealth(v *validator) {
	h := &c.Health
	if h.MaxInFlight < 1 {
		v.add("health.max_in_flight", "expected at least 1, got %d", h.MaxInFlight)
	}
	if h.Jitter < 0 || h.Jitter > 0.5 {
		v.add("health.jitter", "%v is outside 0..0.5 (a fraction of each check's interval)", h.Jitter)
	}
	if h.ColdStartTimeout <= 0 {
		v.add("health.cold_start_timeout", "expected a positive duration, got %s", h.ColdStartTimeout)
	}
	if h.Damping.Window <= 0 {
		v.add("health.damping.window", "expected a positive duration, got %s", h.Damping.Window)
	}
	if h.Damping.MaxTransitions < 0 {
		v.add("health.damping.max_transitions", "expected zero (no damping) or more, got %d", h.Damping.MaxTransitions)
	}
	if h.Damping.Hold < 0 {
		v.add("health.damping.hold", "expected zero or more, got %s", h.Damping.Hold)
	}
	if !(h.TTLFactor > 0 && h.TTLFactor <= 1) {
		v.add("health.ttl_factor", "%v is outside (0, 1]", h.TTLFactor)
	}
	for i := range h.Webhooks {
		w := &h.Webhooks[i]
		p := fmt.Sprintf("health.webhooks[%d]", i)
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL is not quoted: it may carry credentials.
			v.add(p+".url", "expected an http or https URL such as https://hooks.example.com/gslbd")
		}
		if w.Timeout == 0 {
			w.Timeout = 5 * time.Second
		}
		if w.Timeout < 0 {
			v.add(p+".timeout", "expected a positive duration, got %s", w.Timeout)
		}
		for _, name := range slices.Sorted(maps.Keys(w.Headers)) {
			// Names are tokens (RFC 9110); values must not split the
			// request. The value is never quoted: it may be a secret.
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) }) {
				v.add(p+".headers", "%q is not a valid HTTP header name", name)
			}
			if strings.ContainsAny(w.Headers[name], "\r\n\x00") {
				v.add(p+".headers."+name, "the value contains a line break or NUL")
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.HealthChecks)) {
		hc := c.HealthChecks[name]
		p := "health_checks." + name
		if hc == nil {
			v.add(p, "expected a mapping with at least a type")
			continue
		}
		hc.applyDefaults()
		if !identifier.MatchString(name) {
			v.add(p, "the name %q must be lowercase letters, digits, '-', '_' or '.'", name)
		}
		c.validateCheck(v, p, hc)
	}
	for i := range c.Datacenters {
		dc := &c.Datacenters[i]
		p := fmt.Sprintf("datacenters[%d]", i)
		if dc.MinHealthy == 0 {
			dc.MinHealthy = 1
		}
		if dc.MinHealthy < 0 || (len(dc.Endpoints) > 0 && dc.MinHealthy > len(dc.Endpoints)) {
			v.add(p+".min_healthy", "%d is outside 1..%d (the datacenter's endpoints)", dc.MinHealthy, len(dc.Endpoints))
		}
		if dc.SlowStart < 0 {
			v.add(p+".slow_start", "expected zero or more, got %s", dc.SlowStart)
		}
		for j := range dc.Endpoints {
			ep := &dc.Endpoints[j]
			ep2 := fmt.Sprintf("%s.endpoints[%d]", p, j)
			if ep.Check != "" {
				if _, ok := c.HealthChecks[ep.Check]; !ok {
					v.add(ep2+".check", "%q is not one of health_checks (%s)", ep.Check, strings.Join(slices.Sorted(maps.Keys(c.HealthChecks)), ", "))
				}
			}
			if ep.CheckAddress != "" {
				if ep.Check == "" {
					v.add(ep2+".check_address", "is set but the endpoint has no check")
				}
				if _, err := ParseCheckAddress(ep.CheckAddress, 1); err != nil {
					v.add(ep2+".check_address", "%q: expected an IP address or IP:port, such as 10.0.0.5 or [2001:db8::5]:8080", ep.CheckAddress)
				}
			}
		}
	}
}

// ParseCheckAddress reads an endpoint's check_address: an IP, probed on
// the check's port, or an IP:port.
func ParseCheckAddress(s string, port uint16) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (c *Config) validateCheck(v *validator, p string, hc *HealthCheck) {
	if !slices.Contains(CheckTypes, hc.Type) {
		v.add(p+".type", "%s", oneOf(hc.Type, CheckTypes))
		return
	}
	if hc.Port == 0 {
		v.add(p+".port", "is required for %s checks", hc.Type)
	}
	if hc.Interval < 100*time.Millisecond {
		v.add(p+".interval", "expected at least 100ms, got %s", hc.Interval)
	}
	if hc.Timeout <= 0 {
		v.add(p+".timeout", "expected a positive duration, got %s", hc.Timeout)
	} else if hc.Timeout >= hc.Interval {
		v.add(p+".timeout", "%s must be shorter than interval %s", hc.Timeout, hc.Interval)
	}
	if hc.Rise < 1 {
		v.add(p+".rise", "expected at least 1, got %d", hc.Rise)
	}
	if hc.Fall < 1 {
		v.add(p+".fall", "expected at least 1, got %d", hc.Fall)
	}
	httpOnly := func(key string, set bool) {
		if set && hc.Type != "http" && hc.Type != "https" {
			v.add(p+"."+key, "applies to http and https checks, not %s", hc.Type)
		}
	}
	httpOnly("path", hc.Path != "")
	httpOnly("method", hc.Method != "")
	httpOnly("host", hc.Host != "")
	httpOnly("expect_status", len(hc.ExpectStatus) > 0)
	httpOnly("body_contains", hc.BodyContains != "")
	if hc.Type == "http" || hc.Type == "https" {
		if !slices.Contains(httpMethods, hc.Method) {
			v.add(p+".method", "%s", oneOf(hc.Method, httpMethods))
		}
		if !strings.HasPrefix(hc.Path, "/") {
			v.add(p+".path", "%q must start with /", hc.Path)
		}
		for i, code := range hc.ExpectStatus {
			if code < 100 || code > 599 {
				v.add(fmt.Sprintf("%s.expect_status[%d]", p, i), "%d is not an HTTP status code (100..599)", code)
			}
		}
		if hc.BodyLimit < 1 {
			v.add(p+".body_limit", "expected a positive number of bytes, got %d", hc.BodyLimit)
		}
	}
	t := &hc.TLS
	if *t != (TLS{}) && hc.Type != "https" {
		v.add(p+".tls", "applies to https checks, not %s", hc.Type)
	}
	validateTLSFiles(v, c.File, p+".tls", &t.CAFile, &t.CertFile, &t.KeyFile)
	if (hc.Send != "" || hc.Expect != "") && hc.Type != "tcp" {
		v.add(p, "send and expect apply to tcp checks, not %s", hc.Type)
	}
	if hc.Type == "dns" {
		if _, ok := dns.IsDomainName(hc.QueryName); !ok || hc.QueryName == "" {
			v.add(p+".query_name", "is required for dns checks (a name the server answers, such as www.example.com.)")
		}
		if _, ok := dns.StringToType[hc.QueryType]; !ok {
			v.add(p+".query_type", "%q is not a DNS type such as A or AAAA", hc.QueryType)
		}
		if _, ok := dns.StringToRcode[hc.ExpectRcode]; !ok {
			v.add(p+".expect_rcode", "%q is not a DNS rcode such as NOERROR or NXDOMAIN", hc.ExpectRcode)
		}
	} else if hc.QueryName != "" || hc.ExpectAddress.IsValid() {
		v.add(p, "query_name and expect_address apply to dns checks, not %s", hc.Type)
	}
}

func (c *Config) validateSessions(v *validator) {
	s := &c.Sessions
	if s.Store != "memory" && s.Store != "redis" {
		v.add("sessions.store", "%s", oneOf(s.Store, []string{"memory", "redis"}))
	}
	if s.TTL < time.Second {
		v.add("sessions.ttl", "expected at least 1s, got %s", s.TTL)
	}
	if s.MaxLifetime != 0 && s.MaxLifetime < s.TTL {
		v.add("sessions.max_lifetime", "%s is shorter than sessions.ttl %s", s.MaxLifetime, s.TTL)
	}
	if s.TouchInterval <= 0 || s.TouchInterval > s.TTL {
		v.add("sessions.touch_interval", "expected a positive duration up to sessions.ttl, got %s", s.TouchInterval)
	}
	if s.CacheSize < 1 {
		v.add("sessions.cache_size", "expected at least 1, got %d", s.CacheSize)
	}
	if s.PrefixV4 < 8 || s.PrefixV4 > 32 {
		v.add("sessions.prefix_v4", "%d is outside 8..32", s.PrefixV4)
	}
	if s.PrefixV6 < 16 || s.PrefixV6 > 128 {
		v.add("sessions.prefix_v6", "%d is outside 16..128", s.PrefixV6)
	}
	if s.Failback != "return" && s.Failback != "stay" {
		v.add("sessions.failback", "%s", oneOf(s.Failback, []string{"return", "stay"}))
	}
	r := &s.Redis
	if s.Store == "redis" && len(r.Addrs) == 0 {
		v.add("sessions.redis.addrs", "expected at least one host:port")
	}
	for i, a := range r.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			v.add(fmt.Sprintf("sessions.redis.addrs[%d]", i), "%q is not host:port", a)
		}
	}
	if r.LookupBudget <= 0 || r.LookupBudget > time.Second {
		v.add("sessions.redis.lookup_budget", "expected a duration in (0, 1s] (a few ms), got %s", r.LookupBudget)
	}
	if r.PasswordFile != "" {
		r.PasswordFile = resolvePath(c.File, r.PasswordFile)
		b, err := readSmallFile(r.PasswordFile, 4096)
		if err != nil {
			v.add("sessions.redis.password_file", "cannot read %s: %v", r.PasswordFile, err)
		} else {
			r.Password = strings.TrimSpace(string(b))
		}
	}
	validateTLSFiles(v, c.File, "sessions.redis.tls", &r.TLS.CAFile, &r.TLS.CertFile, &r.TLS.KeyFile)
}

// validateTLSFiles resolves and parses TLS files at load time, so a file
// that is not what it should be is an error naming its key, not a start-up
// failure after check-config said ok.
func validateTLSFiles(v *validator, file, p string, ca, cert, key *string) {
	for _, f := range []struct {
		key string
		p   *string
	}{{"ca_file", ca}, {"cert_file", cert}, {"key_file", key}} {
		if *f.p != "" {
			*f.p = resolvePath(file, *f.p)
		}
	}
	if *ca != "" {
		b, err := readSmallFile(*ca, 1<<20)
		switch {
		case err != nil:
			v.add(p+".ca_file", "cannot read %s: %v", *ca, err)
		case !x509.NewCertPool().AppendCertsFromPEM(b):
			v.add(p+".ca_file", "%s holds no PEM certificate", *ca)
		}
	}
	if (*cert == "") != (*key == "") {
		v.add(p, "cert_file and key_file go together (a client certificate and its key)")
	} else if *cert != "" {
		if _, err := tls.LoadX509KeyPair(*cert, *key); err != nil {
			v.add(p+".cert_file", "%s and %s are not a certificate and its key: %v", *cert, *key, err)
		}
	}
}
