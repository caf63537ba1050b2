package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// report is everything one invocation measured; it is also the JSON.
type report struct {
	Date    string   `json:"date"`
	Host    string   `json:"host"`
	CPUs    int      `json:"cpus"`
	Go      string   `json:"go"`
	DNSPerf string   `json:"dnsperf_version"`
	Args    []string `json:"args"`
	Pinned  bool     `json:"pinned"`
	PinNote string   `json:"pinning"`
	// GdnsdNote says whether and which gdnsd was measured beside gslbd.
	GdnsdNote string    `json:"gdnsd,omitempty"`
	Settings  settings  `json:"settings"`
	Runs      []result  `json:"runs"`
	Summary   []summary `json:"summary"`
	// ECSCheck is what gslbd answered each ECS scenario query in round 1,
	// before measuring.
	ECSCheck []ecsAnswer `json:"ecs_check,omitempty"`
	Warnings []string    `json:"warnings,omitempty"`
}

type settings struct {
	Name        string       `json:"name"`
	GeoName     string       `json:"geo_name,omitempty"`
	Config      string       `json:"config"`
	Scenarios   []string     `json:"scenarios"`
	ECSNetworks []ecsNetwork `json:"ecs_networks,omitempty"`
	// WideNetworks is how many /24s the geo-wide scenario rotates over.
	WideNetworks int     `json:"wide_networks,omitempty"`
	Duration     float64 `json:"duration_s"`
	Warmup       float64 `json:"warmup_s"`
	Rounds       int     `json:"rounds"`
	Threads      int     `json:"dnsperf_threads"`
	Clients      int     `json:"dnsperf_clients"`
	Outstanding  int     `json:"dnsperf_outstanding"`
	QPS          int     `json:"fixed_qps,omitempty"`
}

// result is one measured dnsperf run against one server in one scenario.
type result struct {
	Round     int     `json:"round"`
	Server    string  `json:"server"`   // "baseline" or "gslbd"
	Scenario  string  `json:"scenario"` // "static", "geo" or "static-ecs"
	Mode      string  `json:"mode"`     // "saturation" or "fixed"
	Offered   int     `json:"offered_qps,omitempty"`
	DNSPerf   stats   `json:"dnsperf"`
	CPUSec    float64 `json:"server_cpu_s"`
	CPUPerQ   float64 `json:"server_cpu_us_per_query"`
	ServerPct float64 `json:"server_cpu_percent"`
	ClientPct float64 `json:"client_cpu_percent"`
	// OtherPct is the share of the server's core that was busy but not
	// with the server: other processes on this shared machine, interrupts,
	// hypervisor steal. Only when pinned; it says how noisy the run was.
	OtherPct *float64 `json:"server_core_other_percent,omitempty"`
	// UserPct is the user-space share of the server's CPU time; the rest
	// is the kernel's, mostly its UDP receive and send path.
	UserPct *float64     `json:"server_user_percent,omitempty"`
	Latency *percentiles `json:"latency,omitempty"`
	// GeoLookups is how many clients gslbd located (GeoIP cache hits and
	// misses) during the run, from its /metrics: about one per answer it
	// computed in the geo scenarios, none in the static ones.
	GeoLookups *geoLookups `json:"geoip_lookups,omitempty"`
	// AnswerCache is gslbd's answer cache look-ups: a hit is an answer
	// replayed, neither located nor scored again.
	AnswerCache *geoLookups `json:"answer_cache_lookups,omitempty"`
}

// replayed is how many answers gslbd replayed from its answer cache.
func (r result) replayed() int64 {
	if r.AnswerCache == nil {
		return 0
	}
	return r.AnswerCache.Hit
}

// replayedPerQuery is the share of answered queries replayed, or "-".
func (r result) replayedPerQuery() string {
	if r.AnswerCache == nil || r.DNSPerf.Completed == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(r.AnswerCache.Hit)/float64(r.DNSPerf.Completed))
}

// geoPerQuery is GeoIP lookups per answered query, or "-".
func (r result) geoPerQuery() string {
	if r.GeoLookups == nil || r.DNSPerf.Completed == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(r.GeoLookups.Hit+r.GeoLookups.Miss)/float64(r.DNSPerf.Completed))
}

