// Command dnsbench measures the real gslbd daemon with dnsperf, against a
// bare miekg/dns server answering the same name on the same machine in
// the same run.
//
// Each round starts the baseline, then gslbd, on a free loopback port,
// pinned to one core (taskset) while dnsperf runs pinned to another, and
// records dnsperf's figures together with the server's CPU time per
// answered query, read from /proc/PID/stat before and after. Figures are
// reported as ratios of gslbd to the baseline beside it, because the
// machines this runs on are shared and noisy: absolute numbers move from
// run to run, the ratio between two servers measured back to back much
// less.
//
// Scenarios (-scenarios, default "static,geo,geo-wide"): "static" queries
// a static A record, of both the baseline and gslbd; "geo" queries a
// score service of the same gslbd process with an EDNS Client Subnet that
// changes with every query, rotating over 18 networks in several regions
// (dnsperf -B reads pre-built wire-format queries), and is reported as a
// ratio to gslbd's static figure in the same round; gslbd computes each
// network's answer once and replays it from its answer cache after that;
// "geo-wide" rotates over 10,512 networks, more than the answer cache
// holds, so that nearly every answer is located and scored anew;
// "static-ecs", not run by default, is
// the static record with the same rotating ECS, which splits the geo
// scenario's extra cost into EDNS handling and locating and scoring.
//
// When gdnsd is installed (Debian package gdnsd; -gdnsd names the
// binary), it is measured in the static and geo scenarios too, in every
// round, with a configuration derived from -config: the same GeoIP
// database, and plugin_geoip choosing the nearest of the geo service's
// datacenters by their coordinates. Each run also reports the user-space
// share of the server's CPU time (utime against utime+stime).
//
//	go run ./cmd/dnsbench -gslbd bin/gslbd -duration 10s [-rounds 2] [-qps 20000] [-scenarios static,geo] [-gdnsd gdnsd] [-json FILE]
//
// The baseline is this same binary, run as "dnsbench baseline-server
// -listen 127.0.0.1:PORT", so that it is a separate process that can be
// pinned and measured exactly like gslbd.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

const (
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
	// Linux fixes it at 100 for user space on every architecture Go
	// supports, and reading sysconf(_SC_CLK_TCK) would need cgo.
	clockTicks = 100

	readyTimeout = 15 * time.Second // server start-up, generous for a loaded CI machine
	stopGrace    = 5 * time.Second  // SIGTERM to SIGKILL
	startTries   = 3                // a free port can be taken between choosing and binding it
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "baseline-server":
			os.Exit(baselineServer(os.Args[2:]))
		case "failover":
			os.Exit(runFailover(os.Args[2:], os.Stdout, os.Stderr))
		case "sessions":
			os.Exit(runSessions(os.Args[2:], os.Stdout, os.Stderr))
		case "restart":
			os.Exit(runRestart(os.Args[2:], os.Stdout, os.Stderr))
		case "faults":
			os.Exit(runFaults(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	gslbd       string
	config      string
	name        string
	geoName     string
	answer      string
	scenarios   string
	scens       []string // -scenarios, parsed
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	threads     int
	clients     int
	outstanding int
	qps         int
	jsonFile    string
	pin         bool
	serverCPU   int
	clientCPU   int
	dnsperf     string
	gdnsd       string
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("dnsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gslbd, "gslbd", "bin/gslbd", "the gslbd binary to measure (make build writes bin/gslbd)")
	fs.StringVar(&o.config, "config", "configs/bench/geo.yaml", "the configuration gslbd serves; its listen addresses are overridden")
	fs.StringVar(&o.name, "name", "static.bench.example.", "the name queried (type A) in the static scenarios; a static record in -config")
	fs.StringVar(&o.geoName, "geo-name", "geo.bench.example.", "the name queried (type A) in the geo scenario; a score service in -config")
	fs.StringVar(&o.scenarios, "scenarios", "static,geo,geo-wide", "comma-separated scenarios to run: static, geo, geo-wide, static-ecs")
	fs.StringVar(&o.answer, "answer", "192.0.2.1", "the address the baseline answers for -name; must match -config")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured dnsperf run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured dnsperf run before each scenario's first measurement on each server (0: none)")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds, each measuring the baseline then gslbd (every scenario, in alternating order)")
	fs.IntVar(&o.threads, "T", 2, "dnsperf -T: client threads")
	fs.IntVar(&o.clients, "c", 8, "dnsperf -c: clients (source ports)")
	fs.IntVar(&o.outstanding, "q", 128, "dnsperf -q: queries outstanding")
	fs.IntVar(&o.qps, "qps", 0, "also run at this fixed offered rate (dnsperf -Q), with latency percentiles; 0: saturation only")
	fs.StringVar(&o.jsonFile, "json", "", "also write the results to this file as JSON")
	fs.BoolVar(&o.pin, "pin", true, "pin the server and dnsperf to different cores with taskset")
	fs.IntVar(&o.serverCPU, "server-cpu", 0, "the core the server is pinned to")
	fs.IntVar(&o.clientCPU, "client-cpu", 1, "the core dnsperf is pinned to")
	fs.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "the dnsperf binary")
	fs.StringVar(&o.gdnsd, "gdnsd", "gdnsd", "the gdnsd binary measured beside gslbd when installed (Debian package gdnsd); empty: none")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnsbench: unexpected arguments: %q\n", fs.Args())
		return exitUsage
	}
	if msg := o.check(); msg != "" {
		fmt.Fprintf(stderr, "dnsbench: %s\n", msg)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := newBench(o, args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dnsbench: %v\n", err)
		return exitFail
	}
	defer os.RemoveAll(b.tmp)
	rep, err := b.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "dnsbench: %v\n", err)
		return exitFail
	}
	rep.print(stdout)
	if o.jsonFile != "" {
		if err := writeJSONFile(o.jsonFile, rep); err != nil {
			fmt.Fprintf(stderr, "dnsbench: %v\n", err)
			return exitFail
		}
	}
	return exitOK
}

