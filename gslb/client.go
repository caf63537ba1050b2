package gslb

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// clientSubnet reads the query's EDNS Client Subnet option (RFC 7871).
// It returns the option (nil when absent), whether it may be used to
// locate the client, and false in ok when it is malformed, which is
// FORMERR.
func clientSubnet(opt *dns.OPT) (ecs *dns.EDNS0_SUBNET, addr netip.Addr, usable, ok bool) {
	if opt == nil {
		return nil, netip.Addr{}, false, true
	}
	for _, o := range opt.Option {
		e, isECS := o.(*dns.EDNS0_SUBNET)
		if !isECS {
			continue
		}
		if ecs != nil {
			return nil, netip.Addr{}, false, false // two ECS options
		}
		ecs = e
	}
	if ecs == nil {
		return nil, netip.Addr{}, false, true
	}
	var bits int
	switch ecs.Family {
	case 0: // family 0 with prefix 0: "do not use my address" (miekg/dns checked the prefix)
		return ecs, netip.Addr{}, false, true
	case 1:
		a, isAddr := netip.AddrFromSlice(ecs.Address.To4())
		if !isAddr {
			return nil, netip.Addr{}, false, false
		}
		addr, bits = a, 32
	case 2:
		a, isAddr := netip.AddrFromSlice(ecs.Address.To16())
		if !isAddr {
			return nil, netip.Addr{}, false, false
		}
		addr, bits = a, 128
		if a.Is4In6() {
			// An IPv4 client dressed as IPv6: its scope would be counted
			// in IPv6 bits and cover every mapped client, so it is not
			// used (echoed with scope 0).
			if p, _ := addr.Prefix(int(ecs.SourceNetmask)); p.Addr() != addr || int(ecs.SourceNetmask) > bits {
				return nil, netip.Addr{}, false, false
			}
			return ecs, addr, false, true
		}
	}
	if int(ecs.SourceNetmask) > bits {
		return nil, netip.Addr{}, false, false
	}
	// Address bits beyond the source prefix must be zero (RFC 7871
	// section 6): a client that sends them is confused about its own
	// prefix, and answering would leak a longer prefix than it meant.
	if p, _ := addr.Prefix(int(ecs.SourceNetmask)); p.Addr() != addr {
		return nil, netip.Addr{}, false, false
	}
	return ecs, addr, ecs.SourceNetmask > 0 && isGlobal(addr), true
}

// cgnat is RFC 6598 shared address space: as private as RFC 1918 for
// locating anyone.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// isGlobal reports whether an address can be located: not private,
// loopback, link-local, multicast, unspecified or carrier-grade NAT.
func isGlobal(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}

// echoSubnet is the response's ECS option: the query's family, prefix
// and address, and the scope the answer depended on.
func echoSubnet(q *dns.EDNS0_SUBNET, scope int) *dns.EDNS0_SUBNET {
	return &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: q.Family, SourceNetmask: q.SourceNetmask,
		SourceScope: uint8(scope), Address: q.Address,
	}
}

// addrOf turns a socket address into the client address; IPv4-mapped
// IPv6 from a dual-stack socket is the IPv4 client it stands for.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
