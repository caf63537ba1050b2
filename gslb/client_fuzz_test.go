package gslb

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// optQuery is a query with no question and one OPT record whose RDATA is
// rdata, the options exactly as a client sent them, so that the fuzzer
// reaches miekg/dns's option parsing and clientSubnet through the same
// unpacking a listener does.
func optQuery(rdata []byte) []byte {
	b := []byte{0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1} // one additional record
	b = append(b, 0)                                      // root owner
	b = binary.BigEndian.AppendUint16(b, dns.TypeOPT)
	b = binary.BigEndian.AppendUint16(b, 1232) // UDP size in CLASS
	b = append(b, 0, 0, 0, 0)                  // extended rcode, version, flags
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}

func ecsOption(family uint16, source, scope uint8, addr []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, dns.EDNS0SUBNET)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(addr)))
	b = binary.BigEndian.AppendUint16(b, family)
	return append(append(b, source, scope), addr...)
}

// FuzzClientSubnet feeds arbitrary EDNS option bytes to clientSubnet, the
// only reader of the EDNS Client Subnet a client claims. Whatever the
// bytes it must not panic; an option it accepts as usable must name an
// address whose bits beyond the source prefix are zero (what RFC 7871
// section 6 asks and what the locating cache keys on); and the echo it
// builds for any accepted option must pack, so that answering never fails
// on a client's ECS.
func FuzzClientSubnet(f *testing.F) {
	f.Add(ecsOption(1, 24, 0, []byte{81, 2, 69}))                                                // usable IPv4 /24
	f.Add(ecsOption(2, 56, 0, net.ParseIP("2001:db8:1:2::")[:7]))                                // IPv6 /56
	f.Add(ecsOption(0, 0, 0, nil))                                                               // family 0: do not use my address
	f.Add(ecsOption(1, 24, 0, []byte{81, 2, 69, 7}))                                             // host bits set: FORMERR
	f.Add(ecsOption(1, 33, 0, []byte{81, 2, 69, 0, 1}))                                          // prefix longer than the family
	f.Add(ecsOption(2, 120, 0, net.ParseIP("::ffff:81.2.69.0")[:15]))                            // IPv4-mapped
	f.Add(ecsOption(1, 8, 0, []byte{10}))                                                        // private: echoed, not used
	f.Add(append(ecsOption(1, 24, 0, []byte{81, 2, 69}), ecsOption(1, 16, 0, []byte{81, 2})...)) // two ECS
	f.Add(ecsOption(3, 8, 0, []byte{1}))                                                         // unknown family
	f.Add([]byte{0, 3, 0, 0})                                                                    // NSID, no ECS
	f.Fuzz(func(t *testing.T, rdata []byte) {
		m := new(dns.Msg)
		if m.Unpack(optQuery(rdata)) != nil {
			return // FORMERR from miekg/dns, before any handler
		}
		opt := m.IsEdns0()
		ecs, addr, usable, ok := clientSubnet(opt)
		if !ok {
			return
		}
		if ecs == nil {
			if usable {
				t.Fatal("usable without an ECS option")
			}
			return
		}
		if usable {
			if !addr.IsValid() || !isGlobal(addr) {
				t.Fatalf("usable but the address %v is not global", addr)
			}
			p, err := addr.Prefix(int(ecs.SourceNetmask))
			if err != nil || p.Addr() != addr {
				t.Fatalf("usable %v/%d has bits beyond its prefix", addr, ecs.SourceNetmask)
			}
		}
		for _, scope := range []int{0, int(ecs.SourceNetmask)} {
			resp := new(dns.Msg)
			resp.SetEdns0(1232, false)
			resp.IsEdns0().Option = []dns.EDNS0{echoSubnet(ecs, scope)}
			if _, err := resp.Pack(); err != nil {
				t.Fatalf("echo of %v with scope %d does not pack: %v", ecs, scope, err)
			}
		}
	})
}