func (o *options) check() string {
	switch {
	case o.duration < time.Second:
		return "-duration must be at least 1s: CPU time is read in 10 ms ticks"
	case o.warmup < 0:
		return "-warmup must not be negative"
	case o.rounds < 1 || o.rounds > 100:
		return "-rounds must be between 1 and 100"
	case o.threads < 1 || o.clients < 1 || o.outstanding < 1:
		return "-T, -c and -q must be positive"
	case o.qps < 0:
		return "-qps must not be negative"
	case o.pin && (o.serverCPU < 0 || o.clientCPU < 0 || o.serverCPU == o.clientCPU):
		return "-server-cpu and -client-cpu must be two different cores"
	}
	if a, err := netip.ParseAddr(o.answer); err != nil || !a.Is4() {
		return fmt.Sprintf("-answer %q is not an IPv4 address", o.answer)
	}
	for flag, n := range map[string]*string{"-name": &o.name, "-geo-name": &o.geoName} {
		if _, ok := dns.IsDomainName(*n); !ok {
			return fmt.Sprintf("%s %q is not a domain name", flag, *n)
		}
		*n = dns.Fqdn(*n)
	}
	scens, err := parseScenarios(o.scenarios)
	if err != nil {
		return err.Error()
	}
	o.scens = scens
	return ""
}

// Scenarios: what is queried, of which server.
const (
	scStatic    = "static"     // -name A, no EDNS: the baseline and gslbd
	scGeo       = "geo"        // -geo-name A with a rotating ECS: gslbd's score policy
	scStaticECS = "static-ecs" // -name A with the same rotating ECS: gslbd
	scGeoWide   = "geo-wide"   // -geo-name A with ECS from 10,512 networks: past gslbd's answer cache
)

var allScenarios = []string{scStatic, scGeo, scStaticECS, scGeoWide}

// isGeo reports whether a scenario asks the geo name, whose every
// computed answer locates its client.
func isGeo(scen string) bool { return scen == scGeo || scen == scGeoWide }

// checkedQueries bounds how many of a scenario's queries are checked
// before it is measured; the wide scenario's 10,512 are sampled.
const checkedQueries = 64

func parseScenarios(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			continue
		case !slices.Contains(allScenarios, f):
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (have %s)", f, strings.Join(allScenarios, ", "))
		case slices.Contains(out, f):
			return nil, fmt.Errorf("-scenarios: %q given twice", f)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("-scenarios: none given")
	}
	return out, nil
}

