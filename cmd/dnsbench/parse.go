package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// stats is what one dnsperf run reports in its "Statistics:" block, plus
// the per-query latencies it prints with -v.
type stats struct {
	Sent         int64            `json:"queries_sent"`
	Completed    int64            `json:"queries_completed"`
	Lost         int64            `json:"queries_lost"`
	RunTime      float64          `json:"run_time_s"`
	QPS          float64          `json:"qps"`
	AvgLatency   float64          `json:"avg_latency_s"`
	MinLatency   float64          `json:"min_latency_s"`
	MaxLatency   float64          `json:"max_latency_s"`
	StdDev       float64          `json:"latency_stddev_s"`
	RequestSize  int              `json:"avg_request_bytes"`
	ResponseSize int              `json:"avg_response_bytes"`
	Rcodes       map[string]int64 `json:"rcodes,omitempty"`

	// Latencies holds one entry per answered query, in seconds, and only
	// when dnsperf ran with -v; the JSON carries the percentiles instead.
	Latencies []float64 `json:"-"`
}

// parseDNSPerf reads dnsperf's standard output. It keys on the labels
// rather than on line positions, because dnsperf versions add, drop and
// reorder lines (the StdDev line, for one, is missing when nothing was
// answered), and -v interleaves a line per query.
func parseDNSPerf(r io.Reader) (stats, error) {
	var s stats
	var sawSent, sawQPS bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "> "); ok {
			// -v: "> NOERROR name type 0.000237"; a timed-out ("T") or
			// interrupted ("I") query has no latency worth counting.
			f := strings.Fields(rest)
			if len(f) < 2 || f[0] == "T" || f[0] == "I" {
				continue
			}
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				s.Latencies = append(s.Latencies, v)
			}
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "Queries sent":
			s.Sent, err = firstInt(val)
			sawSent = err == nil
		case "Queries completed":
			s.Completed, err = firstInt(val)
		case "Queries lost":
			s.Lost, err = firstInt(val)
		case "Run time (s)":
			s.RunTime, err = firstFloat(val)
		case "Queries per second":
			s.QPS, err = firstFloat(val)
			sawQPS = err == nil
		case "Average Latency (s)":
			// "0.001855 (min 0.000018, max 0.012617)"
			s.AvgLatency, err = firstFloat(val)
			if _, mm, ok := strings.Cut(val, "("); ok {
				for part := range strings.SplitSeq(strings.TrimSuffix(mm, ")"), ",") {
					f := strings.Fields(part)
					if len(f) != 2 {
						continue
					}
					v, perr := strconv.ParseFloat(f[1], 64)
					if perr != nil {
						continue
					}
					switch f[0] {
					case "min":
						s.MinLatency = v
					case "max":
						s.MaxLatency = v
					}
				}
			}
		case "Latency StdDev (s)":
			s.StdDev, err = firstFloat(val)
		case "Average packet size":
			// "request 38, response 74"
			for part := range strings.SplitSeq(val, ",") {
				f := strings.Fields(part)
				if len(f) != 2 {
					continue
				}
				n, perr := strconv.Atoi(f[1])
				if perr != nil {
					continue
				}
				switch f[0] {
				case "request":
					s.RequestSize = n
				case "response":
					s.ResponseSize = n
				}
			}
		case "Response codes":
			// "NOERROR 119242 (100.00%), NXDOMAIN 3 (0.00%)"; empty when
			// nothing was answered.
			for part := range strings.SplitSeq(val, ",") {
				f := strings.Fields(part)
				if len(f) < 2 {
					continue
				}
				if n, perr := strconv.ParseInt(f[1], 10, 64); perr == nil {
					if s.Rcodes == nil {
						s.Rcodes = map[string]int64{}
					}
					s.Rcodes[f[0]] = n
				}
			}
		}
		if err != nil {
			return s, fmt.Errorf("dnsperf output: %q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("reading dnsperf output: %w", err)
	}
	if !sawSent || !sawQPS {
		return s, errors.New("dnsperf output has no statistics block (no \"Queries sent\" or \"Queries per second\" line)")
	}
	return s, nil
}

func firstInt(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("no number")
	}
	return strconv.ParseInt(f[0], 10, 64)
}

func firstFloat(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("no number")
	}
	return strconv.ParseFloat(f[0], 64)
}

// percentiles summarises per-query latencies, in microseconds.
type percentiles struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
}

func latencyPercentiles(lat []float64) *percentiles {
	if len(lat) == 0 {
		return nil
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	// Nearest rank: every reported value is one a query really had.
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)] * 1e6
	}
	return &percentiles{N: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: s[len(s)-1] * 1e6}
}

// procTicks returns utime+stime, in clock ticks, from the contents of
// /proc/PID/stat.
func procTicks(stat []byte) (uint64, error) {
	ut, st, err := procTimes(stat)
	return ut + st, err
}

// procTimes returns utime and stime, in clock ticks, from the contents of
// /proc/PID/stat. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'.
func procTimes(stat []byte) (user, system uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc stat utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc stat stime: %w", err)
	}
	return ut, st, nil
}

// median is 0 for no values, as JSON has no NaN.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// coreTicks returns the busy and total clock ticks of one core from the
// contents of /proc/stat ("cpuN user nice system idle iowait irq softirq
// steal ..."). Idle and iowait are the only ticks not busy; steal, the
// hypervisor running another guest, counts as busy because the server
// could not run then either.
func coreTicks(stat []byte, core int) (busy, total uint64, err error) {
	prefix := "cpu" + strconv.Itoa(core) + " "
	for line := range strings.SplitSeq(string(stat), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 8 {
			return 0, 0, fmt.Errorf("/proc/stat: %d fields for cpu%d, want at least 8", len(f), core)
		}
		for i, s := range f[:8] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat cpu%d: %w", core, err)
			}
			total += v
			if i != 3 && i != 4 {
				busy += v
			}
		}
		return busy, total, nil
	}
	return 0, 0, fmt.Errorf("/proc/stat: no line for cpu%d", core)
}

// geoLookups counts look-ups in one of gslbd's caches, by result: GeoIP
// locations (by client prefix) or answers (dns.answer_cache_size).
type geoLookups struct {
	Hit  int64 `json:"hit"`
	Miss int64 `json:"miss"`
}

// The look-up counters dnsbench reads from gslbd, each with a result
// label of hit or miss.
const (
	geoLookupsMetric  = "gslb_geoip_cache_lookups_total"
	answerCacheMetric = "gslb_dns_answer_cache_lookups_total"
)

// parseLookups reads metric{result="hit"} and {result="miss"} from a
// Prometheus text exposition. A series not yet exported counts zero.
func parseLookups(r io.Reader, metric string) (geoLookups, error) {
	metric += "{"
	var g geoLookups
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, metric)
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			return g, fmt.Errorf("metrics: %q", line)
		}
		var dst *int64
		switch labels {
		case `result="hit"`:
			dst = &g.Hit
		case `result="miss"`:
			dst = &g.Miss
		default:
			continue
		}
		// Counters may be written as floats, 1.234567e+06; a timestamp
		// may follow.
		v, err := firstFloat(val)
		if err != nil || v < 0 || v > math.MaxInt64/2 {
			return g, fmt.Errorf("metrics: %q: bad value", line)
		}
		*dst = int64(v)
	}
	if err := sc.Err(); err != nil {
		return g, fmt.Errorf("reading metrics: %w", err)
	}
	return g, nil
}