// label names what was measured: server and scenario, "gslbd geo".
func (r result) label() string { return r.Server + " " + r.Scenario }

// summary is one mode's figures: each server and scenario's medians over
// rounds, and the comparisons between them, as ratios taken within each
// round, where the two ran seconds apart, then their median.
type summary struct {
	Mode             string       `json:"mode"`
	Runs             []runSummary `json:"runs"`
	Comparisons      []comparison `json:"comparisons"`
	ServerSaturation bool         `json:"servers_cpu_bound"`
}

type runSummary struct {
	Run     string  `json:"run"` // result.label
	QPS     float64 `json:"qps_median"`
	CPUPerQ float64 `json:"cpu_us_per_query_median"`
	P99     float64 `json:"p99_us_median,omitempty"`
	Lost    int64   `json:"queries_lost_total"`
	UserPct float64 `json:"user_percent_median,omitempty"`
}

// comparison is Of against To: Of's CPU µs/query and QPS divided by To's,
// round by round.
type comparison struct {
	Name      string    `json:"name"`
	Of        string    `json:"of"`
	To        string    `json:"to"`
	CPURatios []float64 `json:"cpu_per_query_ratio_per_round"`
	QPSRatios []float64 `json:"qps_ratio_per_round"`
	CPURatio  float64   `json:"cpu_per_query_ratio_median"`
	QPSRatio  float64   `json:"qps_ratio_median"`
	// The issues' aims, at saturation only: the CPU ratio at most CPUAim,
	// the QPS ratio at least QPSAim.
	CPUAim float64 `json:"cpu_per_query_ratio_aim,omitempty"`
	QPSAim float64 `json:"qps_ratio_aim,omitempty"`
	// Rounds where neither run's core had over noisyPct% of other work,
	// and the median ratios over those alone.
	QuietRounds   []int   `json:"quiet_rounds"`
	QuietCPURatio float64 `json:"cpu_per_query_ratio_quiet_median,omitempty"`
	QuietQPSRatio float64 `json:"qps_ratio_quiet_median,omitempty"`
}

// comparisons are those summarised, when both sides ran.
var comparisons = []struct {
	name, of, to   string
	cpuAim, qpsAim float64
}{
	// The first issue: gslbd at 90% of the baseline's ceiling, that is
	// 1/0.9 of its cost per query.
	{"gslbd/baseline", "gslbd static", "baseline static", 1 / 0.9, 0.90},
	// The geo-scored path's issue: at most 1.25 times the static path.
	{"geo/static", "gslbd geo", "gslbd static", 1.25, 0},
	{"static-ecs/static", "gslbd static-ecs", "gslbd static", 0, 0},
	{"geo/static-ecs", "gslbd geo", "gslbd static-ecs", 0, 0},
	// The fast path's issue: the geo answer at gdnsd's cost, within 5%.
	{"gslbd/gdnsd geo", "gslbd geo", "gdnsd geo", 1.05, 0},
	{"gslbd/gdnsd static", "gslbd static", "gdnsd static", 0, 0},
	// The geo answer computed for nearly every query: client networks
	// past what the answer cache holds.
	{"gslbd/gdnsd geo-wide", "gslbd geo-wide", "gdnsd geo-wide", 0, 0},
	{"geo-wide/geo", "gslbd geo-wide", "gslbd geo", 0, 0},
}

// noisyPct is how much of the server's core may go to other work before a
// run counts as disturbed.
const noisyPct = 10