// bench holds what every run shares.
type bench struct {
	o        options
	args     []string
	log      io.Writer
	tmp      string
	scen     map[string]*scenario
	self     string
	pinned   bool
	pinNote  string
	dnsperfV string
	// gdnsd, when installed, is measured in the static and geo scenarios
	// with a configuration derived from -config.
	gdnsdPath string
	gdnsd     *gdnsdSetup
	gdnsdNote string
}

func newBench(o options, args []string, log io.Writer) (*bench, error) {
	b := &bench{o: o, args: args, log: log}
	p, err := exec.LookPath(o.dnsperf)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install the Debian package dnsperf (apt-get install dnsperf)", o.dnsperf)
	}
	b.o.dnsperf = p
	b.dnsperfV = dnsperfVersion(p)
	if fi, err := os.Stat(o.gslbd); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("gslbd binary %s not found: run make build", o.gslbd)
	}
	if _, err := os.Stat(o.config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if b.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("finding this binary to run the baseline: %w", err)
	}
	switch p, lerr := exec.LookPath(o.gdnsd); {
	case o.gdnsd == "":
		b.gdnsdNote = "gdnsd not measured (-gdnsd empty)"
	case lerr != nil:
		b.gdnsdNote = fmt.Sprintf("gdnsd not measured: %s not found (Debian package gdnsd)", o.gdnsd)
	default:
		if b.gdnsd, err = newGdnsdSetup(o.config, o.name, o.answer, o.geoName); err != nil {
			return nil, fmt.Errorf("gdnsd: %w", err)
		}
		b.gdnsdPath = p
		b.gdnsdNote = "gdnsd " + gdnsdVersion(p) + " measured beside gslbd: plugin_geoip, nearest datacenter by coordinates"
	}

	// Pinning needs two cores this process may use; runtime.NumCPU counts
	// those in the affinity mask, not the machine's.
	switch _, terr := exec.LookPath("taskset"); {
	case !o.pin:
		b.pinNote = "pinning off (-pin=false): server and dnsperf share the cores"
	case runtime.NumCPU() < 2:
		b.pinNote = fmt.Sprintf("pinning skipped: %d core available, need 2; server and dnsperf share it", runtime.NumCPU())
	case terr != nil:
		b.pinNote = "pinning skipped: taskset not found (Debian package util-linux)"
	default:
		b.pinned = true
		b.pinNote = fmt.Sprintf("server pinned to core %d, dnsperf to core %d (taskset)", o.serverCPU, o.clientCPU)
	}

	if b.tmp, err = os.MkdirTemp("", "dnsbench-"); err != nil {
		return nil, err
	}
	if b.scen, err = writeScenarios(b.tmp, b.o.name, b.o.geoName); err != nil {
		os.RemoveAll(b.tmp)
		return nil, err
	}
	return b, nil
}

// scenario is what dnsperf sends in one scenario.
type scenario struct {
	name   string
	qname  string
	file   string // dnsperf -d
	binary bool   // dnsperf -B: file holds wire-format queries
	nets   []ecsNetwork
	// listed: the answers to each network go in the report (not for
	// geo-wide's thousands)
	listed bool
}

// writeScenarios writes every scenario's dnsperf input into dir: the
// static one as dnsperf text ("name A"), the ECS ones as wire-format
// queries, one per network of ecsNetworks, since dnsperf's -E sets one
// option for every query and its text format has no per-query options.
func writeScenarios(dir, name, geoName string) (map[string]*scenario, error) {
	sc := map[string]*scenario{
		scStatic:    {name: scStatic, qname: name, file: filepath.Join(dir, "static.txt")},
		scGeo:       {name: scGeo, qname: geoName, file: filepath.Join(dir, "geo.bin"), binary: true, nets: ecsNetworks, listed: true},
		scStaticECS: {name: scStaticECS, qname: name, file: filepath.Join(dir, "static-ecs.bin"), binary: true, nets: ecsNetworks, listed: true},
		scGeoWide:   {name: scGeoWide, qname: geoName, file: filepath.Join(dir, "geo-wide.bin"), binary: true, nets: wideNetworks()},
	}
	for _, s := range sc {
		var err error
		if s.binary {
			err = writeWireFile(s.file, s.qname, s.nets)
		} else {
			err = os.WriteFile(s.file, []byte(strings.TrimSuffix(s.qname, ".")+" A\n"), 0o644)
		}
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

func writeWireFile(path, name string, nets []ecsNetwork) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeWireQueries(f, name, dns.TypeA, nets); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// gdnsdVersion is the version gdnsd's usage message names.
func gdnsdVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "-h").CombinedOutput()
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "gdnsd version "); ok {
			return v
		}
	}
	return "(version unknown)"
}

func dnsperfVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "-h").CombinedOutput()
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version "); ok {
			return v
		}
	}
	return "unknown"
}

func (b *bench) run(ctx context.Context) (*report, error) {
	host, _ := os.Hostname()
	rep := &report{
		Date: time.Now().UTC().Format(time.RFC3339), Host: host, CPUs: runtime.NumCPU(),
		Go: runtime.Version(), DNSPerf: b.dnsperfV, Args: b.args, Pinned: b.pinned, PinNote: b.pinNote,
		Settings: settings{
			Name: b.o.name, Config: b.o.config, Scenarios: b.o.scens,
			Duration: b.o.duration.Seconds(), Warmup: b.o.warmup.Seconds(),
			Rounds: b.o.rounds, Threads: b.o.threads, Clients: b.o.clients, Outstanding: b.o.outstanding, QPS: b.o.qps,
		},
	}
	if slices.ContainsFunc(b.o.scens, isGeo) {
		rep.Settings.GeoName = b.o.geoName
	}
	if slices.Contains(b.o.scens, scGeoWide) {
		rep.Settings.WideNetworks = len(b.scen[scGeoWide].nets)
	}
	if slices.Contains(b.o.scens, scGeo) || slices.Contains(b.o.scens, scStaticECS) {
		rep.Settings.ECSNetworks = ecsNetworks
	}
	fmt.Fprintf(b.log, "dnsbench: %s\n", b.pinNote)
	fmt.Fprintf(b.log, "dnsbench: %s\n", b.gdnsdNote)
	rep.GdnsdNote = b.gdnsdNote
	for round := 1; round <= b.o.rounds; round++ {
		// The baseline answers the static scenario only: it has no EDNS,
		// GeoIP or policies.
		type job struct {
			server string
			scens  []string
		}
		var jobs []job
		if slices.Contains(b.o.scens, scStatic) {
			jobs = append(jobs, job{"baseline", []string{scStatic}})
		}
		if gs := gdnsdScenarios(b.o.scens); b.gdnsd != nil && len(gs) > 0 {
			jobs = append(jobs, job{"gdnsd", scenarioOrder(gs, round)})
		}
		jobs = append(jobs, job{"gslbd", scenarioOrder(b.o.scens, round)})
		for _, j := range jobs {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted: %w", err)
			}
			res, err := b.measure(ctx, rep, round, j.server, j.scens)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round, j.server, err)
			}
			rep.Runs = append(rep.Runs, res...)
		}
	}
	rep.summarise()
	return rep, nil
}

// scenarioOrder is the order gslbd's scenarios are measured in a round:
// as given in odd rounds, reversed in even ones, so that neither is always
// the one measured first, on a fresh process, or last, on a warmer one.
func scenarioOrder(scens []string, round int) []string {
	out := slices.Clone(scens)
	if round%2 == 0 {
		slices.Reverse(out)
	}
	return out
}

