package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// ecsNetwork is one client network the ECS scenarios send, and where the
// demo GeoIP database (configs/demo/geo.csv) places it.
type ecsNetwork struct {
	Prefix netip.Prefix `json:"network"`
	Place  string       `json:"place"`
}

// ecsNetworks are the client subnets the geo scenario rotates over, one
// per query, in this order: /24s (and /56s, as resolvers send) inside the
// demo database's networks on five continents, interleaved so that
// consecutive queries come from different regions. None is a
// documentation range, which gslbd would still locate, but a real
// resolver would not send.
var ecsNetworks = []ecsNetwork{
	{netip.MustParsePrefix("89.160.20.0/24"), "Frankfurt"},
	{netip.MustParsePrefix("216.160.83.0/24"), "Ashburn"},
	{netip.MustParsePrefix("175.16.199.0/24"), "Singapore"},
	{netip.MustParsePrefix("81.2.69.0/24"), "London"},
	{netip.MustParsePrefix("24.168.10.0/24"), "New York"},
	{netip.MustParsePrefix("202.196.224.0/24"), "Tokyo"},
	{netip.MustParsePrefix("2.0.1.0/24"), "Paris"},
	{netip.MustParsePrefix("200.160.2.0/24"), "São Paulo"},
	{netip.MustParsePrefix("1.128.0.0/24"), "Sydney"},
	{netip.MustParsePrefix("145.100.5.0/24"), "Amsterdam"},
	{netip.MustParsePrefix("64.71.2.0/24"), "San Francisco"},
	{netip.MustParsePrefix("196.25.1.0/24"), "Johannesburg"},
	{netip.MustParsePrefix("99.224.3.0/24"), "Toronto"},
	{netip.MustParsePrefix("60.48.7.0/24"), "Kuala Lumpur"},
	{netip.MustParsePrefix("49.32.1.0/24"), "Mumbai"},
	{netip.MustParsePrefix("2a02:d000:0:100::/56"), "Frankfurt (IPv6)"},
	{netip.MustParsePrefix("2400:8900:0:200::/56"), "Singapore (IPv6)"},
	{netip.MustParsePrefix("2600:1f00:0:300::/56"), "Ashburn (IPv6)"},
}

// ednsUDPSize is what dnsperf -e and -E advertise (dnsperf 2.10), so that
// a wire-format query differs from the text-mode one with -E only in its
// ECS option.
const ednsUDPSize = 4096

// wireQuery packs the query dnsperf would send for "name type" with
// -E 8:<the ECS of p>: ID 0 (dnsperf overwrites it), RD set, and an OPT
// record advertising ednsUDPSize that carries one EDNS Client Subnet
// option with source prefix p and scope 0.
func wireQuery(name string, qtype uint16, p netip.Prefix) ([]byte, error) {
	if !p.IsValid() || p != p.Masked() {
		return nil, fmt.Errorf("ECS %s: not a network (host bits set?)", p)
	}
	family := uint16(1)
	if p.Addr().Is6() {
		family = 2
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = 0
	m.RecursionDesired = true
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(ednsUDPSize)
	opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(p.Bits()),
		Address: net.IP(p.Addr().AsSlice()),
	})
	m.Extra = append(m.Extra, opt)
	return m.Pack()
}

// writeWireQueries writes one query for name and qtype per network, in
// dnsperf -B's input format (RFC 1035 section 4.2.2 framing): each DNS
// message preceded by its length, two bytes in network byte order.
// dnsperf reads the file round and round, so every query carries the next
// network's ECS.
func writeWireQueries(w io.Writer, name string, qtype uint16, nets []ecsNetwork) error {
	if len(nets) == 0 {
		return errors.New("no networks")
	}
	bw := bufio.NewWriter(w)
	for _, n := range nets {
		msg, err := wireQuery(name, qtype, n.Prefix)
		if err != nil {
			return err
		}
		if len(msg) > 0xffff {
			return fmt.Errorf("query for %s is %d bytes, too long to frame", n.Prefix, len(msg))
		}
		if err := binary.Write(bw, binary.BigEndian, uint16(len(msg))); err != nil {
			return err
		}
		if _, err := bw.Write(msg); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// readWireQueries splits a dnsperf -B file back into its messages.
func readWireQueries(r io.Reader) ([][]byte, error) {
	br := bufio.NewReader(r)
	var out [][]byte
	for {
		var n uint16
		if err := binary.Read(br, binary.BigEndian, &n); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("message %d: length: %w", len(out)+1, err)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return nil, fmt.Errorf("message %d: %d bytes: %w", len(out)+1, n, err)
		}
		out = append(out, msg)
	}
}

// querySubnet returns the ECS option of a query or response, or nil.
func querySubnet(m *dns.Msg) *dns.EDNS0_SUBNET {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	return nil
}

// subnetPrefix turns an ECS option back into the network it names.
func subnetPrefix(e *dns.EDNS0_SUBNET) (netip.Prefix, error) {
	a, ok := netip.AddrFromSlice(e.Address)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("ECS address %v", e.Address)
	}
	if e.Family == 1 {
		a = a.Unmap()
	}
	return a.Prefix(int(e.SourceNetmask))
}

// wideParents are the demo database's networks of /20 or more, each
// holding many /24s; the geo-wide scenario asks from all of them.
var wideParents = []ecsNetwork{
	{netip.MustParsePrefix("24.168.0.0/16"), "New York"},
	{netip.MustParsePrefix("99.224.0.0/16"), "Toronto"},
	{netip.MustParsePrefix("2.0.0.0/16"), "Paris"},
	{netip.MustParsePrefix("145.100.0.0/16"), "Amsterdam"},
	{netip.MustParsePrefix("60.48.0.0/16"), "Kuala Lumpur"},
	{netip.MustParsePrefix("202.196.224.0/20"), "Tokyo"},
	{netip.MustParsePrefix("49.32.0.0/16"), "Mumbai"},
	{netip.MustParsePrefix("1.128.0.0/11"), "Sydney"},
	{netip.MustParsePrefix("200.160.0.0/16"), "São Paulo"},
	{netip.MustParsePrefix("196.25.0.0/16"), "Johannesburg"},
	{netip.MustParsePrefix("64.71.0.0/16"), "San Francisco"},
}

// wideNetworks are the geo-wide scenario's client subnets: every /24 of
// wideParents, 10,512 of them, each once. That is more than gslbd's
// answer cache holds (dns.answer_cache_size, 4096 by default), so nearly
// every query is located and scored anew, as for a server seeing many
// client networks. The parents are interleaved in proportion to their
// size, so every stretch of the file mixes regions.
func wideNetworks() []ecsNetwork {
	sizes := make([]int, len(wideParents))
	total := 0
	for i, p := range wideParents {
		sizes[i] = 1 << (24 - p.Prefix.Bits())
		total += sizes[i]
	}
	taken := make([]int, len(wideParents))
	out := make([]ecsNetwork, 0, total)
	for range total {
		// The parent furthest behind its share goes next.
		best := -1
		for i := range wideParents {
			if taken[i] == sizes[i] {
				continue
			}
			if best < 0 || (taken[i]+1)*sizes[best] < (taken[best]+1)*sizes[i] {
				best = i
			}
		}
		base := wideParents[best].Prefix.Addr().As4()
		n := binary.BigEndian.Uint32(base[:]) + uint32(taken[best])<<8
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], n)
		out = append(out, ecsNetwork{netip.PrefixFrom(netip.AddrFrom4(a), 24), wideParents[best].Place})
		taken[best]++
	}
	return out
}