func (rep *report) summarise() {
	var noisy []string
	for _, r := range rep.Runs {
		if r.OtherPct != nil && *r.OtherPct > noisyPct {
			noisy = append(noisy, fmt.Sprintf("round %d %s %s %.0f%%", r.Round, r.label(), r.Mode, *r.OtherPct))
		}
		if r.DNSPerf.Lost > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s %s: %d queries lost", r.Round, r.label(), r.Mode, r.DNSPerf.Lost))
		}
		// Every geo answer gslbd computed (not replayed from its answer
		// cache) should have located its client; fewer lookups would mean
		// the measured path was not the geo one.
		if g := r.GeoLookups; isGeo(r.Scenario) && g != nil && float64(g.Hit+g.Miss) < 0.99*float64(r.DNSPerf.Completed-r.replayed()) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s %s: %d GeoIP lookups for %d answered queries, %d of them replayed: not every computed answer located its client",
				r.Round, r.label(), r.Mode, g.Hit+g.Miss, r.DNSPerf.Completed, r.replayed()))
		}
		if ok := r.DNSPerf.Rcodes["NOERROR"]; ok != r.DNSPerf.Completed {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s %s: %d of %d answers were not NOERROR: %v",
				r.Round, r.label(), r.Mode, r.DNSPerf.Completed-ok, r.DNSPerf.Completed, r.DNSPerf.Rcodes))
		}
	}
	if len(noisy) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("noisy runs, where over %d%% of the server's core went to other work: %s",
			noisyPct, strings.Join(noisy, ", ")))
	}
	for _, mode := range []string{"saturation", "fixed"} {
		// byRound[round][label]; labels in the order first measured.
		byRound := map[int]map[string]result{}
		var labels []string
		for _, r := range rep.Runs {
			if r.Mode != mode {
				continue
			}
			if byRound[r.Round] == nil {
				byRound[r.Round] = map[string]result{}
			}
			byRound[r.Round][r.label()] = r
			if !slices.Contains(labels, r.label()) {
				labels = append(labels, r.label())
			}
		}
		if len(byRound) == 0 {
			continue
		}
		slices.SortStableFunc(labels, func(a, b string) int { return labelRank(a) - labelRank(b) })
		s := summary{Mode: mode, ServerSaturation: true}
		for _, l := range labels {
			var q, c, p, u []float64
			var lost int64
			for round := 1; round <= rep.Settings.Rounds; round++ {
				r, ok := byRound[round][l]
				if !ok {
					continue
				}
				q, c = append(q, r.DNSPerf.QPS), append(c, r.CPUPerQ)
				if r.Latency != nil {
					p = append(p, r.Latency.P99)
				}
				if r.UserPct != nil {
					u = append(u, *r.UserPct)
				}
				lost += r.DNSPerf.Lost
				// Below 90% of its core a server had capacity left: dnsperf
				// or other load, not the server, set the QPS.
				if r.ServerPct < 90 {
					s.ServerSaturation = false
				}
			}
			s.Runs = append(s.Runs, runSummary{Run: l, QPS: median(q), CPUPerQ: median(c), P99: median(p), Lost: lost, UserPct: median(u)})
		}
		for _, cd := range comparisons {
			if !slices.Contains(labels, cd.of) || !slices.Contains(labels, cd.to) {
				continue
			}
			cm := comparison{Name: cd.name, Of: cd.of, To: cd.to, QuietRounds: []int{}}
			if mode == "saturation" {
				cm.CPUAim, cm.QPSAim = cd.cpuAim, cd.qpsAim
			}
			var quietQ, quietC []float64
			for round := 1; round <= rep.Settings.Rounds; round++ {
				of, ok1 := byRound[round][cd.of]
				to, ok2 := byRound[round][cd.to]
				if !ok1 || !ok2 {
					continue
				}
				qr, cr := ratio(of.DNSPerf.QPS, to.DNSPerf.QPS), ratio(of.CPUPerQ, to.CPUPerQ)
				cm.QPSRatios, cm.CPURatios = append(cm.QPSRatios, qr), append(cm.CPURatios, cr)
				if quiet(of) && quiet(to) {
					cm.QuietRounds = append(cm.QuietRounds, round)
					quietQ, quietC = append(quietQ, qr), append(quietC, cr)
				}
				// The same answer from both servers is the point of this
				// one; the ECS scenarios' answers are larger by design.
				if cd.name == "gslbd/baseline" && of.DNSPerf.ResponseSize != to.DNSPerf.ResponseSize {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s: responses differ in size (baseline %d bytes, gslbd %d): not like for like",
						round, mode, to.DNSPerf.ResponseSize, of.DNSPerf.ResponseSize))
				}
			}
			cm.QPSRatio, cm.CPURatio = median(cm.QPSRatios), median(cm.CPURatios)
			cm.QuietQPSRatio, cm.QuietCPURatio = median(quietQ), median(quietC)
			s.Comparisons = append(s.Comparisons, cm)
		}
		switch {
		case mode != "saturation":
		case !rep.Pinned:
			rep.Warnings = append(rep.Warnings, "saturation: not pinned, so the servers and dnsperf competed for the same cores; "+
				"the ratios are less trustworthy than pinned ones")
		case !s.ServerSaturation:
			rep.Warnings = append(rep.Warnings, "saturation: a server used under 90% of its core, so dnsperf or other load limited its QPS; "+
				"CPU µs/query is the steadier figure then")
		}
		rep.Summary = append(rep.Summary, s)
	}
}