// measure starts one server, checks the ECS scenarios' answers, runs the
// warm-up and the measured dnsperf runs of each scenario against it, and
// stops it. Within a mode the scenarios run back to back, seconds apart.
func (b *bench) measure(ctx context.Context, rep *report, round int, server string, scens []string) (_ []result, err error) {
	p, port, err := b.startServer(ctx, server)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := p.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	for _, name := range scens {
		sc := b.scen[name]
		if !sc.binary {
			continue
		}
		// Not measured: before the warm-up, so the server's CPU time
		// counts none of it.
		answers, err := b.checkECS(ctx, port, sc)
		if err != nil {
			return nil, fmt.Errorf("%s scenario: %w", name, err)
		}
		if round == 1 && sc.listed {
			for i := range answers {
				answers[i].Server = server
			}
			rep.ECSCheck = append(rep.ECSCheck, answers...)
		}
	}
	modes := []int{0}
	if b.o.qps > 0 {
		modes = append(modes, b.o.qps)
	}
	var out []result
	for i, qps := range modes {
		for _, name := range scens {
			sc := b.scen[name]
			if i == 0 && b.o.warmup > 0 {
				fmt.Fprintf(b.log, "dnsbench: round %d/%d: %s %s on port %d: warm-up %s\n", round, b.o.rounds, server, name, port, b.o.warmup)
				if _, _, err := b.dnsperfRun(ctx, port, sc, b.o.warmup, 0, fmt.Sprintf("%d-%s-%s-warmup", round, server, name)); err != nil {
					return nil, fmt.Errorf("%s warm-up: %w", name, err)
				}
			}
			r := result{Round: round, Server: server, Scenario: name, Mode: "saturation", Offered: qps}
			if qps > 0 {
				r.Mode = "fixed"
			}
			fmt.Fprintf(b.log, "dnsbench: round %d/%d: %s %s on port %d: %s %s\n", round, b.o.rounds, server, name, port, r.Mode, b.o.duration)
			// gslbd's GeoIP lookups, read outside the CPU window: they say
			// whether the measured queries were located.
			g0, gerr0 := p.lookups(ctx)
			t0, err := p.cpuTicks()
			if err != nil {
				return nil, err
			}
			u0, uerr0 := p.userTicks()
			cb0, ct0, cerr0 := b.serverCoreTicks()
			w0 := time.Now()
			st, clientCPU, err := b.dnsperfRun(ctx, port, sc, b.o.duration, qps, fmt.Sprintf("%d-%s-%s-%s", round, server, name, r.Mode))
			if err != nil {
				return nil, err
			}
			t1, err := p.cpuTicks()
			if err != nil {
				return nil, err
			}
			if u1, uerr1 := p.userTicks(); uerr0 == nil && uerr1 == nil && t1 > t0 {
				user := 100 * float64(u1-u0) / float64(t1-t0)
				r.UserPct = &user
			}
			wall := time.Since(w0).Seconds()
			cb1, ct1, cerr1 := b.serverCoreTicks()
			if g1, gerr1 := p.lookups(ctx); gerr0 == nil && gerr1 == nil && p.metricsURL != "" {
				r.GeoLookups = &geoLookups{Hit: g1.geo.Hit - g0.geo.Hit, Miss: g1.geo.Miss - g0.geo.Miss}
				r.AnswerCache = &geoLookups{Hit: g1.answers.Hit - g0.answers.Hit, Miss: g1.answers.Miss - g0.answers.Miss}
			} else if p.metricsURL != "" {
				fmt.Fprintf(b.log, "dnsbench: round %d: %s %s: reading look-up counters from /metrics: %v %v\n", round, server, name, gerr0, gerr1)
			}
			if b.pinned && cerr0 == nil && cerr1 == nil && ct1 > ct0 {
				other := 100 * (float64(cb1-cb0) - float64(t1-t0)) / float64(ct1-ct0)
				other = max(other, 0) // the two files are read a moment apart
				r.OtherPct = &other
			}
			r.DNSPerf = st
			r.CPUSec = float64(t1-t0) / clockTicks
			if st.Completed > 0 {
				r.CPUPerQ = r.CPUSec * 1e6 / float64(st.Completed)
			}
			r.ServerPct = 100 * r.CPUSec / wall
			r.ClientPct = 100 * clientCPU / wall
			r.Latency = latencyPercentiles(st.Latencies)
			out = append(out, r)
		}
	}
	return out, nil
}

// ecsAnswer is what gslbd answered one query of an ECS scenario, checked
// before the scenario is measured.
type ecsAnswer struct {
	Server   string       `json:"server"`
	Scenario string       `json:"scenario"`
	Network  netip.Prefix `json:"network"`
	Place    string       `json:"place"`
	Answer   []string     `json:"answer"`
	Scope    int          `json:"ecs_scope"`
}

