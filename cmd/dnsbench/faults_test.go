package main

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestFaultResultFromDNSPerf(t *testing.T) {
	raw, err := os.ReadFile("testdata/lost.txt")
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseDNSPerf(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var r faultResult
	r.fromStats(st)
	if r.Sent != 10 || r.Lost != 10 || r.Answered != 0 || r.ServFail != 0 {
		t.Fatalf("lost.txt: %+v, want 10 sent, 10 lost, none answered", r)
	}
	r.fromStats(stats{Sent: 100, Lost: 1, Rcodes: map[string]int64{"NOERROR": 90, "NXDOMAIN": 3, "SERVFAIL": 4, "REFUSED": 2}})
	if r.Answered != 93 || r.ServFail != 4 || r.Other != 2 || r.Lost != 1 {
		t.Fatalf("rcodes: %+v, want answered 93 (NOERROR+NXDOMAIN), SERVFAIL 4, other 2", r)
	}
}

func TestPassRule(t *testing.T) {
	p := passRule{LostMin: 10, LostFrac: 0.001, HeapFrac: 1.5, HeapSlack: 20 << 20}
	base := faultResult{Lost: 5, ServFail: 0}
	ok := faultResult{Name: "x", Sent: 24000, Answered: 24000, HeapBefore: 10 << 20, HeapAfter: 12 << 20}
	for _, tc := range []struct {
		name string
		edit func(*faultResult)
		want string
		why  string // a part of the reason
	}{
		{"clean", func(*faultResult) {}, "PASS", ""},
		// 0.1% of 24,000 is 24, above the minimum of 10: 5 + 24 = 29.
		{"lost at the allowance", func(r *faultResult) { r.Lost = 29 }, "PASS", ""},
		{"lost over the allowance", func(r *faultResult) { r.Lost = 30 }, "FAIL", "lost 30 > baseline 5 + 24"},
		{"small run uses the minimum", func(r *faultResult) { r.Sent, r.Lost = 1000, 16 }, "FAIL", "baseline 5 + 10"},
		{"servfail not expected", func(r *faultResult) { r.ServFail = 1 }, "FAIL", "SERVFAIL"},
		{"servfail expected", func(r *faultResult) { r.ServFail, r.ServFailWhy = 7, "every datacenter down" }, "PASS", ""},
		// 10 MiB before: the limit is max(15 MiB, 30 MiB) = 30 MiB.
		{"heap within the slack", func(r *faultResult) { r.HeapAfter = 30 << 20 }, "PASS", ""},
		{"heap grew", func(r *faultResult) { r.HeapAfter = 31 << 20 }, "FAIL", "heap 10.0MiB → 31.0MiB"},
		{"heap not read", func(r *faultResult) { r.HeapAfter = 0 }, "FAIL", "heap not read"},
		{"gslbd died", func(r *faultResult) { r.Err = "gslbd died: signal: segmentation fault" }, "FAIL", "gslbd died"},
		{"nothing sent", func(r *faultResult) { r.Sent = 0 }, "FAIL", "sent nothing"},
		{"informational is never judged", func(r *faultResult) { r.Info, r.Lost = true, 5000 }, "info", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			got, why := p.judge(base, r)
			if got != tc.want || !strings.Contains(strings.Join(why, "; "), tc.why) {
				t.Fatalf("judge = %s %q, want %s with %q", got, why, tc.want, tc.why)
			}
		})
	}
}

func TestWorstBaseline(t *testing.T) {
	w := worstBaseline([]faultResult{{Lost: 3, ServFail: 0, Sent: 100}, {Lost: 9, ServFail: 2, Sent: 90}, {Lost: 0}})
	if w.Lost != 9 || w.ServFail != 2 {
		t.Fatalf("worst = %+v, want lost 9, SERVFAIL 2", w)
	}
}

func TestPrintFaultsCountsFailures(t *testing.T) {
	var out strings.Builder
	base := []faultResult{{Name: "baseline", Sent: 100, Answered: 100, HeapBefore: 1 << 20, HeapAfter: 1 << 20}}
	rs := []faultResult{
		{Name: "good", Sent: 100, Answered: 100, HeapBefore: 1 << 20, HeapAfter: 1 << 20},
		{Name: "bad", Sent: 100, Answered: 50, Lost: 50, HeapBefore: 1 << 20, HeapAfter: 1 << 20},
		{Name: "info", Info: true, Sent: 100, Lost: 50},
	}
	if n := printFaults(&out, defaultPassRule, base, rs); n != 1 {
		t.Fatalf("printFaults = %d failed, want 1:\n%s", n, out.String())
	}
	for _, want := range []string{"PASS when:", "1 of 2 faults failed", "lost 50 > baseline 0 + 10"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMetricValue(t *testing.T) {
	const exp = `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.2345e+07
go_memstats_heap_inuse_bytes_total 99
go_goroutines 57
gslb_config_reloads_total{result="failure"} 2
gslb_config_reloads_total{result="success"} 3
bad_value NaN
`
	for name, want := range map[string]float64{
		"go_memstats_heap_inuse_bytes":                12345000,
		"go_goroutines":                               57,
		`gslb_config_reloads_total{result="success"}`: 3,
	} {
		if got, err := metricValue(strings.NewReader(exp), name); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, name := range []string{"missing", "bad_value"} {
		if _, err := metricValue(strings.NewReader(exp), name); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// TestMalformedPackets checks that the burst really is malformed or not a
// query: none unpacks into a plain query a server would answer normally.
func TestMalformedPackets(t *testing.T) {
	valid, err := wireQuery(faultSticky, dns.TypeA, netip.MustParsePrefix("1.2.3.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	intact := 0
	for range 2000 {
		b := malformedPacket(rng, valid)
		if bytes.Equal(b, valid) {
			intact++
		}
	}
	// Flipping random bytes can write back the byte that was there; a
	// handful of intact copies in 2,000 is that, not a broken generator.
	if intact > 20 {
		t.Fatalf("%d of 2000 packets are the valid query unchanged", intact)
	}
}

func TestFaultNamesUnique(t *testing.T) {
	seen := map[string]bool{"baseline": true}
	for _, f := range faultList() {
		if seen[f.name] {
			t.Fatalf("fault %q twice (or named baseline)", f.name)
		}
		seen[f.name] = true
	}
}

func TestUDPRcvbufErrors(t *testing.T) {
	const snmp = `Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 1000 2 7 990 5 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 9 0 0 0 0
`
	if n, err := udpRcvbufErrors(strings.NewReader(snmp)); err != nil || n != 5 {
		t.Fatalf("RcvbufErrors = %d, %v; want 5 (Udp's, not UdpLite's)", n, err)
	}
	if _, err := udpRcvbufErrors(strings.NewReader("Ip: a\nIp: 1\n")); err == nil {
		t.Fatal("no Udp lines: want an error")
	}
}
