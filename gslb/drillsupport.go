package gslb

import "net/netip"

// WithDatacenterDown returns a copy of the snapshot in which one
// datacenter is down: what a dry-run drill answers from, through the
// same selection code as DNS, seen by nobody else.
func (s *Snapshot) WithDatacenterDown(id string) *Snapshot {
	n := *s
	n.datacenters = append([]Datacenter(nil), s.datacenters...)
	for i := range n.datacenters {
		if n.datacenters[i].ID == id {
			n.datacenters[i].Up = false
			n.datacenters[i].unsettled = true
		}
	}
	n.computeTTLs()
	// A drill must not move real clients' sessions.
	n.affinity = nil
	return &n
}

// Datacenters returns the datacenters as this snapshot sees them.
func (s *Snapshot) Datacenters() []Datacenter { return append([]Datacenter(nil), s.datacenters...) }

// ServiceDatacenters returns the IDs of a service's datacenters, and
// whether the service exists.
func (s *Snapshot) ServiceDatacenters(name string) ([]string, bool) {
	for _, svc := range s.services {
		if svc.name == name {
			var ids []string
			for _, i := range svc.datacenters {
				ids = append(ids, s.datacenters[i].ID)
			}
			return ids, true
		}
	}
	return nil, false
}

// DatacenterOf returns the datacenter that answers with addr.
func (s *Snapshot) DatacenterOf(addr netip.Addr) (string, bool) {
	for i := range s.datacenters {
		d := &s.datacenters[i]
		for _, a := range d.cfgA {
			if a == addr {
				return d.ID, true
			}
		}
		for _, a := range d.cfgAAAA {
			if a == addr {
				return d.ID, true
			}
		}
	}
	return "", false
}
