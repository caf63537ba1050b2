package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cardinalityConfig serves two zones with three services over two
// datacenters, locating clients with the demo GeoIP database and keeping
// sessions, so that every per-query path that could make a label out of
// input (zone, qtype, rcode, service, datacenter, client location) runs.
const cardinalityConfig = `
instance: {name: card-1}
http: {allow_unauthenticated_loopback: true}
dns: {identity: {chaos: true, nsid: true}}
geoip:
  city_db: %s
  default_location: {lat: 45.0, lon: -35.0}
sessions: {store: memory}
datacenters:
  - {id: dc-a, lat: 50.1, lon: 8.7, endpoints: [{address: 192.0.2.1}]}
  - {id: dc-b, lat: 39.0, lon: -77.5, endpoints: [{address: 198.51.100.1}]}
zones:
  - origin: card.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    records:
      - {name: host, type: A, data: 192.0.2.9}
      - {name: "*.wild", type: TXT, data: '"w"'}
    services:
      - {name: geo, policy: score, datacenters: [dc-a, dc-b], sticky: true}
      - {name: www, datacenters: [dc-a, dc-b]}
  - origin: other.test.
    soa: {mname: ns1.card.test., rname: hostmaster.card.test.}
    ns: [{name: ns1.card.test.}]
    services:
      - {name: api, datacenters: [dc-b]}
`

// The bound on series that queries can create, from the configuration
// above and the label sets gslb/metrics.go allows:
//
//   - gslb_dns_requests_total{zone,qtype,proto}: zones+1 (the "none" zone
//     of queries outside every zone) × 19 qtype labels (18 named types and
//     "other") × 2 transports;
//   - gslb_dns_responses_total{zone,qtype,rcode,proto}: the same × 21
//     rcode labels (RcodeToString up to BADCOOKIE, 23, less the four
//     unassigned 12..15, with 16 as BADVERS, plus "other");
//   - gslb_dns_answers_total{service,datacenter}: services × datacenters.
//
// Every other family's labels come from configuration or fixed sets
// (health checks, GeoIP and session results, ...): a few of them appear
// only once a query touches them, which fixedLazy covers. A label that
// grew with queried names, types, classes or client subnets would pass
// these bounds within the first few thousand of the 10,000 queries.
const (
	cardZones, cardServices, cardDCs = 2, 3, 2
	cardQtypeLabels, cardRcodeLabels = 19, 21
	fixedLazy                        = 40
)

var (
	boundRequests  = (cardZones + 1) * cardQtypeLabels * 2
	boundResponses = boundRequests * cardRcodeLabels
	boundAnswers   = cardServices * cardDCs
)

// TestMetricCardinality sends 10,000 queries of random names (in and out
// of the zones), types, classes and EDNS Client Subnets to the real binary
// and counts the series in /metrics against the bound above. It also
// checks that no label value is any queried name or client address.
func TestMetricCardinality(t *testing.T) {
	geo, err := filepath.Abs(repoFile("configs", "demo", "geo.mmdb"))
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, writeConfig(t, t.TempDir(), fmt.Sprintf(cardinalityConfig, geo)))
	before := scrapeSeries(t, d)

	rng := rand.New(rand.NewPCG(12, 34))
	udp, err := net.Dial("udp", d.dns)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	uc := &dns.Conn{Conn: udp}
	var tokens []string // every random label and client address sent
	answered := 0
	const queries = 10000
	for i := range queries {
		m, token := randomQuery(rng)
		tokens = append(tokens, token...)
		if i%100 == 0 { // one in a hundred over TCP, its own connection
			c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
			if _, _, err := c.Exchange(m, d.dns); err == nil {
				answered++
			}
			continue
		}
		_ = uc.SetDeadline(time.Now().Add(time.Second))
		if uc.WriteMsg(m) != nil {
			continue
		}
		// Read until this query's answer or the deadline: a late answer to
		// an earlier query is skipped, an unanswered query costs a second.
		for {
			r, err := uc.ReadMsg()
			if err != nil && r == nil {
				break
			}
			if r != nil && r.Id == m.Id {
				answered++
				break
			}
		}
	}
	if answered < queries*9/10 {
		t.Fatalf("only %d of %d queries answered", answered, queries)
	}

	after := scrapeSeries(t, d)
	for fam, bound := range map[string]int{
		"gslb_dns_requests_total":  boundRequests,
		"gslb_dns_responses_total": boundResponses,
		"gslb_dns_answers_total":   boundAnswers,
	} {
		if n := after.families[fam]; n > bound {
			t.Errorf("%s has %d series, bound %d", fam, n, bound)
		}
	}
	total := before.total + boundRequests + boundResponses + boundAnswers + fixedLazy
	t.Logf("series: %d at start, %d after %d queries (%d answered); bound %d", before.total, after.total, queries, answered, total)
	for fam, n := range after.families {
		if n != before.families[fam] {
			t.Logf("  %s: %d → %d", fam, before.families[fam], n)
		}
	}
	if after.total > total {
		t.Errorf("%d series after %d queries, bound %d; by family: %v", after.total, queries, total, after.families)
	}
	for fam, n := range after.families {
		if _, bounded := map[string]bool{"gslb_dns_requests_total": true, "gslb_dns_responses_total": true, "gslb_dns_answers_total": true}[fam]; !bounded &&
			n > before.families[fam]+fixedLazy {
			t.Errorf("%s grew from %d to %d series", fam, before.families[fam], n)
		}
	}
	for _, tok := range tokens {
		if after.values[tok] {
			t.Errorf("label value %q came from a query", tok)
		}
	}
}

