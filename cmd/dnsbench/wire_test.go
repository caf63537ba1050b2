package main

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The file dnsperf -B reads: every query unpacks, asks the name, and
// carries exactly its network's ECS, as dnsperf -E would send it.
func TestWriteWireQueries(t *testing.T) {
	var buf bytes.Buffer
	if err := writeWireQueries(&buf, "geo.bench.example", dns.TypeA, ecsNetworks); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()

	// The framing by hand: a two-byte big-endian length, then that many
	// bytes, to the end of the file.
	var frames [][]byte
	for rest := raw; len(rest) > 0; {
		if len(rest) < 2 {
			t.Fatalf("%d stray bytes at the end", len(rest))
		}
		n := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+n {
			t.Fatalf("frame %d: length %d, only %d bytes left", len(frames)+1, n, len(rest)-2)
		}
		frames = append(frames, rest[2:2+n])
		rest = rest[2+n:]
	}
	read, err := readWireQueries(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != len(ecsNetworks) || len(read) != len(ecsNetworks) {
		t.Fatalf("got %d frames (readWireQueries: %d), want %d", len(frames), len(read), len(ecsNetworks))
	}

	for i, n := range ecsNetworks {
		if !bytes.Equal(frames[i], read[i]) {
			t.Errorf("query %d: readWireQueries disagrees with the framing", i+1)
		}
		m := new(dns.Msg)
		if err := m.Unpack(frames[i]); err != nil {
			t.Fatalf("query %d (%s): Unpack: %v", i+1, n.Prefix, err)
		}
		if m.Response || m.Opcode != dns.OpcodeQuery || !m.RecursionDesired || m.Id != 0 {
			t.Errorf("query %d: header %+v: want a query, RD set and ID 0, as dnsperf's text mode", i+1, m.MsgHdr)
		}
		if len(m.Question) != 1 || m.Question[0] != (dns.Question{Name: "geo.bench.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}) {
			t.Errorf("query %d: question %v", i+1, m.Question)
		}
		if len(m.Answer)+len(m.Ns) != 0 || len(m.Extra) != 1 {
			t.Errorf("query %d: %d answer, %d authority, %d additional records; want only the OPT", i+1, len(m.Answer), len(m.Ns), len(m.Extra))
		}
		opt := m.IsEdns0()
		if opt == nil {
			t.Fatalf("query %d: no OPT record", i+1)
		}
		if opt.UDPSize() != ednsUDPSize || opt.Version() != 0 || opt.Do() || len(opt.Option) != 1 {
			t.Errorf("query %d: OPT %s: want UDP %d, version 0, no DO, one option", i+1, opt, ednsUDPSize)
		}
		e := querySubnet(m)
		if e == nil {
			t.Fatalf("query %d: no ECS option", i+1)
		}
		wantFamily := uint16(1)
		if n.Prefix.Addr().Is6() {
			wantFamily = 2
		}
		got, err := subnetPrefix(e)
		if err != nil || got != n.Prefix || e.Family != wantFamily || e.SourceScope != 0 {
			t.Errorf("query %d: ECS family %d %v/%d scope %d (%v, %v); want family %d %s scope 0",
				i+1, e.Family, e.Address, e.SourceNetmask, e.SourceScope, got, err, wantFamily, n.Prefix)
		}
		// RFC 7871 section 6: the address is truncated to the prefix's
		// whole bytes; a /24 sends 3, a /56 sends 7.
		wantLen := (n.Prefix.Bits() + 7) / 8
		if optLen := binary.BigEndian.Uint16(frames[i][len(frames[i])-2-wantLen-4:]); int(optLen) != 4+wantLen {
			t.Errorf("query %d: ECS option length %d, want %d", i+1, optLen, 4+wantLen)
		}
	}
}

// The networks rotated over: at least ten, all different, none with host
// bits set, in more than three regions, and consecutive queries never
// from the same place.
func TestECSNetworks(t *testing.T) {
	if len(ecsNetworks) < 10 {
		t.Errorf("%d networks, want at least 10", len(ecsNetworks))
	}
	seen := map[netip.Prefix]bool{}
	for i, n := range ecsNetworks {
		if seen[n.Prefix] {
			t.Errorf("%s twice", n.Prefix)
		}
		seen[n.Prefix] = true
		if n.Prefix != n.Prefix.Masked() {
			t.Errorf("%s has host bits set", n.Prefix)
		}
		if prev := ecsNetworks[(i+len(ecsNetworks)-1)%len(ecsNetworks)]; strings.Fields(prev.Place)[0] == strings.Fields(n.Place)[0] {
			t.Errorf("%s follows %s: the same place twice in a row", n.Place, prev.Place)
		}
	}
}

func TestWireQueryRejectsHostBits(t *testing.T) {
	if _, err := wireQuery("geo.bench.example.", dns.TypeA, netip.MustParsePrefix("89.160.20.1/24")); err == nil {
		t.Error("89.160.20.1/24: want an error")
	}
	if err := writeWireQueries(&bytes.Buffer{}, "geo.bench.example.", dns.TypeA, nil); err == nil {
		t.Error("no networks: want an error")
	}
}

func TestReadWireQueriesTruncated(t *testing.T) {
	var buf bytes.Buffer
	if err := writeWireQueries(&buf, "geo.bench.example.", dns.TypeA, ecsNetworks[:2]); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 5} {
		if _, err := readWireQueries(bytes.NewReader(buf.Bytes()[:buf.Len()-cut])); err == nil {
			t.Errorf("cut %d bytes: want an error", cut)
		}
	}
}

func TestParseScenarios(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "static,geo", want: []string{"static", "geo"}},
		{in: " geo , static-ecs ", want: []string{"geo", "static-ecs"}},
		{in: "static", want: []string{"static"}},
		{in: "", wantErr: true},
		{in: "static,static", wantErr: true},
		{in: "static,dynamic", wantErr: true},
	} {
		got, err := parseScenarios(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("parseScenarios(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	in := []string{"static", "geo"}
	if got := scenarioOrder(in, 1); !slices.Equal(got, []string{"static", "geo"}) {
		t.Errorf("round 1: %q", got)
	}
	if got := scenarioOrder(in, 2); !slices.Equal(got, []string{"geo", "static"}) || !slices.Equal(in, []string{"static", "geo"}) {
		t.Errorf("round 2: %q (input now %q)", got, in)
	}
}

// summarise pairs runs within each round: geo/static from gslbd's two
// scenarios, gslbd/baseline from the static ones.
func TestSummariseComparisons(t *testing.T) {
	pct := func(v float64) *float64 { return &v }
	run := func(round int, server, scen string, qps, cpu, other float64) result {
		return result{Round: round, Server: server, Scenario: scen, Mode: "saturation", CPUPerQ: cpu, ServerPct: 99,
			OtherPct: pct(other), DNSPerf: stats{QPS: qps, Completed: 1, Rcodes: map[string]int64{"NOERROR": 1}, ResponseSize: 74}}
	}
	rep := &report{Pinned: true, Settings: settings{Rounds: 2}, Runs: []result{
		run(1, "baseline", "static", 60000, 15, 1), run(1, "gslbd", "static", 50000, 18, 1), run(1, "gslbd", "geo", 40000, 22.5, 20),
		run(2, "baseline", "static", 60000, 16, 1), run(2, "gslbd", "geo", 45000, 20, 1), run(2, "gslbd", "static", 50000, 16, 1),
	}}
	rep.summarise()
	if len(rep.Summary) != 1 {
		t.Fatalf("%d summaries, want 1", len(rep.Summary))
	}
	s := rep.Summary[0]
	var runs []string
	for _, r := range s.Runs {
		runs = append(runs, r.Run)
	}
	if !slices.Equal(runs, []string{"baseline static", "gslbd static", "gslbd geo"}) {
		t.Errorf("runs %q", runs)
	}
	if len(s.Comparisons) != 2 {
		t.Fatalf("%d comparisons, want 2: %+v", len(s.Comparisons), s.Comparisons)
	}
	geo := s.Comparisons[1]
	if geo.Name != "geo/static" || !slices.Equal(geo.CPURatios, []float64{1.25, 1.25}) || geo.CPUAim != 1.25 ||
		!slices.Equal(geo.QuietRounds, []int{2}) || geo.QuietCPURatio != 1.25 {
		t.Errorf("geo/static: %+v", geo)
	}
	base := s.Comparisons[0]
	if base.Name != "gslbd/baseline" || !slices.Equal(base.CPURatios, []float64{1.2, 1}) || base.CPURatio != 1.1 {
		t.Errorf("gslbd/baseline: %+v", base)
	}
}

// TestWideNetworks: every /24 of the wide parents once, more than the
// default answer cache holds, and regions mixed throughout the file.
func TestWideNetworks(t *testing.T) {
	nets := wideNetworks()
	if len(nets) != 10512 {
		t.Fatalf("%d networks, want 10512", len(nets))
	}
	seen := map[netip.Prefix]bool{}
	for i, n := range nets {
		if n.Prefix.Bits() != 24 || seen[n.Prefix] {
			t.Fatalf("network %d: %v is not a new /24", i, n.Prefix)
		}
		seen[n.Prefix] = true
		in := false
		for _, p := range wideParents {
			in = in || (p.Prefix.Contains(n.Prefix.Addr()) && p.Place == n.Place)
		}
		if !in {
			t.Fatalf("network %d: %v (%s) is in none of the parents", i, n.Prefix, n.Place)
		}
	}
	for start := 0; start+200 <= len(nets); start += 2000 {
		places := map[string]bool{}
		for _, n := range nets[start : start+200] {
			places[n.Place] = true
		}
		if len(places) < len(wideParents)-1 {
			t.Errorf("networks %d..%d come from %d places; want nearly all %d", start, start+200, len(places), len(wideParents))
		}
	}
}
