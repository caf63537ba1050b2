package gslb

import (
	"maps"
	"strings"

	"github.com/miekg/dns"
)

// WithACME returns a snapshot that also serves the given TXT records
// (ACME DNS-01 challenges added by UPDATE) and shares everything else
// with s. They are served by the normal answer path, so explain and every
// listener see them. A record is left out when no zone holds its name or
// when the configuration gives its name records or a service: static data
// always wins, and the update handler refuses such names in the first
// place, so this only matters after a reload adds a static record there.
// s itself is not changed; only the zones the records fall in are copied.
func (s *Snapshot) WithACME(rrs []dns.RR) *Snapshot {
	if len(rrs) == 0 {
		return s
	}
	n := *s
	n.zones = maps.Clone(s.zones)
	copied := map[string]bool{} // zones already copied for this snapshot
	fresh := map[*node]bool{}   // nodes created here, safe to append to
	for _, rr := range rrs {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		name := strings.ToLower(dns.Fqdn(txt.Hdr.Name))
		z := n.findZone(name)
		if z == nil {
			continue
		}
		if !copied[z.origin] {
			c := *z
			c.nodes = maps.Clone(z.nodes)
			z = &c
			n.zones[z.origin] = z
			copied[z.origin] = true
		}
		nd := z.nodes[name]
		if nd != nil && !nd.acme && (nd.service != nil || len(nd.rrsets) > 0) {
			continue
		}
		if !fresh[nd] {
			// A new node, or one shared with s (an empty non-terminal, or
			// an ACME node of an earlier call): replace, never mutate.
			old := nd
			nd = z.ensure(name)
			if nd == old {
				nd = &node{rrsets: map[uint16][]dns.RR{}}
				if old != nil {
					maps.Copy(nd.rrsets, old.rrsets)
				}
				z.nodes[name] = nd
			}
			nd.acme = true
			fresh[nd] = true
		}
		c := dns.Copy(txt).(*dns.TXT)
		c.Hdr.Name, c.Hdr.Class, c.Hdr.Rrtype = name, dns.ClassINET, dns.TypeTXT
		dup := false
		for _, have := range nd.rrsets[dns.TypeTXT] {
			dup = dup || dns.IsDuplicate(have, c)
		}
		if !dup {
			nd.rrsets[dns.TypeTXT] = append(nd.rrsets[dns.TypeTXT], c)
		}
	}
	return &n
}

// StaticName reports whether the configuration gives name (lowercase,
// fully qualified) records or a service, which an update may not add to.
func (s *Snapshot) StaticName(name string) bool {
	z := s.findZone(name)
	if z == nil {
		return false
	}
	nd := z.nodes[name]
	return nd != nil && !nd.acme && (nd.service != nil || len(nd.rrsets) > 0)
}