// checkECS sends each query of an ECS scenario's dnsperf input, the very
// bytes dnsperf will send, and checks the answers: NOERROR with A records
// and the query's subnet echoed; in the geo scenario, answers that differ
// with the client's region (at least two different ones), so that the
// measured path is the one that locates the client; in the static-ecs one,
// the static address every time.
func (b *bench) checkECS(ctx context.Context, port int, sc *scenario) ([]ecsAnswer, error) {
	f, err := os.Open(sc.file)
	if err != nil {
		return nil, err
	}
	msgs, err := readWireQueries(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sc.file, err)
	}
	if len(msgs) != len(sc.nets) {
		return nil, fmt.Errorf("%s: %d queries, want %d", sc.file, len(msgs), len(sc.nets))
	}
	if len(msgs) > checkedQueries {
		// Evenly spread, so that every region is among them.
		step := len(msgs) / checkedQueries
		var sample [][]byte
		var nets []ecsNetwork
		for i := 0; i < len(msgs) && len(sample) < checkedQueries; i += step {
			sample, nets = append(sample, msgs[i]), append(nets, sc.nets[i])
		}
		msgs, sc = sample, &scenario{name: sc.name, qname: sc.qname, file: sc.file, binary: sc.binary, nets: nets, listed: sc.listed}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dc := &dns.Client{Net: "udp", Timeout: time.Second}
	distinct := map[string]bool{}
	var out []ecsAnswer
	for i, wire := range msgs {
		q := new(dns.Msg)
		if err := q.Unpack(wire); err != nil {
			return nil, fmt.Errorf("query %d: %w", i+1, err)
		}
		q.Id = dns.Id()
		var r *dns.Msg
		for range 3 { // loopback UDP: a lost datagram is rare, not fatal
			if r, _, err = dc.ExchangeContext(ctx, q, addr); err == nil || ctx.Err() != nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s A with ECS %s: %w", sc.qname, sc.nets[i].Prefix, err)
		}
		a := ecsAnswer{Scenario: sc.name, Network: sc.nets[i].Prefix, Place: sc.nets[i].Place, Answer: []string{}}
		for _, rr := range r.Answer {
			if rr, ok := rr.(*dns.A); ok {
				a.Answer = append(a.Answer, rr.A.String())
			}
		}
		slices.Sort(a.Answer)
		switch e := querySubnet(r); {
		case r.Rcode != dns.RcodeSuccess || len(a.Answer) == 0:
			return nil, fmt.Errorf("%s A with ECS %s: rcode %s, %d A records: want NOERROR with an address (does -config serve it?)",
				sc.qname, a.Network, dns.RcodeToString[r.Rcode], len(a.Answer))
		case e == nil:
			return nil, fmt.Errorf("%s A with ECS %s: no ECS option in the response", sc.qname, a.Network)
		default:
			if p, err := subnetPrefix(e); err != nil || p != a.Network {
				return nil, fmt.Errorf("%s A with ECS %s: response echoed ECS %v/%d", sc.qname, a.Network, e.Address, e.SourceNetmask)
			}
			a.Scope = int(e.SourceScope)
		}
		if sc.name == scStaticECS && (len(a.Answer) != 1 || a.Answer[0] != b.o.answer) {
			return nil, fmt.Errorf("%s A with ECS %s: answered %v, want %s", sc.qname, a.Network, a.Answer, b.o.answer)
		}
		distinct[strings.Join(a.Answer, " ")] = true
		out = append(out, a)
	}
	if isGeo(sc.name) && len(distinct) < 2 {
		return nil, fmt.Errorf("%s A: the same answer for clients in every region (%v): -geo-name must be a score service in -config, with a GeoIP database",
			sc.qname, out[0].Answer)
	}
	return out, nil
}

// startServer starts the named server on fresh loopback ports and waits
// until it answers the benchmark's query correctly.
func (b *bench) startServer(ctx context.Context, server string) (*proc, int, error) {
	var lastErr error
	for range startTries {
		port, err := freeDNSPort()
		if err != nil {
			return nil, 0, err
		}
		dnsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var argv []string
		var readyURL string
		switch server {
		case "baseline":
			argv = []string{b.self, "baseline-server", "-listen", dnsAddr, "-name", b.o.name, "-answer", b.o.answer}
		case "gslbd":
			httpPort, err := freeTCPPort()
			if err != nil {
				return nil, 0, err
			}
			httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
			argv = []string{b.o.gslbd, "serve", "--config", b.o.config,
				"--set", "dns.listen=" + dnsAddr, "--set", "http.listen=" + httpAddr, "--log.level", "warn"}
			readyURL = "http://" + httpAddr + "/readyz"
		case "gdnsd":
			dir := filepath.Join(b.tmp, fmt.Sprintf("gdnsd-%d", port))
			if err := b.gdnsd.write(dir, dnsAddr); err != nil {
				return nil, 0, err
			}
			argv = []string{b.gdnsdPath, "-c", dir, "start"}
		}
		p, err := b.startProc(server, argv)
		if err != nil {
			return nil, 0, err
		}
		if readyURL != "" {
			p.metricsURL = strings.TrimSuffix(readyURL, "/readyz") + "/metrics"
		}
		if err = p.waitReady(ctx, readyURL, dnsAddr, b.o.name, b.o.answer); err == nil {
			return p, port, nil
		}
		_ = p.stop()
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, 0, lastErr
}

// freeDNSPort finds a port free for both UDP and TCP on 127.0.0.1, as
// gslbd binds both. The kernel picks the TCP one; UDP is then tried on it.
func freeDNSPort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, errors.New("no loopback port free for both UDP and TCP in 20 tries")
}

func freeTCPPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// pinArgv prefixes argv with taskset. taskset execs the command, so the
// PID we get is the server's (or dnsperf's) own.
func (b *bench) pinArgv(core int, argv []string) []string {
	if !b.pinned {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(core)}, argv...)
}

// proc is a server process this program started; it is stopped by its
// PID and nothing else.
type proc struct {
	name       string
	cmd        *exec.Cmd
	done       chan struct{}
	err        error // Wait's result, once done is closed
	out        *tail
	metricsURL string // gslbd's /metrics; empty for the baseline
}

func (b *bench) startProc(name string, argv []string) (*proc, error) {
	argv = b.pinArgv(b.o.serverCPU, argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = serverEnv()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), out: &tail{max: 8 << 10}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// If dnsbench dies without stopping it, the kernel kills the server
	// rather than leaving it holding a port and a core.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// serverEnv drops GSLBD_* variables, which override configuration keys:
// a stray GSLBD_LOG_LEVEL=debug in the caller's shell would otherwise
// change what is measured.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GSLBD_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.out.String())
	default:
		return nil
	}
}

// waitReady polls, within readyTimeout: gslbd's /readyz when readyURL is
// set, then the query itself, which must be answered with the expected
// address so that both servers are known to give the same answer.
func (p *proc) waitReady(ctx context.Context, readyURL, dnsAddr, name, answer string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	dc := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	httpOK := readyURL == ""
	const every = 25 * time.Millisecond
	last := errors.New("no attempt")
	for range readyTimeout / every {
		if err := p.exited(); err != nil {
			return err
		}
		if !httpOK {
			last = getOK(ctx, hc, readyURL)
			httpOK = last == nil
		}
		if httpOK {
			var r *dns.Msg
			r, _, last = dc.ExchangeContext(ctx, q, dnsAddr)
			if last == nil {
				return checkAnswer(r, answer)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s: %v; output: %s", p.name, readyTimeout, last, p.out.String())
		case <-time.After(every):
		}
	}
	return fmt.Errorf("%s not ready after %d attempts: %v; output: %s", p.name, readyTimeout/every, last, p.out.String())
}

// serverLookups are the look-up counters a run reads from gslbd.
type serverLookups struct {
	geo     geoLookups // gslb_geoip_cache_lookups_total
	answers geoLookups // gslb_dns_answer_cache_lookups_total
}

// lookups reads gslbd's look-up counters from /metrics; zero for the
// other servers, which have none.
func (p *proc) lookups(ctx context.Context) (serverLookups, error) {
	if p.metricsURL == "" {
		return serverLookups{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	if err != nil {
		return serverLookups{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return serverLookups{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverLookups{}, fmt.Errorf("%s: %s", p.metricsURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return serverLookups{}, err
	}
	var l serverLookups
	if l.geo, err = parseLookups(bytes.NewReader(body), geoLookupsMetric); err != nil {
		return l, err
	}
	l.answers, err = parseLookups(bytes.NewReader(body), answerCacheMetric)
	return l, err
}

func getOK(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func checkAnswer(r *dns.Msg, want string) error {
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return fmt.Errorf("expected one A record, got rcode %s and %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok || a.A.String() != want {
		return fmt.Errorf("expected A %s, got %s: -answer must match the record in -config", want, r.Answer[0])
	}
	return nil
}

func (b *bench) serverCoreTicks() (busy, total uint64, err error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return coreTicks(stat, b.o.serverCPU)
}

func (p *proc) cpuTicks() (uint64, error) {
	if err := p.exited(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return procTicks(b)
}

// userTicks is the user-space part of cpuTicks: the share of the server's
// time spent in its own code rather than in the kernel's.
func (p *proc) userTicks() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	user, _, err := procTimes(b)
	return user, err
}

// stop sends SIGTERM, then SIGKILL after stopGrace. os.Process signals
// only the process it started, never a later one that reused the PID.
func (p *proc) stop() error {
	if err := p.exited(); err != nil {
		return err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(stopGrace):
	}
	return fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM; killed", p.name, p.cmd.Process.Pid, stopGrace)
}

// dnsperfRun runs dnsperf for d against port with the scenario's input,
// at most qps queries per second when qps > 0, and returns its statistics
// and its own CPU time.
// Output goes to files and is parsed afterwards, so that this process
// does no work while the measurement runs.
func (b *bench) dnsperfRun(ctx context.Context, port int, sc *scenario, d time.Duration, qps int, tag string) (stats, float64, error) {
	argv := []string{b.o.dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", sc.file,
		"-l", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		"-T", strconv.Itoa(b.o.threads), "-c", strconv.Itoa(b.o.clients), "-q", strconv.Itoa(b.o.outstanding)}
	if sc.binary {
		// Wire-format input: each query its own ECS. dnsperf overwrites
		// only the ID.
		argv = append(argv, "-B")
	}
	if qps > 0 {
		// -v prints each query's latency, from which the percentiles come.
		// Only at a fixed rate: at saturation it would slow the client,
		// and latency there is queueing delay (outstanding / QPS).
		argv = append(argv, "-Q", strconv.Itoa(qps), "-v")
	}
	argv = b.pinArgv(b.o.clientCPU, argv)
	outPath := filepath.Join(b.tmp, tag+".out")
	outF, err := os.Create(outPath)
	if err != nil {
		return stats{}, 0, err
	}
	defer outF.Close()
	errBuf := &tail{max: 4 << 10}
	// dnsperf stops itself after d; the bound covers its query timeout
	// (5 s) and a stalled machine.
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = outF, errBuf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		switch ctx.Err() {
		case context.Canceled:
			return stats{}, 0, errors.New("interrupted")
		case context.DeadlineExceeded:
			return stats{}, 0, fmt.Errorf("dnsperf still running %s after its -l %s; stopped", d+30*time.Second, d)
		}
		return stats{}, 0, fmt.Errorf("dnsperf: %w: %s", err, errBuf.String())
	}
	var cpu float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if _, err := outF.Seek(0, io.SeekStart); err != nil {
		return stats{}, 0, err
	}
	st, err := parseDNSPerf(outF)
	if err != nil {
		// The temporary directory goes when dnsbench exits: quote the end
		// of the output instead of naming the file.
		out, _ := os.ReadFile(outPath)
		t := &tail{max: 2 << 10}
		t.Write(out)
		return stats{}, 0, fmt.Errorf("%w; dnsperf said: %s %s", err, t.String(), errBuf.String())
	}
	return st, cpu, nil
}

// tail keeps the last max bytes written to it, for error messages.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return "(no output)"
	}
	return s
}

// baselineServer is the reference: a stock miekg/dns server answering one
// A record from a map, with none of gslbd's work (snapshot, metrics, EDNS
// handling). It serves UDP and TCP, as gslbd does, until SIGTERM.
func baselineServer(args []string) int {
	fs := flag.NewFlagSet("dnsbench baseline-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5300", "address:port to serve on")
	name := fs.String("name", "static.bench.example.", "the name answered")
	answer := fs.String("answer", "192.0.2.1", "its A record")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	rr, err := dns.NewRR(fmt.Sprintf("%s 300 IN A %s", dns.Fqdn(*name), *answer))
	if err != nil {
		fmt.Fprintf(os.Stderr, "dnsbench baseline-server: %v\n", err)
		return exitUsage
	}
	type key struct {
		name  string
		qtype uint16
	}
	records := map[key]dns.RR{{strings.ToLower(rr.Header().Name), dns.TypeA}: rr}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			if rr, ok := records[key{strings.ToLower(q.Name), q.Qtype}]; ok {
				m.Answer = append(m.Answer, rr)
			} else {
				m.Rcode = dns.RcodeNameError
			}
		}
		_ = w.WriteMsg(m)
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	servers := []*dns.Server{
		{Addr: *listen, Net: "udp", Handler: handler},
		{Addr: *listen, Net: "tcp", Handler: handler},
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.ListenAndServe() }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "dnsbench baseline-server: %v\n", err)
		return exitFail
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(sctx)
	}
	return exitOK
}
