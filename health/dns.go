package health

import (
	"context"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// dnsProber asks a name over UDP and judges the rcode and, optionally,
// whether an expected address is among the answers.
type dnsProber struct {
	name    string
	qtype   uint16
	rcode   int
	address netip.Addr
}

func (p *dnsProber) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(p.name), p.qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp"}
	r, _, err := c.ExchangeContext(ctx, m, target.String())
	if err != nil {
		return failed(start, "%v", err)
	}
	if r.Rcode != p.rcode {
		return failed(start, "rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[p.rcode])
	}
	if p.address.IsValid() {
		for _, rr := range r.Answer {
			var got netip.Addr
			switch v := rr.(type) {
			case *dns.A:
				got, _ = netip.AddrFromSlice(v.A.To4())
			case *dns.AAAA:
				got, _ = netip.AddrFromSlice(v.AAAA)
			}
			if got == p.address {
				return succeeded(start)
			}
		}
		return failed(start, "no %s among %d answers", p.address, len(r.Answer))
	}
	return succeeded(start)
}