// randomQuery is a query of a random name, type, class and client subnet,
// with the tokens (random labels, client addresses) it carries.
func randomQuery(rng *rand.Rand) (*dns.Msg, []string) {
	var tokens []string
	label := fmt.Sprintf("r%x", rng.Uint64())
	var name string
	switch rng.IntN(6) {
	case 0:
		name = []string{"geo.card.test.", "www.card.test.", "api.other.test.", "host.card.test.", "card.test."}[rng.IntN(5)]
	case 1:
		name, tokens = label+".card.test.", []string{label}
	case 2:
		name, tokens = label+".wild.card.test.", []string{label}
	case 3:
		name, tokens = label+".other.test.", []string{label}
	default: // outside every zone
		name, tokens = label+"."+[]string{"com.", "example.", "test.", "card.test.example."}[rng.IntN(4)], []string{label}
	}
	m := new(dns.Msg)
	m.SetQuestion(name, uint16(rng.UintN(65536)))
	if rng.IntN(4) == 0 {
		m.Question[0].Qtype = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeSOA, dns.TypeNS, dns.TypeANY}[rng.IntN(6)]
	}
	switch rng.IntN(8) {
	case 0:
		m.Question[0].Qclass = dns.ClassCHAOS
	case 1:
		m.Question[0].Qclass = uint16(rng.UintN(65536))
	case 2:
		m.Question[0].Qclass = dns.ClassANY
	}
	m.Id = uint16(rng.UintN(65536))
	if rng.IntN(5) > 0 {
		m.SetEdns0(1232, rng.IntN(2) == 0)
		var a netip.Addr
		bits := 0
		if rng.IntN(3) == 0 {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			a, bits = netip.AddrFrom16(b), rng.IntN(129)
		} else {
			a, bits = netip.AddrFrom4([4]byte{byte(rng.UintN(224)), byte(rng.UintN(256)), byte(rng.UintN(256)), byte(rng.UintN(256))}), rng.IntN(33)
		}
		p := netip.PrefixFrom(a, bits).Masked()
		family := uint16(1)
		if a.Is6() {
			family = 2
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{
			Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(bits), Address: p.Addr().AsSlice(),
		})
		if bits >= 16 { // shorter prefixes' addresses are too common to be telling
			tokens = append(tokens, p.Addr().String())
		}
	}
	return m, tokens
}

type seriesCount struct {
	total    int
	families map[string]int  // series by metric name (histogram parts under the family's name)
	values   map[string]bool // every label value seen
}

// scrapeSeries reads /metrics and counts the series, that is the sample
// lines of the text exposition.
func scrapeSeries(t *testing.T, d *daemonProc) seriesCount {
	t.Helper()
	code, body := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	c := seriesCount{families: map[string]int{}, values: map[string]bool{}}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		c.total++
		name, labels, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			name = strings.TrimSuffix(name, suffix)
		}
		c.families[name]++
		labels, _, _ = strings.Cut(labels, "}")
		for kv := range strings.SplitSeq(labels, ",") {
			if _, v, ok := strings.Cut(kv, "="); ok {
				c.values[strings.Trim(v, `"`)] = true
			}
		}
	}
	return c
}