// labelRank orders the summary: the baseline, gdnsd, then gslbd, each
// server's scenarios as allScenarios lists them.
func labelRank(l string) int {
	server, scen, _ := strings.Cut(l, " ")
	r := slices.Index(allScenarios, scen)
	switch server {
	case "gdnsd":
		r += len(allScenarios)
	case "gslbd":
		r += 2 * len(allScenarios)
	}
	return r
}

// quiet reports whether the run had its core (nearly) to itself. Unpinned
// runs cannot tell, and are never quiet.
func quiet(r result) bool { return r.OtherPct != nil && *r.OtherPct <= noisyPct }

// ratio is a/b, or 0 when b is 0 (JSON has no NaN).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "dnsbench %s: %d CPUs, %s, dnsperf %s, %s\n", rep.Date, rep.CPUs, rep.Go, rep.DNSPerf, rep.PinNote)
	if rep.GdnsdNote != "" {
		fmt.Fprintln(w, rep.GdnsdNote)
	}
	st := rep.Settings
	fmt.Fprintf(w, "scenarios %s; dnsperf -T %d -c %d -q %d; %gs per run after a %gs warm-up; rounds: %d\n",
		strings.Join(st.Scenarios, ","), st.Threads, st.Clients, st.Outstanding, st.Duration, st.Warmup, st.Rounds)
	for _, s := range st.Scenarios {
		switch s {
		case scStatic:
			fmt.Fprintf(w, "  static:     %s A, no EDNS (text input)\n", st.Name)
		case scGeo:
			fmt.Fprintf(w, "  geo:        %s A, ECS rotating over %d networks, one per query (dnsperf -B wire input)\n", st.GeoName, len(st.ECSNetworks))
		case scStaticECS:
			fmt.Fprintf(w, "  static-ecs: %s A, ECS rotating over %d networks, one per query (dnsperf -B wire input)\n", st.Name, len(st.ECSNetworks))
		case scGeoWide:
			fmt.Fprintf(w, "  geo-wide:   %s A, ECS rotating over %d /24 networks, more than gslbd's answer cache holds (dnsperf -B wire input)\n", st.GeoName, st.WideNetworks)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tserver\tscenario\tmode\tQPS\tlost\tavg µs\tp50 µs\tp99 µs\tsrv CPU µs/q\tQPS/core\tresp B\tGeoIP/q\treplayed/q\tsrv CPU%\tuser%\tdnsperf CPU%\tother% srv core\t")
	for _, r := range rep.Runs {
		p50, p99, other, user := "-", "-", "-", "-"
		if r.OtherPct != nil {
			other = fmt.Sprintf("%.0f", *r.OtherPct)
		}
		if r.UserPct != nil {
			user = fmt.Sprintf("%.0f", *r.UserPct)
		}
		if r.Latency != nil {
			p50, p99 = fmt.Sprintf("%.0f", r.Latency.P50), fmt.Sprintf("%.0f", r.Latency.P99)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.0f\t%d\t%.0f\t%s\t%s\t%.2f\t%s\t%d\t%s\t%s\t%.0f\t%s\t%.0f\t%s\t\n",
			r.Round, r.Server, r.Scenario, mode(r), r.DNSPerf.QPS, r.DNSPerf.Lost, r.DNSPerf.AvgLatency*1e6, p50, p99,
			r.CPUPerQ, perCore(r), r.DNSPerf.ResponseSize, r.geoPerQuery(), r.replayedPerQuery(), r.ServerPct, user, r.ClientPct, other)
	}
	tw.Flush()
	fmt.Fprintln(w)
	rep.printECSCheck(w)
	for _, s := range rep.Summary {
		m := s.Mode
		if m == "fixed" {
			m = fmt.Sprintf("fixed %d QPS", st.QPS)
		}
		fmt.Fprintf(w, "%s, medians over rounds:\n", m)
		for _, r := range s.Runs {
			fmt.Fprintf(w, "  %-18s %8.0f QPS  %6.2f CPU µs/query", r.Run, r.QPS, r.CPUPerQ)
			if r.P99 > 0 {
				fmt.Fprintf(w, "  p99 %.0f µs", r.P99)
			}
			if r.UserPct > 0 {
				fmt.Fprintf(w, "  user %.0f%%", r.UserPct)
			}
			fmt.Fprintf(w, "  lost %d\n", r.Lost)
		}
		for _, c := range s.Comparisons {
			fmt.Fprintf(w, "  %s (%s / %s):\n", c.Name, c.Of, c.To)
			fmt.Fprintf(w, "    CPU µs/query ratio: %s per round, median %.2f", fmtRatios(c.CPURatios), c.CPURatio)
			if c.CPUAim > 0 {
				fmt.Fprintf(w, " (aim <= %.2f)", c.CPUAim)
			}
			fmt.Fprintf(w, "\n    QPS ratio:          %s per round, median %.2f", fmtRatios(c.QPSRatios), c.QPSRatio)
			if c.QPSAim > 0 {
				fmt.Fprintf(w, " (aim >= %.2f)", c.QPSAim)
			}
			fmt.Fprintln(w)
			if rep.Pinned {
				if len(c.QuietRounds) == 0 {
					fmt.Fprintf(w, "    quiet rounds (no more than %d%% other work on the server's core in either run): none\n", noisyPct)
				} else {
					fmt.Fprintf(w, "    quiet rounds (no more than %d%% other work on the server's core in either run): %s; median CPU ratio %.2f, QPS ratio %.2f\n",
						noisyPct, fmtInts(c.QuietRounds), c.QuietCPURatio, c.QuietQPSRatio)
				}
			}
		}
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

// printECSCheck shows what the ECS scenarios' queries were answered
// before round 1 was measured: the geo one query by query, the static-ecs
// one in a line, as its answers are all the same.
func (rep *report) printECSCheck(w io.Writer) {
	var geo []ecsAnswer
	static := map[string]int{}
	for _, a := range rep.ECSCheck {
		if a.Scenario == scGeo {
			geo = append(geo, a)
		} else {
			static[fmt.Sprintf("%s, scope /%d", strings.Join(a.Answer, " "), a.Scope)]++
		}
	}
	if len(geo) > 0 {
		fmt.Fprintln(w, "geo scenario, checked before measuring round 1: each query's server, client subnet, answer and ECS scope")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range geo {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t/%d\n", a.Server, a.Network, a.Place, strings.Join(a.Answer, " "), a.Scope)
		}
		tw.Flush()
	}
	if len(static) > 0 {
		var s []string
		for k, n := range static {
			s = append(s, fmt.Sprintf("%d answered %s", n, k))
		}
		slices.Sort(s)
		fmt.Fprintf(w, "static-ecs scenario, checked before measuring round 1: %s\n", strings.Join(s, "; "))
	}
	if len(rep.ECSCheck) > 0 {
		fmt.Fprintln(w)
	}
}

func mode(r result) string {
	if r.Mode == "fixed" {
		return fmt.Sprintf("%d/s", r.Offered)
	}
	return "sat"
}

// perCore is the QPS one core would sustain at the cost per query
// measured at saturation: the server's ceiling, whichever side limited the
// measured QPS. At a fixed rate the cost includes idle wake-ups and says
// nothing about the ceiling.
func perCore(r result) string {
	if r.Mode != "saturation" || r.CPUPerQ == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", 1e6/r.CPUPerQ)
}

func fmtInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " ")
}

func fmtRatios(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}

// writeJSONFile writes a report as indented JSON, for -json.
func writeJSONFile(path string, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}
