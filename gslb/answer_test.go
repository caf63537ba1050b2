package gslb

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb/config"
)

func testSnapshot(tb testing.TB) *Snapshot {
	tb.Helper()
	cfg, err := config.Load("testdata/zone.yaml", config.Options{})
	if err != nil {
		tb.Fatalf("loading testdata/zone.yaml: %v", err)
	}
	s, err := NewSnapshot(cfg, nil)
	if err != nil {
		tb.Fatalf("building snapshot: %v", err)
	}
	return s
}

const soaLine = "example.test.\t%d\tIN\tSOA\tns1.example.test. hostmaster.example.test. 2025010101 7200 3600 1209600 60"

func soa(ttl int) string { return strings.Replace(soaLine, "%d", itoa(ttl), 1) }

func itoa(n int) string {
	var b [12]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// rrs renders a section as sorted zone-file lines, so a test states the
// exact records, owners and TTLs it expects.
func rrs(section []dns.RR) []string {
	var out []string
	for _, rr := range section {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

type answerCase struct {
	name   string
	qname  string
	qtype  uint16
	rcode  int
	aa     bool
	answer []string
	ns     []string
	extra  []string
}

func TestAnswer(t *testing.T) {
	s := testSnapshot(t)
	cases := []answerCase{
		{name: "apex SOA", qname: "example.test.", qtype: dns.TypeSOA, aa: true,
			answer: []string{soa(3600)}},
		{name: "apex NS with in-zone glue only", qname: "example.test.", qtype: dns.TypeNS, aa: true,
			answer: []string{"example.test.\t300\tIN\tNS\tns.elsewhere.example.", "example.test.\t300\tIN\tNS\tns1.example.test."},
			extra:  []string{"ns1.example.test.\t300\tIN\tA\t192.0.2.53", "ns1.example.test.\t300\tIN\tAAAA\t2001:db8::53"}},
		{name: "MX with in-zone target address", qname: "example.test.", qtype: dns.TypeMX, aa: true,
			answer: []string{"example.test.\t300\tIN\tMX\t10 mail.example.test."},
			extra:  []string{"mail.example.test.\t120\tIN\tA\t192.0.2.25"}},
		{name: "TXT", qname: "example.test.", qtype: dns.TypeTXT, aa: true,
			answer: []string{"example.test.\t300\tIN\tTXT\t\"v=spf1 -all\""}},
		{name: "CAA", qname: "example.test.", qtype: dns.TypeCAA, aa: true,
			answer: []string{"example.test.\t300\tIN\tCAA\t0 issue \"ca.example\""}},
		{name: "per-record TTL", qname: "mail.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"mail.example.test.\t120\tIN\tA\t192.0.2.25"}},
		{name: "AAAA", qname: "host.example.test.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"host.example.test.\t300\tIN\tAAAA\t2001:db8::30"}},
		{name: "SRV with target addresses", qname: "_sip._tcp.example.test.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"_sip._tcp.example.test.\t300\tIN\tSRV\t10 5 5060 host.example.test."},
			extra:  []string{"host.example.test.\t300\tIN\tA\t192.0.2.30", "host.example.test.\t300\tIN\tAAAA\t2001:db8::30"}},
		{name: "question case preserved in owner", qname: "HoSt.Example.TEST.", qtype: dns.TypeA, aa: true,
			answer: []string{"HoSt.Example.TEST.\t300\tIN\tA\t192.0.2.30"}},
		{name: "NXDOMAIN carries SOA with negative TTL min(ttl, minimum)", qname: "nope.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, aa: true, ns: []string{soa(60)}},
		{name: "NODATA carries SOA", qname: "mail.example.test.", qtype: dns.TypeAAAA, aa: true,
			ns: []string{soa(60)}},
		{name: "empty non-terminal is NODATA", qname: "b.c.example.test.", qtype: dns.TypeA, aa: true,
			ns: []string{soa(60)}},
		{name: "empty non-terminal one up", qname: "c.example.test.", qtype: dns.TypeTXT, aa: true,
			ns: []string{soa(60)}},
		{name: "below a leaf is NXDOMAIN", qname: "x.a.b.c.example.test.", qtype: dns.TypeTXT,
			rcode: dns.RcodeNameError, aa: true, ns: []string{soa(60)}},
		{name: "CNAME followed in zone", qname: "alias.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"alias.example.test.\t300\tIN\tCNAME\thost.example.test.", "host.example.test.\t300\tIN\tA\t192.0.2.30"}},
		{name: "CNAME chain followed", qname: "chain1.example.test.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{
				"alias.example.test.\t300\tIN\tCNAME\thost.example.test.",
				"chain1.example.test.\t300\tIN\tCNAME\tchain2.example.test.",
				"chain2.example.test.\t300\tIN\tCNAME\talias.example.test.",
				"host.example.test.\t300\tIN\tAAAA\t2001:db8::30"}},
		{name: "CNAME asked for itself", qname: "alias.example.test.", qtype: dns.TypeCNAME, aa: true,
			answer: []string{"alias.example.test.\t300\tIN\tCNAME\thost.example.test."}},
		{name: "CNAME to a missing in-zone name is NXDOMAIN (RFC 6604)", qname: "dangling.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, aa: true,
			answer: []string{"dangling.example.test.\t300\tIN\tCNAME\tmissing.example.test."}, ns: []string{soa(60)}},
		{name: "CNAME out of zone is not chased", qname: "outside.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"outside.example.test.\t300\tIN\tCNAME\twww.elsewhere.example."}},
		{name: "CNAME loop is cut", qname: "loop1.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"loop1.example.test.\t300\tIN\tCNAME\tloop2.example.test.", "loop2.example.test.\t300\tIN\tCNAME\tloop1.example.test."}},
		{name: "CNAME to a service", qname: "svc-alias.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"svc-alias.example.test.\t300\tIN\tCNAME\twww.example.test.", "www.example.test.\t30\tIN\tA\t192.0.2.1", "www.example.test.\t30\tIN\tA\t192.0.2.2"}},
		{name: "wildcard synthesises with the query name", qname: "Foo.wild.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"Foo.wild.example.test.\t300\tIN\tA\t192.0.2.80"}},
		{name: "wildcard covers several labels", qname: "a.b.wild.example.test.", qtype: dns.TypeTXT, aa: true,
			answer: []string{"a.b.wild.example.test.\t300\tIN\tTXT\t\"wildcard\""}},
		{name: "wildcard NODATA", qname: "foo.wild.example.test.", qtype: dns.TypeMX, aa: true, ns: []string{soa(60)}},
		{name: "existing name is not covered by the wildcard", qname: "exists.wild.example.test.", qtype: dns.TypeA, aa: true,
			ns: []string{soa(60)}},
		{name: "below an existing name the wildcard does not apply", qname: "x.exists.wild.example.test.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, aa: true, ns: []string{soa(60)}},
		{name: "the wildcard owner itself", qname: "*.wild.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"*.wild.example.test.\t300\tIN\tA\t192.0.2.80"}},
		{name: "service A from every datacenter", qname: "www.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"www.example.test.\t30\tIN\tA\t192.0.2.1", "www.example.test.\t30\tIN\tA\t192.0.2.2"}},
		{name: "service AAAA from those that have one", qname: "WWW.example.test.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"WWW.example.test.\t30\tIN\tAAAA\t2001:db8::1"}},
		{name: "service other type is NODATA with the service TTL", qname: "www.example.test.", qtype: dns.TypeTXT, aa: true,
			ns: []string{soa(30)}},
		{name: "ANY is minimal (RFC 8482)", qname: "example.test.", qtype: dns.TypeANY, aa: true,
			answer: []string{"example.test.\t60\tIN\tHINFO\t\"RFC8482\" \"\""}},
		{name: "ANY at a missing name is NXDOMAIN", qname: "nope.example.test.", qtype: dns.TypeANY,
			rcode: dns.RcodeNameError, aa: true, ns: []string{soa(60)}},
		{name: "most specific zone answers", qname: "sub.example.test.", qtype: dns.TypeTXT, aa: true,
			answer: []string{"sub.example.test.\t300\tIN\tTXT\t\"child zone\""}},
		{name: "outside every zone is REFUSED without AA", qname: "www.example.com.", qtype: dns.TypeA,
			rcode: dns.RcodeRefused},
		{name: "parent of a zone is REFUSED", qname: "test.", qtype: dns.TypeSOA, rcode: dns.RcodeRefused},
		{name: "AXFR refused", qname: "example.test.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused},
		{name: "IXFR refused", qname: "example.test.", qtype: dns.TypeIXFR, rcode: dns.RcodeRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := new(dns.Msg)
			req.SetQuestion(tc.qname, tc.qtype)
			req.RecursionDesired = true
			resp, _ := s.Answer(req, testClient, false)
			checkResponse(t, req, resp, tc)
		})
	}
}

func checkResponse(t *testing.T, req, resp *dns.Msg, tc answerCase) {
	t.Helper()
	if resp.Id != req.Id || !resp.Response {
		t.Errorf("got id %d response %t, want id %d response true", resp.Id, resp.Response, req.Id)
	}
	if resp.Rcode != tc.rcode {
		t.Errorf("rcode: got %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
	}
	if resp.Authoritative != tc.aa {
		t.Errorf("AA: got %t, want %t", resp.Authoritative, tc.aa)
	}
	if resp.RecursionAvailable {
		t.Errorf("RA: got true, want false: gslbd never recurses")
	}
	if resp.RecursionDesired != req.RecursionDesired {
		t.Errorf("RD: got %t, want it copied from the query (%t)", resp.RecursionDesired, req.RecursionDesired)
	}
	if len(resp.Question) != 1 || resp.Question[0].Name != req.Question[0].Name {
		t.Errorf("question: got %v, want %v echoed with its case", resp.Question, req.Question)
	}
	for _, sec := range []struct {
		name      string
		got, want []string
	}{{"answer", rrs(resp.Answer), tc.answer}, {"authority", rrs(resp.Ns), tc.ns}, {"additional", rrs(resp.Extra), tc.extra}} {
		want := slices.Clone(sec.want)
		slices.Sort(want)
		if !slices.Equal(sec.got, want) {
			t.Errorf("%s:\n got  %q\n want %q", sec.name, sec.got, want)
		}
	}
}

// testClient is the source address of test queries: a global address, so
// that it is located like a real client's.
var testClient = netip.MustParseAddr("198.51.100.99")
