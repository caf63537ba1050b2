package main

import (
	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/config"
)

// protection turns dns.cookies, dns.rrl and dns.max_query_size into the
// DNS server's settings. All three are restart-only.
func protection(cfg *config.Config) gslb.Protection {
	p := gslb.Protection{
		Cookies: cfg.DNS.Cookies.Enabled, CookieSecrets: cfg.DNS.Cookies.Secrets,
		MaxQuerySize: cfg.DNS.MaxQuerySize,
	}
	if r := cfg.DNS.RRL; r.Enabled {
		p.RRL = &gslb.RRLConfig{
			ResponsesPerSecond: r.ResponsesPerSecond, NXDomainsPerSecond: r.NXDomainsPerSecond, ErrorsPerSecond: r.ErrorsPerSecond,
			Slip: r.Slip, Window: r.Window, IPv4PrefixLength: r.IPv4PrefixLength, IPv6PrefixLength: r.IPv6PrefixLength,
			TableSize: r.TableSize,
		}
	}
	return p
}
