package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The testdata files are real dnsperf 2.10.0 output against gslbd serving
// configs/bench/static.yaml: a saturation run, a -Q 200 -v run, and a run
// against a port nobody served.
func TestParseDNSPerf(t *testing.T) {
	tests := []struct {
		file    string
		want    stats
		nLat    int
		wantErr bool
	}{
		{
			file: "saturation.txt",
			want: stats{
				Sent: 119242, Completed: 119242, Lost: 0, RunTime: 2.001006, QPS: 59591.025714,
				AvgLatency: 0.001855, MinLatency: 0.000018, MaxLatency: 0.012617, StdDev: 0.001217,
				RequestSize: 38, ResponseSize: 74, Rcodes: map[string]int64{"NOERROR": 119242},
			},
		},
		{
			file: "verbose.txt",
			want: stats{
				Sent: 200, Completed: 200, Lost: 0, RunTime: 1.000269, QPS: 199.946214,
				AvgLatency: 0.000242, MinLatency: 0.000138, MaxLatency: 0.000424, StdDev: 0.000052,
				RequestSize: 38, ResponseSize: 74, Rcodes: map[string]int64{"NOERROR": 200},
			},
			nLat: 200,
		},
		{
			// Nothing answered: dnsperf prints no StdDev line and an empty
			// "Response codes:".
			file: "lost.txt",
			want: stats{Sent: 10, Completed: 0, Lost: 10, RunTime: 1.000304, RequestSize: 38},
		},
		{file: "", wantErr: true}, // empty output: dnsperf failed before its statistics
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var in string
			if tt.file != "" {
				b, err := os.ReadFile(filepath.Join("testdata", tt.file))
				if err != nil {
					t.Fatal(err)
				}
				in = string(b)
			}
			got, err := parseDNSPerf(strings.NewReader(in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseDNSPerf: want an error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDNSPerf: %v", err)
			}
			if len(got.Latencies) != tt.nLat {
				t.Errorf("latencies: got %d, want %d", len(got.Latencies), tt.nLat)
			}
			got.Latencies = nil
			if !statsEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func statsEqual(a, b stats) bool {
	if len(a.Rcodes) != len(b.Rcodes) {
		return false
	}
	for k, v := range a.Rcodes {
		if b.Rcodes[k] != v {
			return false
		}
	}
	a.Rcodes, b.Rcodes = nil, nil
	return a.Sent == b.Sent && a.Completed == b.Completed && a.Lost == b.Lost &&
		a.RunTime == b.RunTime && a.QPS == b.QPS && a.AvgLatency == b.AvgLatency &&
		a.MinLatency == b.MinLatency && a.MaxLatency == b.MaxLatency && a.StdDev == b.StdDev &&
		a.RequestSize == b.RequestSize && a.ResponseSize == b.ResponseSize
}

func TestLatencyPercentiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "verbose.txt"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseDNSPerf(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	p := latencyPercentiles(st.Latencies)
	// Nearest rank over the 200 sorted latencies: the 100th, 180th, 198th
	// and 200th.
	want := percentiles{N: 200, P50: 230, P90: 325, P99: 375, P999: 424, Max: 424}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", p.P50, want.P50}, {"p90", p.P90, want.P90}, {"p99", p.P99, want.P99}, {"p99.9", p.P999, want.P999}, {"max", p.Max, want.Max}} {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s: got %v µs, want %v", c.name, c.got, c.want)
		}
	}
	if p.N != want.N {
		t.Errorf("n: got %d, want %d", p.N, want.N)
	}
	if latencyPercentiles(nil) != nil {
		t.Error("no latencies: want nil")
	}
}

func TestProcTicks(t *testing.T) {
	tests := []struct {
		stat    string
		want    uint64
		wantErr bool
	}{
		// utime 1234 and stime 56 are fields 14 and 15.
		{stat: "4242 (gslbd) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 5 0 93119 3133440 358", want: 1290},
		// A command name with spaces and a ')' must not shift the fields.
		{stat: "4242 (a b) c) S 1 4242 4242 0 -1 4194560 900 0 0 0 7 3 0 0 20 0 5 0 93119 3133440 358", want: 10},
		{stat: "4242 (gslbd) S 1 2", wantErr: true},
		{stat: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		got, err := procTicks([]byte(tt.stat))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("procTicks(%q) = %d, %v; want %d, error %v", tt.stat, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCoreTicks(t *testing.T) {
	stat := "cpu  68082 0 19180 149744 523 0 1355 1733 0 0\n" +
		"cpu0 34322 0 8848 75418 113 0 717 842 0 0\n" +
		"cpu1 33760 0 10331 74325 409 0 637 890 0 0\n" +
		"intr 2308739 0 0\n"
	tests := []struct {
		core        int
		busy, total uint64
		wantErr     bool
	}{
		{core: 0, busy: 34322 + 8848 + 717 + 842, total: 34322 + 8848 + 75418 + 113 + 717 + 842},
		{core: 1, busy: 33760 + 10331 + 637 + 890, total: 33760 + 10331 + 74325 + 409 + 637 + 890},
		{core: 2, wantErr: true},
	}
	for _, tt := range tests {
		busy, total, err := coreTicks([]byte(stat), tt.core)
		if (err != nil) != tt.wantErr || busy != tt.busy || total != tt.total {
			t.Errorf("coreTicks(cpu%d) = %d, %d, %v; want %d, %d, error %v", tt.core, busy, total, err, tt.busy, tt.total, tt.wantErr)
		}
	}
}

func TestParseGeoLookups(t *testing.T) {
	in := `# HELP gslb_geoip_cache_lookups_total Client locations asked for, by result: hit (cached for the client prefix) or miss (read from the database).
# TYPE gslb_geoip_cache_lookups_total counter
gslb_geoip_cache_lookups_total{result="hit"} 1.234567e+06
gslb_geoip_cache_lookups_total{result="miss"} 18
gslb_geoip_database_reloads_total{database="city",result="success"} 1
`
	got, err := parseLookups(strings.NewReader(in), geoLookupsMetric)
	if err != nil || got != (geoLookups{Hit: 1234567, Miss: 18}) {
		t.Errorf("got %+v, %v; want hit 1234567, miss 18", got, err)
	}
	// No series yet (nothing located since start): zero, not an error.
	if got, err := parseLookups(strings.NewReader("gslb_build_info{version=\"dev\"} 1\n"), geoLookupsMetric); err != nil || got != (geoLookups{}) {
		t.Errorf("no series: got %+v, %v", got, err)
	}
	if _, err := parseLookups(strings.NewReader(`gslb_geoip_cache_lookups_total{result="hit"} x`+"\n"), geoLookupsMetric); err == nil {
		t.Error("bad value: want an error")
	}
}
