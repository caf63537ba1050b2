package config

import "reflect"

// restartOnly lists the settings bound at start-up: sockets, the
// instance's identity, the ID generator and the log handler. A reload
// reports a change to them and keeps the running values.
var restartOnly = []struct {
	key string
	get func(*Config) any
	set func(dst, src *Config)
}{
	{"instance", func(c *Config) any { return c.Instance }, func(d, s *Config) { d.Instance = s.Instance }},
	{"dns.listen", func(c *Config) any { return c.DNS.Listen }, func(d, s *Config) { d.DNS.Listen = s.DNS.Listen }},
	{"dns.tcp_idle_timeout", func(c *Config) any { return c.DNS.TCPIdleTimeout }, func(d, s *Config) { d.DNS.TCPIdleTimeout = s.DNS.TCPIdleTimeout }},
	{"dns.handover_socket", func(c *Config) any { return c.DNS.HandoverSocket }, func(d, s *Config) { d.DNS.HandoverSocket = s.DNS.HandoverSocket }},
	{"dns.tcp_max_connections", func(c *Config) any { return c.DNS.TCPMaxConnections }, func(d, s *Config) { d.DNS.TCPMaxConnections = s.DNS.TCPMaxConnections }},
	{"dns.max_query_size", func(c *Config) any { return c.DNS.MaxQuerySize }, func(d, s *Config) { d.DNS.MaxQuerySize = s.DNS.MaxQuerySize }},
	{"dns.cookies", func(c *Config) any { return c.DNS.Cookies }, func(d, s *Config) { d.DNS.Cookies = s.DNS.Cookies }},
	{"dns.rrl", func(c *Config) any { return c.DNS.RRL }, func(d, s *Config) { d.DNS.RRL = s.DNS.RRL }},
	{"http.listen", func(c *Config) any { return c.HTTP.Listen }, func(d, s *Config) { d.HTTP.Listen = s.HTTP.Listen }},
	{"http.allow_unauthenticated_loopback", func(c *Config) any { return c.HTTP.AllowUnauthenticatedLoopback }, func(d, s *Config) {
		d.HTTP.AllowUnauthenticatedLoopback = s.HTTP.AllowUnauthenticatedLoopback
	}},
	{"log.format", func(c *Config) any { return c.Log.Format }, func(d, s *Config) { d.Log.Format = s.Log.Format }},
	{"idgen", func(c *Config) any { return c.IDGen }, func(d, s *Config) { d.IDGen = s.IDGen }},
	{"drills", func(c *Config) any { return c.Drills }, func(d, s *Config) { d.Drills = s.Drills }},
	{"sessions", func(c *Config) any { return c.Sessions }, func(d, s *Config) { d.Sessions = s.Sessions }},
	{"replication", func(c *Config) any { return c.Replication }, func(d, s *Config) { d.Replication = s.Replication }},
	{"fleet", func(c *Config) any { return c.Fleet }, func(d, s *Config) { d.Fleet = s.Fleet }},
	{"acme.enabled", func(c *Config) any { return c.ACME.Enabled }, func(d, s *Config) { d.ACME.Enabled = s.ACME.Enabled }},
	{"health.max_in_flight", func(c *Config) any { return c.Health.MaxInFlight }, func(d, s *Config) { d.Health.MaxInFlight = s.Health.MaxInFlight }},
	{"health.webhooks", func(c *Config) any { return c.Health.Webhooks }, func(d, s *Config) { d.Health.Webhooks = s.Health.Webhooks }},
}

// KeepRestartOnly makes c, a configuration loaded for a reload, carry the
// running values of every restart-only key, and returns the keys whose
// values in the file differ from the running ones. Without this a changed
// key would be ignored at the first reload and silently applied at the
// next, when the running copy already held the new value.
func (c *Config) KeepRestartOnly(running *Config) []string {
	var changed []string
	for _, k := range restartOnly {
		if !reflect.DeepEqual(k.get(c), k.get(running)) {
			changed = append(changed, k.key)
			k.set(c, running)
		}
	}
	// An identity derived from instance.name follows the running name,
	// which is what NSID and id.server must keep reporting.
	if c.identityDerived {
		c.DNS.Identity.ID = running.Instance.Name
	}
	return changed
}
