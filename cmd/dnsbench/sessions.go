package main

// dnsbench sessions: what client affinity (sticky services) costs per
// query, with sessions off, in memory and in Redis, and what a paused
// Redis does to the answers.
//
//	go run ./cmd/dnsbench sessions -gslbd bin/gslbd [-rounds 3] [-duration 10s] [-prefixes 100000] [-json FILE]
//
// Each round runs gslbd three times, on configs/bench/sessions-off.yaml
// (sticky: false), sessions-memory.yaml (store memory) and
// sessions-redis.yaml (store redis), which differ in nothing else, in
// the order off, memory, redis in odd rounds and reversed in even ones.
// For the Redis variant it first starts a fresh redis-server of its own on
// a free loopback port (no persistence) and points gslbd at it. dnsperf
// (-B, wire format) queries sticky.bench.example. A, each query with an
// EDNS Client Subnet for the next of -prefixes /24s (1.0.0.0/24,
// 1.0.1.0/24, ... in turn; dnsperf loops over the file), more than the
// configurations' sessions.cache_size (10000), so that the local cache
// cannot hide the store. On each fresh gslbd: a few check queries
// (NOERROR, one A record, the ECS echoed, the same answer twice), then
// one unmeasured pass through every prefix (dnsperf -n 1), which places
// every client (sessions created) and fills the GeoIP cache, then the
// measured run at saturation. Around it, outside the CPU window, gslbd's
// /metrics (gslb_session_lookups_total by result,
// gslb_session_redis_roundtrips_total, ...) and Redis's own INFO
// commandstats are read, so that round trips per answered query come
// from both ends. CPU µs per answered query is gslbd's, from
// /proc/PID/stat, as in the main benchmark; redis-server's is reported
// beside it.
//
// With -qps N, each variant is also measured at that fixed rate (dnsperf
// -Q) on the same processes. Each measured run reports the share of
// look-ups that gave the query its session ("with affinity": hit, miss
// or created within the budget, not error or skipped).
//
// Pinning: gslbd on -server-cpu (0), dnsperf on -client-cpu (1), and
// redis-server on -redis-cpu (the client core by default: in production
// Redis runs elsewhere, and on two cores it must share one of them; on
// the client's it takes nothing from gslbd's core), under SCHED_FIFO
// (chrt --fifo 1; -redis-fifo=false: not), so that it answers as soon as
// a request arrives instead of waiting for dnsperf's time slice.
//
// Then -fault-rounds fault runs (-fault): store redis, a fresh
// redis-server and gslbd, the warm-up pass, then dnsperf at saturation
// for -fault-duration (10 s) with -S 1 (its per-second rate); -pause-at
// (3 s) after dnsperf starts, redis-server gets SIGSTOP, -resume-at (7 s)
// SIGCONT. Meanwhile a goroutine reads /metrics every -poll (100 ms):
// gslbd's answers (gslb_dns_responses_total, so a 100 ms answer rate),
// the breaker gauge, the look-up results, and /proc for the share of
// gslbd's core that other work took in each window. Reported: response
// codes (SERVFAIL above all) and lost queries, the rate before, during
// and after the pause, when the breaker opened and closed, and whether
// the rate was back above 80% of the pre-pause rate within a second of
// the breaker opening.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
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
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
)

// The variants measured, by -modes name.
const (
	sessOff    = "off"
	sessMemory = "memory"
	sessRedis  = "redis"
)

var sessAllModes = []string{sessOff, sessMemory, sessRedis}

// sessAim is the sessions issue's aim: each sticky variant at 90% of the
// sessions-off QPS or better.
const sessAim = 0.90

// sessRecoverShare is the fault run's bar: the answer rate back above this
// share of the pre-pause rate within sessRecoverWithin of the breaker
// opening.
const (
	sessRecoverShare  = 0.80
	sessRecoverWithin = 1.0 // seconds
)

type sessOptions struct {
	gslbd       string
	dnsperf     string
	redisServer string
	configs     map[string]string // by mode
	name        string
	prefixes    int
	modes       string
	modeList    []string
	duration    time.Duration
	passLimit   time.Duration
	rounds      int
	threads     int
	clients     int
	outstanding int
	qps         int
	pin         bool
	serverCPU   int
	clientCPU   int
	redisCPU    int
	redisFIFO   bool
	fault       bool
	faultRounds int
	faultDur    time.Duration
	pauseAt     time.Duration
	resumeAt    time.Duration
	poll        time.Duration
	jsonFile    string
}

func (o *sessOptions) check() string {
	switch {
	case o.duration < time.Second:
		return "-duration must be at least 1s: CPU time is read in 10 ms ticks"
	case o.passLimit < time.Second:
		return "-pass-limit must be at least 1s"
	case o.rounds < 1 || o.rounds > 100:
		return "-rounds must be between 1 and 100"
	case o.prefixes < 1 || o.prefixes > 1<<22:
		return fmt.Sprintf("-prefixes must be between 1 and %d", 1<<22)
	case o.threads < 1 || o.clients < 1 || o.outstanding < 1:
		return "-T, -c and -q must be positive"
	case o.qps < 0:
		return "-qps must not be negative"
	case o.pin && (o.serverCPU < 0 || o.clientCPU < 0 || o.serverCPU == o.clientCPU):
		return "-server-cpu and -client-cpu must be two different cores"
	case o.pin && o.redisCPU == o.serverCPU:
		return "-redis-cpu must not be the server's core"
	case o.fault && (o.faultDur < 3*time.Second || o.pauseAt < time.Second || o.resumeAt <= o.pauseAt || o.resumeAt >= o.faultDur):
		return "-fault-duration at least 3s, and 1s <= -pause-at < -resume-at < -fault-duration"
	case o.fault && (o.faultRounds < 1 || o.faultRounds > 100):
		return "-fault-rounds must be between 1 and 100"
	case o.poll < 10*time.Millisecond || o.poll > time.Second:
		return "-poll must be between 10ms and 1s"
	}
	if _, ok := dns.IsDomainName(o.name); !ok {
		return fmt.Sprintf("-name %q is not a domain name", o.name)
	}
	o.name = dns.Fqdn(o.name)
	o.modeList = nil
	for f := range strings.SplitSeq(o.modes, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			continue
		case !slices.Contains(sessAllModes, f):
			return fmt.Sprintf("-modes: unknown mode %q (have %s)", f, strings.Join(sessAllModes, ", "))
		case slices.Contains(o.modeList, f):
			return fmt.Sprintf("-modes: %q given twice", f)
		}
		o.modeList = append(o.modeList, f)
	}
	if len(o.modeList) == 0 && !o.fault {
		return "-modes: none given, and -fault=false: nothing to do"
	}
	return ""
}

func runSessions(args []string, stdout, stderr io.Writer) int {
	o := sessOptions{configs: map[string]string{}}
	fs := flag.NewFlagSet("dnsbench sessions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gslbd, "gslbd", "bin/gslbd", "the gslbd binary (make build writes bin/gslbd)")
	fs.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "the dnsperf binary")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "the redis-server binary (Debian package redis-server)")
	cfgs := map[string]*string{}
	for _, m := range sessAllModes {
		cfgs[m] = fs.String("config-"+m, "configs/bench/sessions-"+m+".yaml", "the configuration of the "+m+" variant")
	}
	fs.StringVar(&o.name, "name", "sticky.bench.example.", "the name queried (type A): a sticky score service in the sessions configurations")
	fs.IntVar(&o.prefixes, "prefixes", 100000, "distinct client /24s sent as ECS, one per query in turn, from 1.0.0.0/24 up")
	fs.StringVar(&o.modes, "modes", "off,memory,redis", "comma-separated variants to measure: off, memory, redis")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured dnsperf run")
	fs.DurationVar(&o.passLimit, "pass-limit", 2*time.Minute, "bound on the unmeasured pass through every prefix before measuring")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds, each measuring every variant (in alternating order)")
	fs.IntVar(&o.threads, "T", 2, "dnsperf -T: client threads")
	fs.IntVar(&o.clients, "c", 8, "dnsperf -c: clients (source ports)")
	fs.IntVar(&o.outstanding, "q", 128, "dnsperf -q: queries outstanding")
	fs.IntVar(&o.qps, "qps", 0, "also measure each variant at this fixed offered rate (dnsperf -Q); 0: saturation only")
	fs.BoolVar(&o.pin, "pin", true, "pin gslbd, dnsperf and redis-server with taskset")
	fs.IntVar(&o.serverCPU, "server-cpu", 0, "the core gslbd is pinned to")
	fs.IntVar(&o.clientCPU, "client-cpu", 1, "the core dnsperf is pinned to")
	fs.IntVar(&o.redisCPU, "redis-cpu", -1, "the core redis-server is pinned to; -1: the client's")
	fs.BoolVar(&o.redisFIFO, "redis-fifo", true, "run redis-server under SCHED_FIFO (chrt --fifo 1), so that it answers at once rather than wait for dnsperf's time slice on the shared core")
	fs.BoolVar(&o.fault, "fault", true, "also run the fault run: Redis paused (SIGSTOP) and resumed under saturation")
	fs.IntVar(&o.faultRounds, "fault-rounds", 1, "fault runs, each on a fresh redis-server and gslbd")
	fs.DurationVar(&o.faultDur, "fault-duration", 10*time.Second, "length of the fault run's dnsperf run")
	fs.DurationVar(&o.pauseAt, "pause-at", 3*time.Second, "when, after dnsperf starts, redis-server gets SIGSTOP")
	fs.DurationVar(&o.resumeAt, "resume-at", 7*time.Second, "when, after dnsperf starts, redis-server gets SIGCONT")
	fs.DurationVar(&o.poll, "poll", 100*time.Millisecond, "how often the fault run reads gslbd's /metrics")
	fs.StringVar(&o.jsonFile, "json", "", "also write the results to this file as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnsbench sessions: unexpected arguments: %q\n", fs.Args())
		return exitUsage
	}
	if o.redisCPU < 0 {
		o.redisCPU = o.clientCPU
	}
	for m, c := range cfgs {
		o.configs[m] = *c
	}
	if msg := o.check(); msg != "" {
		fmt.Fprintf(stderr, "dnsbench sessions: %s\n", msg)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sb, err := newSessBench(o, args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dnsbench sessions: %v\n", err)
		return exitFail
	}
	defer os.RemoveAll(sb.b.tmp)
	rep, err := sb.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "dnsbench sessions: %v\n", err)
		return exitFail
	}
	rep.print(stdout)
	if o.jsonFile != "" {
		if err := writeJSONFile(o.jsonFile, rep); err != nil {
			fmt.Fprintf(stderr, "dnsbench sessions: %v\n", err)
			return exitFail
		}
	}
	return exitOK
}

// sessBench reuses the main benchmark's machinery (starting and pinning
// processes, dnsperf's output, /proc) through a bench with the same
// settings.
type sessBench struct {
	o     sessOptions
	b     *bench
	args  []string
	file  string // dnsperf -B input: one query per prefix
	first netip.Prefix
	last  netip.Prefix
}

func newSessBench(o sessOptions, args []string, log io.Writer) (*sessBench, error) {
	p, err := exec.LookPath(o.dnsperf)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install the Debian package dnsperf", o.dnsperf)
	}
	o.dnsperf = p
	needRedis := o.fault || slices.Contains(o.modeList, sessRedis)
	if needRedis {
		if o.redisServer, err = exec.LookPath(o.redisServer); err != nil {
			return nil, errors.New("redis-server not found: install the Debian package redis-server")
		}
	}
	if fi, err := os.Stat(o.gslbd); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("gslbd binary %s not found: run make build", o.gslbd)
	}
	for _, m := range sessAllModes {
		if !slices.Contains(o.modeList, m) && (m != sessRedis || !o.fault) {
			continue
		}
		if _, err := os.Stat(o.configs[m]); err != nil {
			return nil, fmt.Errorf("config of %s: %w", m, err)
		}
	}
	b := &bench{log: log, dnsperfV: dnsperfVersion(p), o: options{
		gslbd: o.gslbd, dnsperf: p, name: "static.bench.example.", answer: "192.0.2.1",
		threads: o.threads, clients: o.clients, outstanding: o.outstanding,
		pin: o.pin, serverCPU: o.serverCPU, clientCPU: o.clientCPU,
	}}
	_, terr := exec.LookPath("taskset")
	switch {
	case !o.pin:
		b.pinNote = "pinning off (-pin=false): gslbd, dnsperf and redis-server share the cores"
	case runtime.NumCPU() < 2:
		b.pinNote = fmt.Sprintf("pinning skipped: %d core available, need 2", runtime.NumCPU())
	case terr != nil:
		b.pinNote = "pinning skipped: taskset not found (Debian package util-linux)"
	default:
		b.pinned = true
		b.pinNote = fmt.Sprintf("gslbd pinned to core %d, dnsperf to core %d", o.serverCPU, o.clientCPU)
		if needRedis {
			b.pinNote += fmt.Sprintf(", redis-server to core %d", o.redisCPU)
		}
		b.pinNote += " (taskset)"
	}
	if needRedis && o.redisFIFO {
		if _, err := exec.LookPath("chrt"); err != nil {
			return nil, errors.New("chrt not found (Debian package util-linux); or run with -redis-fifo=false")
		}
		b.pinNote += "; redis-server under SCHED_FIFO (chrt --fifo 1)"
	}
	if b.tmp, err = os.MkdirTemp("", "dnsbench-sessions-"); err != nil {
		return nil, err
	}
	sb := &sessBench{o: o, b: b, args: args, file: filepath.Join(b.tmp, "sessions.bin")}
	prefixes := sessPrefixes(o.prefixes)
	sb.first, sb.last = prefixes[0], prefixes[len(prefixes)-1]
	if err := sessWriteFile(sb.file, o.name, prefixes); err != nil {
		os.RemoveAll(b.tmp)
		return nil, err
	}
	return sb, nil
}

// sessPrefixes returns n distinct IPv4 /24s: 1.0.0.0/24, 1.0.1.0/24, ...,
// 1.255.255.0/24, 2.0.0.0/24, and so on. Most are outside the demo GeoIP
// database and get its default location; it does not matter which, only
// that each is a client prefix of its own.
func sessPrefixes(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range n {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x01000000+uint32(i)<<8)
		out[i] = netip.PrefixFrom(netip.AddrFrom4(a), 24)
	}
	return out
}

// sessWriteFile writes dnsperf -B input: one query for name A per
// prefix, with that prefix as ECS, as the geo scenario's file does for its
// networks.
func sessWriteFile(path, name string, prefixes []netip.Prefix) error {
	nets := make([]ecsNetwork, len(prefixes))
	for i, p := range prefixes {
		nets[i] = ecsNetwork{Prefix: p}
	}
	return writeWireFile(path, name, nets)
}

// sessReport is everything one invocation measured; it is also the JSON.
type sessReport struct {
	Date     string        `json:"date"`
	Host     string        `json:"host"`
	CPUs     int           `json:"cpus"`
	Go       string        `json:"go"`
	DNSPerf  string        `json:"dnsperf_version"`
	Redis    string        `json:"redis_version,omitempty"`
	Args     []string      `json:"args"`
	Pinned   bool          `json:"pinned"`
	PinNote  string        `json:"pinning"`
	Settings sessSettings  `json:"settings"`
	Runs     []sessResult  `json:"runs"`
	Summary  []sessSummary `json:"summary"`
	Faults   []*sessFault  `json:"faults,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
}

type sessSettings struct {
	Name        string            `json:"name"`
	Configs     map[string]string `json:"configs"`
	Prefixes    int               `json:"prefixes"`
	First       netip.Prefix      `json:"first_prefix"`
	Last        netip.Prefix      `json:"last_prefix"`
	Modes       []string          `json:"modes"`
	Duration    float64           `json:"duration_s"`
	Rounds      int               `json:"rounds"`
	Threads     int               `json:"dnsperf_threads"`
	Clients     int               `json:"dnsperf_clients"`
	Outstanding int               `json:"dnsperf_outstanding"`
	QPS         int               `json:"fixed_qps,omitempty"`
	RedisFIFO   bool              `json:"redis_sched_fifo"`
}

// sessLookupResults are gslb_session_lookups_total's result labels.
var sessLookupResults = []string{"hit", "miss", "created", "error", "skipped"}

// sessResult is one measured run of one variant.
type sessResult struct {
	Round     int      `json:"round"`
	Mode      string   `json:"mode"` // off, memory, redis
	Load      string   `json:"load"` // saturation or fixed
	Offered   int      `json:"offered_qps,omitempty"`
	DNSPerf   stats    `json:"dnsperf"`
	CPUSec    float64  `json:"server_cpu_s"`
	CPUPerQ   float64  `json:"server_cpu_us_per_query"`
	ServerPct float64  `json:"server_cpu_percent"`
	ClientPct float64  `json:"client_cpu_percent"`
	OtherPct  *float64 `json:"server_core_other_percent,omitempty"`
	// NonNoError counts answers whose rcode was not NOERROR.
	NonNoError int64 `json:"non_noerror"`
	// From gslbd's /metrics, before and after the run.
	Lookups       map[string]int64 `json:"session_lookups,omitempty"`
	RoundTrips    map[string]int64 `json:"redis_roundtrips,omitempty"` // command, pipeline
	RTPerQ        float64          `json:"redis_roundtrips_per_query"`
	RedisErrors   int64            `json:"redis_errors"`
	WritesDropped int64            `json:"writes_dropped"`
	GeoPerQ       float64          `json:"geoip_lookups_per_query"`
	// From redis-server: its CPU per answered query and the commands it
	// ran (INFO commandstats calls), before and after the run.
	RedisCPUPerQ *float64         `json:"redis_cpu_us_per_query,omitempty"`
	RedisCalls   map[string]int64 `json:"redis_calls,omitempty"`
	// The unmeasured pass through every prefix before the run.
	Pass sessPass `json:"pass"`
	// Checks is what the check queries got, before the pass.
	Checks []string `json:"checks"`
}

type sessPass struct {
	Completed int64            `json:"queries_completed"`
	QPS       float64          `json:"qps"`
	Lookups   map[string]int64 `json:"session_lookups,omitempty"`
	StoreKeys *int64           `json:"redis_keys,omitempty"` // DBSIZE after the pass
}

type sessSummary struct {
	Load      string    `json:"load"`
	Mode      string    `json:"mode"`
	Affinity  float64   `json:"affinity_share_median"`
	QPS       float64   `json:"qps_median"`
	CPUPerQ   float64   `json:"cpu_us_per_query_median"`
	RTPerQ    float64   `json:"redis_roundtrips_per_query_median"`
	QPSRatios []float64 `json:"qps_ratio_to_off_per_round,omitempty"`
	CPURatios []float64 `json:"cpu_ratio_to_off_per_round,omitempty"`
	QPSRatio  float64   `json:"qps_ratio_to_off_median,omitempty"`
	CPURatio  float64   `json:"cpu_ratio_to_off_median,omitempty"`
	MeetsAim  *bool     `json:"meets_aim,omitempty"`
}

func (sb *sessBench) run(ctx context.Context) (*sessReport, error) {
	host, _ := os.Hostname()
	o := sb.o
	rep := &sessReport{
		Date: time.Now().UTC().Format(time.RFC3339), Host: host, CPUs: runtime.NumCPU(),
		Go: runtime.Version(), DNSPerf: sb.b.dnsperfV, Args: sb.args, Pinned: sb.b.pinned, PinNote: sb.b.pinNote,
		Settings: sessSettings{
			Name: o.name, Configs: map[string]string{}, Prefixes: o.prefixes, First: sb.first, Last: sb.last,
			Modes: o.modeList, Duration: o.duration.Seconds(), Rounds: o.rounds,
			Threads: o.threads, Clients: o.clients, Outstanding: o.outstanding, QPS: o.qps, RedisFIFO: o.redisFIFO,
		},
	}
	for _, m := range o.modeList {
		rep.Settings.Configs[m] = o.configs[m]
	}
	if o.redisServer != "" {
		rep.Redis = redisVersion(o.redisServer)
	}
	fmt.Fprintf(sb.b.log, "dnsbench sessions: %s; %d client prefixes, %s to %s\n", sb.b.pinNote, o.prefixes, sb.first, sb.last)
	if len(o.modeList) > 0 {
		for round := 1; round <= o.rounds; round++ {
			for _, m := range scenarioOrder(o.modeList, round) {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("interrupted: %w", err)
				}
				rs, err := sb.measure(ctx, round, m)
				if err != nil {
					return nil, fmt.Errorf("round %d, %s: %w", round, m, err)
				}
				rep.Runs = append(rep.Runs, rs...)
			}
		}
	}
	rep.summarise()
	if o.fault {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("interrupted: %w", err)
		}
		for i := 1; i <= o.faultRounds; i++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted: %w", err)
			}
			f, err := sb.faultRun(ctx, i)
			if err != nil {
				return nil, fmt.Errorf("fault run %d: %w", i, err)
			}
			rep.Faults = append(rep.Faults, f)
			for _, w := range f.warnings() {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d: %s", i, w))
			}
		}
	}
	return rep, nil
}

// sessInstance is one gslbd (and, for the Redis variant, its
// redis-server) started for one run.
type sessInstance struct {
	gslbd     *proc
	dnsAddr   string
	redis     *proc
	redisAddr string
}

func (in *sessInstance) stop() error {
	var errs []error
	if in.gslbd != nil {
		errs = append(errs, in.gslbd.stop())
	}
	if in.redis != nil {
		// A stopped redis-server would hold SIGTERM until continued.
		_ = in.redis.cmd.Process.Signal(syscall.SIGCONT)
		errs = append(errs, in.redis.stop())
	}
	return errors.Join(errs...)
}

// start starts the variant's processes: a fresh redis-server first for
// the Redis one, then gslbd, and waits until gslbd answers.
func (sb *sessBench) start(ctx context.Context, m string) (_ *sessInstance, err error) {
	in := &sessInstance{}
	defer func() {
		if err != nil {
			_ = in.stop()
		}
	}()
	var extra []string
	if m == sessRedis {
		if in.redis, in.redisAddr, err = sb.startRedis(ctx); err != nil {
			return nil, err
		}
		extra = []string{"--set", "sessions.redis.addrs=" + in.redisAddr}
	}
	var lastErr error
	for range startTries {
		port, err := freeDNSPort()
		if err != nil {
			return nil, err
		}
		httpPort, err := freeTCPPort()
		if err != nil {
			return nil, err
		}
		dnsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
		argv := append([]string{sb.o.gslbd, "serve", "--config", sb.o.configs[m],
			"--set", "dns.listen=" + dnsAddr, "--set", "http.listen=" + httpAddr, "--log.level", "warn"}, extra...)
		p, err := sb.b.startProc("gslbd", argv)
		if err != nil {
			return nil, err
		}
		p.metricsURL = "http://" + httpAddr + "/metrics"
		if lastErr = p.waitReady(ctx, "http://"+httpAddr+"/readyz", dnsAddr, sb.b.o.name, sb.b.o.answer); lastErr == nil {
			in.gslbd, in.dnsAddr = p, dnsAddr
			return in, nil
		}
		_ = p.stop()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// startRedis starts redis-server on a free loopback port, without
// persistence, pinned to -redis-cpu, and waits until it answers PING.
func (sb *sessBench) startRedis(ctx context.Context) (*proc, string, error) {
	var lastErr error
	for range startTries {
		port, err := freeTCPPort()
		if err != nil {
			return nil, "", err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		argv := []string{sb.o.redisServer,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--dir", sb.b.tmp, "--loglevel", "warning"}
		if sb.o.redisFIFO {
			// chrt execs redis-server: the PID is still redis-server's.
			argv = append([]string{"chrt", "--fifo", "1"}, argv...)
		}
		argv = sb.b.pinArgv(sb.o.redisCPU, argv)
		cmd := exec.Command(argv[0], argv[1:]...)
		p := &proc{name: "redis-server", cmd: cmd, done: make(chan struct{}), out: &tail{max: 8 << 10}}
		cmd.Stdout, cmd.Stderr = p.out, p.out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, "", fmt.Errorf("starting redis-server: %w", err)
		}
		go func() { p.err = cmd.Wait(); close(p.done) }()
		lastErr = errors.New("no attempt")
		const every = 25 * time.Millisecond
		for range readyTimeout / every {
			if lastErr = p.exited(); lastErr != nil {
				break
			}
			var got string
			if got, lastErr = redisCmd(ctx, addr, "PING"); lastErr == nil && got == "PONG" {
				return p, addr, nil
			}
			select {
			case <-ctx.Done():
				_ = p.stop()
				return nil, "", ctx.Err()
			case <-time.After(every):
			}
		}
		_ = p.stop()
	}
	return nil, "", fmt.Errorf("redis-server not ready: %v", lastErr)
}

// checks sends a few of the file's queries (first, second, middle, last
// prefix) twice each with a miekg/dns client, and requires NOERROR, one A
// record, the ECS echoed and, twice, the same answer.
func (sb *sessBench) checks(ctx context.Context, dnsAddr string) ([]string, error) {
	ps := sessPrefixes(sb.o.prefixes)
	idx := []int{0, min(1, len(ps)-1), len(ps) / 2, len(ps) - 1}
	dc := &dns.Client{Net: "udp", Timeout: time.Second}
	var out []string
	for _, i := range slices.Compact(idx) {
		p := ps[i]
		wire, err := wireQuery(sb.o.name, dns.TypeA, p)
		if err != nil {
			return nil, err
		}
		var answers []string
		for range 2 {
			q := new(dns.Msg)
			if err := q.Unpack(wire); err != nil {
				return nil, err
			}
			q.Id = dns.Id()
			var r *dns.Msg
			for range 3 {
				if r, _, err = dc.ExchangeContext(ctx, q, dnsAddr); err == nil || ctx.Err() != nil {
					break
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s A with ECS %s: %w", sb.o.name, p, err)
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				return nil, fmt.Errorf("%s A with ECS %s: rcode %s, %d answers: want NOERROR and one A (is -name a score service in the configuration?)",
					sb.o.name, p, dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			a, ok := r.Answer[0].(*dns.A)
			if !ok {
				return nil, fmt.Errorf("%s A with ECS %s: answered %s", sb.o.name, p, r.Answer[0])
			}
			e := querySubnet(r)
			if e == nil {
				return nil, fmt.Errorf("%s A with ECS %s: no ECS in the response", sb.o.name, p)
			}
			if got, err := subnetPrefix(e); err != nil || got != p {
				return nil, fmt.Errorf("%s A with ECS %s: response echoed ECS %v/%d", sb.o.name, p, e.Address, e.SourceNetmask)
			}
			answers = append(answers, fmt.Sprintf("%s scope /%d", a.A, e.SourceScope))
		}
		if strings.Fields(answers[0])[0] != strings.Fields(answers[1])[0] {
			return nil, fmt.Errorf("%s A with ECS %s: answered %s, then %s", sb.o.name, p, answers[0], answers[1])
		}
		out = append(out, fmt.Sprintf("%s: %s, then %s", p, answers[0], answers[1]))
	}
	return out, nil
}

// measure starts one variant, checks it, makes the unmeasured pass over
// every prefix and measures one run at saturation and, with -qps, one at
// that fixed rate, on the same processes.
func (sb *sessBench) measure(ctx context.Context, round int, m string) (_ []sessResult, err error) {
	in, err := sb.start(ctx, m)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := in.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	checks, err := sb.checks(ctx, in.dnsAddr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(sb.b.log, "dnsbench sessions: round %d/%d: %s: pass over %d prefixes (dnsperf -n 1)\n", round, sb.o.rounds, m, sb.o.prefixes)
	pass, err := sb.pass(ctx, in, fmt.Sprintf("%d-%s", round, m))
	if err != nil {
		return nil, err
	}
	loads := []int{0}
	if sb.o.qps > 0 {
		loads = append(loads, sb.o.qps)
	}
	var out []sessResult
	for _, qps := range loads {
		r, err := sb.measureRun(ctx, in, round, m, qps)
		if err != nil {
			return nil, err
		}
		r.Checks, r.Pass = checks, pass
		out = append(out, r)
	}
	return out, nil
}

// measureRun is one measured dnsperf run, at saturation (qps 0) or at a
// fixed rate, with /metrics, Redis's commandstats and the CPU times read
// just outside it.
func (sb *sessBench) measureRun(ctx context.Context, in *sessInstance, round int, m string, qps int) (sessResult, error) {
	r := sessResult{Round: round, Mode: m, Load: "saturation", Offered: qps}
	if qps > 0 {
		r.Load = "fixed"
	}
	fmt.Fprintf(sb.b.log, "dnsbench sessions: round %d/%d: %s: %s %s\n", round, sb.o.rounds, m, r.Load, sb.o.duration)
	m0, err := sessScrape(ctx, in.gslbd.metricsURL)
	if err != nil {
		return r, err
	}
	var rc0 map[string]int64
	if in.redis != nil {
		if rc0, err = redisCalls(ctx, in.redisAddr); err != nil {
			return r, err
		}
	}
	t0, err := in.gslbd.cpuTicks()
	if err != nil {
		return r, err
	}
	var rt0 uint64
	if in.redis != nil {
		if rt0, err = in.redis.cpuTicks(); err != nil {
			return r, err
		}
	}
	cb0, ct0, cerr0 := sb.b.serverCoreTicks()
	w0 := time.Now()
	st, clientCPU, _, err := sb.dnsperf(ctx, in.dnsAddr, fmt.Sprintf("%d-%s-%s", round, m, r.Load), sb.o.duration, false, false, qps)
	if err != nil {
		return r, err
	}
	t1, err := in.gslbd.cpuTicks()
	if err != nil {
		return r, err
	}
	var rt1 uint64
	if in.redis != nil {
		if rt1, err = in.redis.cpuTicks(); err != nil {
			return r, err
		}
	}
	wall := time.Since(w0).Seconds()
	cb1, ct1, cerr1 := sb.b.serverCoreTicks()
	m1, err := sessScrape(ctx, in.gslbd.metricsURL)
	if err != nil {
		return r, err
	}
	if in.redis != nil {
		rc1, err := redisCalls(ctx, in.redisAddr)
		if err != nil {
			return r, err
		}
		r.RedisCalls = map[string]int64{}
		for k, v := range rc1 {
			if d := v - rc0[k]; d != 0 && !strings.HasPrefix(k, "info") {
				r.RedisCalls[k] = d
			}
		}
		if st.Completed > 0 {
			v := float64(rt1-rt0) / clockTicks * 1e6 / float64(st.Completed)
			r.RedisCPUPerQ = &v
		}
	}
	if sb.b.pinned && cerr0 == nil && cerr1 == nil && ct1 > ct0 {
		other := max(100*(float64(cb1-cb0)-float64(t1-t0))/float64(ct1-ct0), 0)
		r.OtherPct = &other
	}
	r.DNSPerf = st
	r.NonNoError = st.Completed - st.Rcodes["NOERROR"]
	r.CPUSec = float64(t1-t0) / clockTicks
	if st.Completed > 0 {
		r.CPUPerQ = r.CPUSec * 1e6 / float64(st.Completed)
	}
	r.ServerPct = 100 * r.CPUSec / wall
	r.ClientPct = 100 * clientCPU / wall
	d := m1.minus(m0)
	if m != sessOff {
		r.Lookups = d.lookups()
	}
	if m == sessRedis {
		r.RoundTrips = map[string]int64{
			"command":  int64(d[`gslb_session_redis_roundtrips_total{kind="command"}`]),
			"pipeline": int64(d[`gslb_session_redis_roundtrips_total{kind="pipeline"}`]),
		}
		if st.Completed > 0 {
			r.RTPerQ = float64(r.RoundTrips["command"]+r.RoundTrips["pipeline"]) / float64(st.Completed)
		}
		r.RedisErrors = int64(d["gslb_session_redis_errors_total"])
	}
	r.WritesDropped = int64(d["gslb_session_writes_dropped_total"])
	if st.Completed > 0 {
		r.GeoPerQ = d.sum("gslb_geoip_cache_lookups_total{") / float64(st.Completed)
	}
	return r, nil
}

// affinityShare is the share of session look-ups that gave the query its
// session (a local hit, or the store within the budget): the rest, error
// and skipped, were answered by the policy alone.
func affinityShare(l map[string]int64) (float64, bool) {
	var all int64
	for _, v := range l {
		all += v
	}
	if all == 0 {
		return 0, false
	}
	return float64(l["hit"]+l["miss"]+l["created"]) / float64(all), true
}

// pass sends every prefix's query once (dnsperf -n 1), unmeasured: each
// client is placed (a session created, in the sticky variants) and
// located (the GeoIP cache filled), so that the measured run finds the
// state a busy server is in.
func (sb *sessBench) pass(ctx context.Context, in *sessInstance, tag string) (sessPass, error) {
	m0, err := sessScrape(ctx, in.gslbd.metricsURL)
	if err != nil {
		return sessPass{}, err
	}
	st, _, _, err := sb.dnsperf(ctx, in.dnsAddr, tag+"-pass", sb.o.passLimit, true, false, 0)
	if err != nil {
		return sessPass{}, fmt.Errorf("pass: %w", err)
	}
	m1, err := sessScrape(ctx, in.gslbd.metricsURL)
	if err != nil {
		return sessPass{}, err
	}
	p := sessPass{Completed: st.Completed, QPS: st.QPS}
	if d := m1.minus(m0); d.has("gslb_session_lookups_total{") {
		p.Lookups = d.lookups()
	}
	if in.redis != nil {
		// Writes are batched every 5 ms: let the last ones land.
		time.Sleep(100 * time.Millisecond)
		s, err := redisCmd(ctx, in.redisAddr, "DBSIZE")
		if err != nil {
			return p, fmt.Errorf("DBSIZE: %w", err)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return p, fmt.Errorf("DBSIZE: %q", s)
		}
		p.StoreKeys = &n
	}
	return p, nil
}

// dnsperf runs dnsperf over the prefix file against addr: for d (or, with
// once, one pass through the file, d bounding it), with -S 1 when
// perSecond. It returns dnsperf's statistics, its CPU time and, with
// perSecond, the per-second lines.
func (sb *sessBench) dnsperf(ctx context.Context, addr, tag string, d time.Duration, once, perSecond bool, qps int) (stats, float64, []sessInterval, error) {
	cmd, outPath, errBuf, err := sb.dnsperfCmd(ctx, addr, tag, d, once, perSecond, qps)
	if err != nil {
		return stats{}, 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return stats{}, 0, nil, fmt.Errorf("dnsperf: %w", err)
	}
	return sb.dnsperfWait(ctx, cmd, outPath, errBuf, d)
}

func (sb *sessBench) dnsperfCmd(ctx context.Context, addr, tag string, d time.Duration, once, perSecond bool, qps int) (*exec.Cmd, string, *tail, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", nil, err
	}
	o := sb.o
	argv := []string{o.dnsperf, "-s", host, "-p", port, "-d", sb.file, "-B",
		"-l", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		"-T", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.clients), "-q", strconv.Itoa(o.outstanding)}
	if once {
		argv = append(argv, "-n", "1")
	}
	if perSecond {
		argv = append(argv, "-S", "1")
	}
	if qps > 0 {
		argv = append(argv, "-Q", strconv.Itoa(qps))
	}
	argv = sb.b.pinArgv(o.clientCPU, argv)
	outPath := filepath.Join(sb.b.tmp, tag+".out")
	outF, err := os.Create(outPath)
	if err != nil {
		return nil, "", nil, err
	}
	errBuf := &tail{max: 4 << 10}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = outF, errBuf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, outPath, errBuf, nil
}

// dnsperfWait waits for a dnsperf started by dnsperfCmd, at most d and
// 30 s (its query timeout is 5 s), and parses its output.
func (sb *sessBench) dnsperfWait(ctx context.Context, cmd *exec.Cmd, outPath string, errBuf *tail, d time.Duration) (stats, float64, []sessInterval, error) {
	if f, ok := cmd.Stdout.(*os.File); ok {
		defer f.Close()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(d + 30*time.Second):
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(stopGrace):
			_ = cmd.Process.Kill()
			<-done
		}
		return stats{}, 0, nil, fmt.Errorf("dnsperf still running %s after its -l %s; stopped", d+30*time.Second, d)
	}
	if err != nil {
		if ctx.Err() != nil {
			return stats{}, 0, nil, errors.New("interrupted")
		}
		return stats{}, 0, nil, fmt.Errorf("dnsperf: %w: %s", err, errBuf.String())
	}
	var cpu float64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		return stats{}, 0, nil, err
	}
	st, err := parseDNSPerf(strings.NewReader(string(out)))
	if err != nil {
		t := &tail{max: 2 << 10}
		t.Write(out)
		return stats{}, 0, nil, fmt.Errorf("%w; dnsperf said: %s %s", err, t.String(), errBuf.String())
	}
	return st, cpu, parseIntervals(out), nil
}

// sessInterval is one line of dnsperf -S: the rate over the second that
// ended at At (Unix seconds, as dnsperf prints it).
type sessInterval struct {
	At  float64 `json:"unix_time"`
	T   float64 `json:"t_s"` // At, in seconds after dnsperf was started
	QPS float64 `json:"qps"`
}

// parseIntervals reads dnsperf -S lines, "1795636723.674749: 26597.970891".
func parseIntervals(out []byte) []sessInterval {
	var iv []sessInterval
	for line := range strings.SplitSeq(string(out), "\n") {
		ts, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !strings.Contains(ts, ".") {
			continue
		}
		at, err1 := strconv.ParseFloat(ts, 64)
		q, err2 := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err1 != nil || err2 != nil || at < 1e9 {
			continue
		}
		iv = append(iv, sessInterval{At: at, QPS: q})
	}
	return iv
}

// sessMetrics is one scrape of gslbd's /metrics: the series this
// benchmark reads, by their text ("name{labels}").
type sessMetrics map[string]float64

var sessMetricPrefixes = []string{"gslb_session_", "gslb_dns_responses_total", "gslb_geoip_cache_lookups_total"}

func sessScrape(ctx context.Context, url string) (sessMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseSessMetrics(io.LimitReader(resp.Body, 16<<20))
}

// parseSessMetrics reads the series of sessMetricPrefixes from a
// Prometheus text exposition; histograms' _bucket series are left out.
func parseSessMetrics(r io.Reader) (sessMetrics, error) {
	m := sessMetrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !slices.ContainsFunc(sessMetricPrefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
			continue
		}
		var key, val string
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			key, val = line[:i+1], line[i+1:]
		} else {
			var ok bool
			if key, val, ok = strings.Cut(line, " "); !ok {
				return nil, fmt.Errorf("metrics: %q", line)
			}
		}
		if strings.Contains(key, "_bucket{") {
			continue
		}
		v, err := firstFloat(val)
		if err != nil || math.IsNaN(v) {
			return nil, fmt.Errorf("metrics: %q: bad value", line)
		}
		m[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	return m, nil
}

// minus is m - o, series by series (a series o lacks counts zero).
func (m sessMetrics) minus(o sessMetrics) sessMetrics {
	d := sessMetrics{}
	for k, v := range m {
		d[k] = v - o[k]
	}
	return d
}

// sum adds every series whose text starts with prefix.
func (m sessMetrics) sum(prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

func (m sessMetrics) has(prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

func (m sessMetrics) lookups() map[string]int64 {
	out := map[string]int64{}
	for _, res := range sessLookupResults {
		out[res] = int64(m[`gslb_session_lookups_total{result="`+res+`"}`])
	}
	return out
}

// redisCmd sends one command to Redis over a fresh connection and returns
// its reply: a simple string, an integer or a bulk string as text.
func redisCmd(ctx context.Context, addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	return readRESP(bufio.NewReader(c))
}

// readRESP reads one RESP2 reply that is not an array.
func readRESP(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n > 64<<20 {
			return "", fmt.Errorf("redis: bulk length %q", line[1:])
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}

// redisCalls reads INFO commandstats: calls per command.
func redisCalls(ctx context.Context, addr string) (map[string]int64, error) {
	s, err := redisCmd(ctx, addr, "INFO", "commandstats")
	if err != nil {
		return nil, fmt.Errorf("redis INFO: %w", err)
	}
	return parseCommandStats(s), nil
}

// parseCommandStats reads "cmdstat_evalsha:calls=12,usec=..." lines:
// calls per command and, under "name.usec", the microseconds Redis spent
// on them.
func parseCommandStats(info string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(fields, ",") {
			for _, k := range []string{"calls", "usec"} {
				if v, ok := strings.CutPrefix(f, k+"="); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						if k == "calls" {
							out[name] = n
						} else {
							out[name+".usec"] = n
						}
					}
				}
			}
		}
	}
	return out
}

func redisVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "--version").Output()
	for f := range strings.FieldsSeq(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return "unknown"
}

func (rep *sessReport) summarise() {
	var noisy []string
	for _, r := range rep.Runs {
		if r.OtherPct != nil && *r.OtherPct > noisyPct {
			noisy = append(noisy, fmt.Sprintf("round %d %s %.0f%%", r.Round, r.Mode, *r.OtherPct))
		}
		if r.DNSPerf.Lost > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s: %d queries lost", r.Round, r.Mode, r.DNSPerf.Lost))
		}
		if r.NonNoError > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s: %d answers not NOERROR: %v", r.Round, r.Mode, r.NonNoError, r.DNSPerf.Rcodes))
		}
		if r.Lookups != nil && r.DNSPerf.Completed > 0 {
			var n int64
			for _, v := range r.Lookups {
				n += v
			}
			if float64(n) < 0.99*float64(r.DNSPerf.Completed) {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s: %d session look-ups for %d answered queries", r.Round, r.Mode, n, r.DNSPerf.Completed))
			}
		}
		if r.Pass.Completed < int64(rep.Settings.Prefixes) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s: the pass answered %d of %d prefixes", r.Round, r.Mode, r.Pass.Completed, rep.Settings.Prefixes))
		}
	}
	if len(noisy) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("noisy runs, where over %d%% of gslbd's core went to other work: %s", noisyPct, strings.Join(noisy, ", ")))
	}
	rep.Summary = nil
	for _, load := range []string{"saturation", "fixed"} {
		byRound := map[int]map[string]sessResult{}
		for _, r := range rep.Runs {
			if r.Load != load {
				continue
			}
			if byRound[r.Round] == nil {
				byRound[r.Round] = map[string]sessResult{}
			}
			byRound[r.Round][r.Mode] = r
		}
		for _, m := range sessAllModes {
			var q, c, rt, af, qr, cr []float64
			for round := 1; round <= rep.Settings.Rounds; round++ {
				r, ok := byRound[round][m]
				if !ok {
					continue
				}
				q, c, rt = append(q, r.DNSPerf.QPS), append(c, r.CPUPerQ), append(rt, r.RTPerQ)
				if v, ok := affinityShare(r.Lookups); ok {
					af = append(af, v)
				}
				if off, ok := byRound[round][sessOff]; ok && m != sessOff && off.DNSPerf.QPS > 0 && off.CPUPerQ > 0 {
					qr = append(qr, r.DNSPerf.QPS/off.DNSPerf.QPS)
					cr = append(cr, r.CPUPerQ/off.CPUPerQ)
				}
			}
			if len(q) == 0 {
				continue
			}
			s := sessSummary{Load: load, Mode: m, Affinity: median(af), QPS: median(q), CPUPerQ: median(c), RTPerQ: median(rt), QPSRatios: qr, CPURatios: cr}
			if len(qr) > 0 {
				s.QPSRatio, s.CPURatio = median(qr), median(cr)
				if load == "saturation" {
					meets := s.QPSRatio >= sessAim
					s.MeetsAim = &meets
				}
			}
			rep.Summary = append(rep.Summary, s)
		}
	}
}

// The fault run.

// sessPoll is one read of /metrics during the fault run.
type sessPoll struct {
	T         float64 `json:"t_s"` // seconds after dnsperf was started
	Breaker   float64 `json:"breaker_open"`
	Responses float64 `json:"responses"`
	Servfail  float64 `json:"servfail"`
	Hit       float64 `json:"hit"`
	Miss      float64 `json:"miss"`
	Created   float64 `json:"created"`
	Errored   float64 `json:"error"`
	Skipped   float64 `json:"skipped"`
	RedisErrs float64 `json:"redis_errors"`
	RoundTrip float64 `json:"redis_roundtrips"`
	// Clock ticks, read with the poll: gslbd's CPU time, and busy and
	// all ticks of its core, for the share of the core that other work
	// took in each window (10 ms ticks: coarse over 100 ms).
	ProcTicks float64 `json:"gslbd_ticks"`
	CoreBusy  float64 `json:"core_busy_ticks"`
	CoreAll   float64 `json:"core_ticks"`
}

func sessPollOf(t float64, m sessMetrics) sessPoll {
	l := func(res string) float64 { return m[`gslb_session_lookups_total{result="`+res+`"}`] }
	return sessPoll{
		T: t, Breaker: m["gslb_session_breaker_open"],
		Responses: m.sum("gslb_dns_responses_total{"),
		Servfail:  sessSumWith(m, "gslb_dns_responses_total{", `rcode="SERVFAIL"`),
		Hit:       l("hit"), Miss: l("miss"), Created: l("created"), Errored: l("error"), Skipped: l("skipped"),
		RedisErrs: m["gslb_session_redis_errors_total"],
		RoundTrip: m.sum("gslb_session_redis_roundtrips_total{"),
	}
}

func sessSumWith(m sessMetrics, prefix, label string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) && strings.Contains(k, label) {
			s += v
		}
	}
	return s
}

// sessWindow is the answer rate between two polls.
type sessWindow struct {
	Start, End float64 // seconds after dnsperf started
	Rate       float64 // answers per second
	Skipped    float64 // look-ups skipped in the window
	Errored    float64
	Lookups    float64 // all look-ups in the window
	RoundTrips float64 // Redis round trips in the window
	// OtherPct is the share of gslbd's core busy with other work, or -1
	// when the ticks were not read.
	OtherPct float64
}

// sessOtherPct is the share of gslbd's core that went to other work
// between two polls, or -1 when unknown.
func sessOtherPct(a, b sessPoll) float64 {
	all := b.CoreAll - a.CoreAll
	if all <= 0 {
		return -1
	}
	return max(100*((b.CoreBusy-a.CoreBusy)-(b.ProcTicks-a.ProcTicks))/all, 0)
}

func sessWindows(polls []sessPoll) []sessWindow {
	var w []sessWindow
	for i := 1; i < len(polls); i++ {
		a, b := polls[i-1], polls[i]
		dt := b.T - a.T
		if dt <= 0 {
			continue
		}
		look := func(p sessPoll) float64 { return p.Hit + p.Miss + p.Created + p.Errored + p.Skipped }
		w = append(w, sessWindow{Start: a.T, End: b.T, Rate: (b.Responses - a.Responses) / dt,
			Skipped: b.Skipped - a.Skipped, Errored: b.Errored - a.Errored, Lookups: look(b) - look(a), RoundTrips: b.RoundTrip - a.RoundTrip, OtherPct: sessOtherPct(a, b)})
	}
	return w
}

// sessFault is the fault run's result.
type sessFault struct {
	Run        int            `json:"run"`
	DNSPerf    stats          `json:"dnsperf"`
	Servfail   int64          `json:"servfail"` // dnsperf's count
	NonNoError int64          `json:"non_noerror"`
	ServerSF   float64        `json:"server_servfail"` // gslbd's own count over the run
	PauseAt    float64        `json:"pause_at_s"`      // as sent, seconds after dnsperf started
	ResumeAt   float64        `json:"resume_at_s"`
	Pass       sessPass       `json:"pass"`
	Intervals  []sessInterval `json:"per_second"`
	Polls      []sessPoll     `json:"polls"`
	sessFaultAnalysis
}

// sessFaultAnalysis is what the polls say; every time is in seconds
// after dnsperf started, and nil when it did not happen.
type sessFaultAnalysis struct {
	// PreRate is the answer rate from 1 s to the pause; PauseRate during
	// the pause, from one second after it (once the breaker is open);
	// PostRate from a second after the breaker closed to the end.
	PreRate   float64 `json:"pre_pause_rate"`
	PauseRate float64 `json:"pause_rate"`
	PostRate  float64 `json:"post_resume_rate"`
	MinRate   float64 `json:"min_100ms_rate_in_pause"`
	MinAt     float64 `json:"min_rate_window_end_s"`
	// FirstFailure is the end of the first poll window after the pause
	// with a look-up skipped or failed: the breaker's earliest sign.
	FirstFailure *float64 `json:"first_failure_s,omitempty"`
	// GaugeOpen is the first poll after the pause with
	// gslb_session_breaker_open 1; GaugeClosed the first after the
	// resume with 0 again.
	GaugeOpen   *float64 `json:"breaker_gauge_open_s,omitempty"`
	GaugeClosed *float64 `json:"breaker_gauge_closed_s,omitempty"`
	// LookupsBack is the end of the first window after the resume in
	// which look-ups went to Redis again (round trips for more than a
	// tenth of them): the breaker had closed.
	LookupsBack *float64 `json:"lookups_back_s,omitempty"`
	// BackFirst is the end of the first window, ending after
	// FirstFailure, whose rate was at least sessRecoverShare of PreRate;
	// BackGauge the same after GaugeOpen. WithinFirst and WithinGauge:
	// that was at most sessRecoverWithin after the breaker's opening.
	BackFirst   *float64 `json:"back_after_first_failure_s,omitempty"`
	BackGauge   *float64 `json:"back_after_gauge_s,omitempty"`
	WithinFirst *bool    `json:"back_within_1s_of_first_failure,omitempty"`
	WithinGauge *bool    `json:"back_within_1s_of_gauge,omitempty"`
	// FirstSecond is the rate over the second after FirstFailure.
	FirstSecond float64 `json:"rate_first_second_after_failure"`
	// Recovered is the end of the last window in the pause whose rate was
	// below sessRecoverShare of PreRate (the pause itself when none was):
	// from then to the resume the rate stayed above it.
	Recovered float64 `json:"recovered_s"`
	// Low lists the windows in the pause below sessRecoverShare × PreRate.
	Low []sessWindow `json:"low_windows,omitempty"`
}

func sessAnalyse(polls []sessPoll, pauseAt, resumeAt float64) sessFaultAnalysis {
	var a sessFaultAnalysis
	rate := func(from, to float64) float64 {
		var first, last *sessPoll
		for i := range polls {
			p := &polls[i]
			if p.T >= from && first == nil {
				first = p
			}
			if p.T <= to {
				last = p
			}
		}
		if first == nil || last == nil || last.T <= first.T {
			return 0
		}
		return (last.Responses - first.Responses) / (last.T - first.T)
	}
	at := func(v float64) *float64 { return &v }
	a.PreRate = rate(1, pauseAt)
	a.PauseRate = rate(pauseAt+1, resumeAt)
	for _, p := range polls {
		if p.T < pauseAt {
			continue
		}
		if a.GaugeOpen == nil && p.Breaker >= 1 && p.T < resumeAt+1 {
			a.GaugeOpen = at(p.T)
		}
		if a.GaugeOpen != nil && a.GaugeClosed == nil && p.T >= resumeAt && p.Breaker == 0 {
			a.GaugeClosed = at(p.T)
		}
	}
	end := 0.0
	if len(polls) > 0 {
		end = polls[len(polls)-1].T
	}
	if a.GaugeClosed != nil {
		a.PostRate = rate(*a.GaugeClosed+1, end)
	} else {
		a.PostRate = rate(resumeAt+1, end)
	}
	a.Recovered = pauseAt
	a.MinRate = math.Inf(1)
	for _, w := range sessWindows(polls) {
		if w.End > pauseAt && w.Start < resumeAt {
			if a.FirstFailure == nil && (w.Skipped > 0 || w.Errored > 0) {
				a.FirstFailure = at(w.End)
			}
			if w.Start >= pauseAt && w.End <= resumeAt && w.Rate < a.MinRate {
				a.MinRate, a.MinAt = w.Rate, w.End
			}
			if w.Start >= pauseAt && w.End <= resumeAt && w.Rate < sessRecoverShare*a.PreRate {
				a.Low = append(a.Low, w)
				a.Recovered = w.End
			}
		}
		if a.LookupsBack == nil && w.Start >= resumeAt && w.Lookups > 0 && w.RoundTrips > w.Lookups/10 {
			a.LookupsBack = at(w.End)
		}
	}
	if math.IsInf(a.MinRate, 1) {
		a.MinRate = 0
	}
	back := func(open *float64) (*float64, *bool) {
		if open == nil {
			return nil, nil
		}
		for _, w := range sessWindows(polls) {
			if w.End > *open && w.Rate >= sessRecoverShare*a.PreRate {
				ok := w.End <= *open+sessRecoverWithin
				return at(w.End), &ok
			}
		}
		ok := false
		return nil, &ok
	}
	a.BackFirst, a.WithinFirst = back(a.FirstFailure)
	a.BackGauge, a.WithinGauge = back(a.GaugeOpen)
	if a.FirstFailure != nil {
		a.FirstSecond = rate(*a.FirstFailure, *a.FirstFailure+1)
	}
	return a
}

func (f *sessFault) warnings() []string {
	var w []string
	if f.Servfail > 0 {
		w = append(w, fmt.Sprintf("fault run: %d SERVFAIL answers", f.Servfail))
	}
	if f.NonNoError > f.Servfail {
		w = append(w, fmt.Sprintf("fault run: %d answers neither NOERROR nor SERVFAIL: %v", f.NonNoError-f.Servfail, f.DNSPerf.Rcodes))
	}
	if f.DNSPerf.Lost > 0 {
		w = append(w, fmt.Sprintf("fault run: %d queries lost", f.DNSPerf.Lost))
	}
	if f.GaugeOpen == nil {
		w = append(w, "fault run: gslb_session_breaker_open never read 1 during the pause")
	}
	return w
}

// faultRun measures store redis under saturation while redis-server is
// paused with SIGSTOP and resumed with SIGCONT.
func (sb *sessBench) faultRun(ctx context.Context, n int) (_ *sessFault, err error) {
	o := sb.o
	logf := func(format string, a ...any) {
		fmt.Fprintf(sb.b.log, "dnsbench sessions: fault run %d/%d: %s\n", n, o.faultRounds, fmt.Sprintf(format, a...))
	}
	in, err := sb.start(ctx, sessRedis)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := in.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	if _, err := sb.checks(ctx, in.dnsAddr); err != nil {
		return nil, err
	}
	logf("pass over %d prefixes (dnsperf -n 1)", o.prefixes)
	f := &sessFault{Run: n}
	if f.Pass, err = sb.pass(ctx, in, fmt.Sprintf("fault-%d", n)); err != nil {
		return nil, err
	}
	cmd, outPath, errBuf, err := sb.dnsperfCmd(ctx, in.dnsAddr, fmt.Sprintf("fault-%d", n), o.faultDur, false, true, 0)
	if err != nil {
		return nil, err
	}

	// The poller reads /metrics every o.poll until stopped, each poll
	// timed at the moment its response came back.
	var t0 time.Time
	var mu sync.Mutex
	var polls []sessPoll
	var pollErr error
	pctx, pstop := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	startPoller := func() {
		go func() {
			defer close(pollDone)
			tick := time.NewTicker(o.poll)
			defer tick.Stop()
			limit := int((o.faultDur+40*time.Second)/o.poll) + 10
			for range limit {
				m, err := sessScrape(pctx, in.gslbd.metricsURL)
				now := time.Since(t0).Seconds()
				pt, perr := in.gslbd.cpuTicks()
				busy, all, cerr := sb.b.serverCoreTicks()
				mu.Lock()
				if err == nil {
					p := sessPollOf(now, m)
					if perr == nil && cerr == nil && sb.b.pinned {
						p.ProcTicks, p.CoreBusy, p.CoreAll = float64(pt), float64(busy), float64(all)
					}
					polls = append(polls, p)
				} else if pctx.Err() == nil && pollErr == nil {
					pollErr = err
				}
				mu.Unlock()
				select {
				case <-pctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}

	logf("dnsperf %s at saturation with -S 1; SIGSTOP redis-server (pid %d) at %s, SIGCONT at %s",
		o.faultDur, in.redis.cmd.Process.Pid, o.pauseAt, o.resumeAt)
	t0 = time.Now() // dnsperf's start, a hair before exec
	if err := cmd.Start(); err != nil {
		pstop()
		return nil, fmt.Errorf("dnsperf: %w", err)
	}
	startPoller()
	resumed := false
	defer func() {
		if !resumed {
			_ = in.redis.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	sleepUntil := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(t0.Add(d))):
			return nil
		}
	}
	var stopErr error
	if stopErr = sleepUntil(o.pauseAt); stopErr == nil {
		stopErr = in.redis.cmd.Process.Signal(syscall.SIGSTOP)
		f.PauseAt = time.Since(t0).Seconds()
	}
	if stopErr == nil {
		stopErr = sleepUntil(o.resumeAt)
	}
	// Resume whatever happened, before anything else.
	if cerr := in.redis.cmd.Process.Signal(syscall.SIGCONT); cerr == nil {
		resumed = true
		f.ResumeAt = time.Since(t0).Seconds()
	} else if stopErr == nil {
		stopErr = cerr
	}
	st, _, iv, werr := sb.dnsperfWait(ctx, cmd, outPath, errBuf, o.faultDur)
	// One more second of polls after dnsperf ends is of no use: stop.
	pstop()
	<-pollDone
	if stopErr != nil {
		return nil, fmt.Errorf("pausing redis-server: %w", stopErr)
	}
	if werr != nil {
		return nil, werr
	}
	if pollErr != nil {
		return nil, fmt.Errorf("polling /metrics: %w", pollErr)
	}
	f.DNSPerf = st
	f.Servfail = st.Rcodes["SERVFAIL"]
	f.NonNoError = st.Completed - st.Rcodes["NOERROR"]
	start := float64(t0.UnixNano()) / 1e9
	for i := range iv {
		iv[i].T = iv[i].At - start
	}
	f.Intervals = iv
	f.Polls = polls
	if len(polls) > 1 {
		f.ServerSF = polls[len(polls)-1].Servfail - polls[0].Servfail
	}
	f.sessFaultAnalysis = sessAnalyse(polls, f.PauseAt, f.ResumeAt)
	return f, nil
}

// Printing.

func (rep *sessReport) print(w io.Writer) {
	fmt.Fprintf(w, "dnsbench sessions, %s, %s, %d CPUs, %s, dnsperf %s", rep.Date, rep.Host, rep.CPUs, rep.Go, rep.DNSPerf)
	if rep.Redis != "" {
		fmt.Fprintf(w, ", redis-server %s", rep.Redis)
	}
	fmt.Fprintf(w, "\n%s\n", rep.PinNote)
	s := rep.Settings
	fmt.Fprintf(w, "%s A, ECS from %d client prefixes (%s .. %s), dnsperf -B -T %d -c %d -q %d, %gs per run at saturation\n",
		s.Name, s.Prefixes, s.First, s.Last, s.Threads, s.Clients, s.Outstanding, s.Duration)
	fmt.Fprintf(w, "configurations: %v\n\n", s.Configs)

	if len(rep.Runs) > 0 {
		type rk struct {
			round int
			load  string
		}
		off := map[rk]sessResult{}
		for _, r := range rep.Runs {
			if r.Mode == sessOff {
				off[rk{r.Round, r.Load}] = r
			}
		}
		fmt.Fprintln(w, "| round | sessions | load | QPS | QPS / off | lost | non-NOERROR | CPU µs/query | CPU / off | with affinity | Redis round trips/query (command+pipeline) | Redis EVALSHA/query | redis-server CPU µs/query | look-ups hit/miss/created/error/skipped | Redis errors | gslbd CPU % | dnsperf CPU % | other % on gslbd's core |")
		fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
		for _, r := range rep.Runs {
			qr, cr := "-", "-"
			if o, ok := off[rk{r.Round, r.Load}]; ok && r.Mode != sessOff && o.DNSPerf.QPS > 0 && o.CPUPerQ > 0 {
				qr, cr = fmt.Sprintf("%.2f", r.DNSPerf.QPS/o.DNSPerf.QPS), fmt.Sprintf("%.2f", r.CPUPerQ/o.CPUPerQ)
			}
			rt, ev, rcpu, rerr := "-", "-", "-", "-"
			if r.RoundTrips != nil {
				rt = fmt.Sprintf("%.3f (%d+%d)", r.RTPerQ, r.RoundTrips["command"], r.RoundTrips["pipeline"])
				rerr = strconv.FormatInt(r.RedisErrors, 10)
			}
			if r.RedisCalls != nil && r.DNSPerf.Completed > 0 {
				ev = fmt.Sprintf("%.3f", float64(r.RedisCalls["evalsha"])/float64(r.DNSPerf.Completed))
			}
			if r.RedisCPUPerQ != nil {
				rcpu = fmt.Sprintf("%.2f", *r.RedisCPUPerQ)
			}
			other := "-"
			if r.OtherPct != nil {
				other = fmt.Sprintf("%.0f", *r.OtherPct)
			}
			aff := "-"
			if v, ok := affinityShare(r.Lookups); ok {
				aff = fmt.Sprintf("%.0f%%", 100*v)
			}
			load := r.Load
			if r.Offered > 0 {
				load = fmt.Sprintf("%d/s", r.Offered)
			}
			fmt.Fprintf(w, "| %d | %s | %s | %.0f | %s | %d | %d | %.2f | %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %s |\n",
				r.Round, r.Mode, load, r.DNSPerf.QPS, qr, r.DNSPerf.Lost, r.NonNoError, r.CPUPerQ, cr, aff, rt, ev, rcpu,
				sessFmtLookups(r.Lookups), rerr, r.ServerPct, r.ClientPct, other)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| load | sessions | with affinity | median QPS | median CPU µs/query | Redis round trips/query | QPS / off per round | median | CPU / off per round | median | aim: QPS / off ≥ 0.90 |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---:|---|---:|---|")
		for _, s := range rep.Summary {
			aim := "-"
			if s.MeetsAim != nil {
				aim = map[bool]string{true: "met", false: "**not met**"}[*s.MeetsAim]
			}
			qm, cm, aff, rt := "-", "-", "-", "-"
			if len(s.QPSRatios) > 0 {
				qm, cm = fmt.Sprintf("%.2f", s.QPSRatio), fmt.Sprintf("%.2f", s.CPURatio)
			}
			if s.Mode != sessOff {
				aff = fmt.Sprintf("%.0f%%", 100*s.Affinity)
			}
			if s.Mode == sessRedis {
				rt = fmt.Sprintf("%.3f", s.RTPerQ)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.2f | %s | %s | %s | %s | %s | %s |\n", s.Load, s.Mode, aff, s.QPS, s.CPUPerQ, rt,
				sessFmtFloats(s.QPSRatios), qm, sessFmtFloats(s.CPURatios), cm, aim)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "The unmeasured pass before each run (dnsperf -n 1 over every prefix):")
		for _, r := range rep.Runs {
			if r.Load != "saturation" {
				continue
			}
			keys := ""
			if r.Pass.StoreKeys != nil {
				keys = fmt.Sprintf(", %d keys in Redis after it", *r.Pass.StoreKeys)
			}
			fmt.Fprintf(w, "  round %d %s: %d answered at %.0f QPS, look-ups %s%s\n", r.Round, r.Mode, r.Pass.Completed, r.Pass.QPS, sessFmtLookups(r.Pass.Lookups), keys)
		}
		fmt.Fprintln(w, "Redis commands during each measured run (INFO commandstats):")
		for _, r := range rep.Runs {
			if r.RedisCalls == nil {
				continue
			}
			keys := slices.Sorted(maps.Keys(r.RedisCalls))
			var parts []string
			for _, k := range keys {
				if strings.HasSuffix(k, ".usec") {
					continue
				}
				p := fmt.Sprintf("%s %d", k, r.RedisCalls[k])
				if n := r.RedisCalls[k]; n > 0 {
					p += fmt.Sprintf(" (%.1f µs each in Redis)", float64(r.RedisCalls[k+".usec"])/float64(n))
				}
				parts = append(parts, p)
			}
			fmt.Fprintf(w, "  round %d %s: %s; gslbd counted %d Redis errors, %d writes dropped\n", r.Round, r.Load, strings.Join(parts, ", "), r.RedisErrors, r.WritesDropped)
		}
		if len(rep.Runs) > 0 && len(rep.Runs[0].Checks) > 0 {
			fmt.Fprintln(w, "Check queries (before the pass), round 1:")
			for _, r := range rep.Runs {
				if r.Round == 1 && r.Load == "saturation" {
					fmt.Fprintf(w, "  %s: %s\n", r.Mode, strings.Join(r.Checks, "; "))
				}
			}
		}
		fmt.Fprintln(w)
	}
	for _, f := range rep.Faults {
		f.print(w)
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
}

func (f *sessFault) print(w io.Writer) {
	fmt.Fprintf(w, "Fault run %d (store redis): SIGSTOP at %.2f s, SIGCONT at %.2f s after dnsperf started\n", f.Run, f.PauseAt, f.ResumeAt)
	st := f.DNSPerf
	fmt.Fprintf(w, "dnsperf: %d sent, %d answered, %d lost, %.0f QPS over %.1f s; response codes %v; SERVFAIL %d (gslbd's own count %.0f)\n",
		st.Sent, st.Completed, st.Lost, st.QPS, st.RunTime, st.Rcodes, f.Servfail, f.ServerSF)
	fmt.Fprintf(w, "answer rate (gslbd's responses, 100 ms polls): before the pause %.0f/s; in the pause from +1 s %.0f/s (%.2f); after the breaker closed %.0f/s (%.2f); lowest 100 ms window in the pause %.0f/s (%.2f) ending at %.2f s\n",
		f.PreRate, f.PauseRate, sessDiv(f.PauseRate, f.PreRate), f.PostRate, sessDiv(f.PostRate, f.PreRate), f.MinRate, sessDiv(f.MinRate, f.PreRate), f.MinAt)
	fmtAt := func(p *float64) string {
		if p == nil {
			return "never"
		}
		return fmt.Sprintf("%.2f s", *p)
	}
	fmt.Fprintf(w, "first skipped or failed look-up: window ending %s; gslb_session_breaker_open read 1 at %s, 0 again at %s; look-ups going to Redis again in the window ending %s\n",
		fmtAt(f.FirstFailure), fmtAt(f.GaugeOpen), fmtAt(f.GaugeClosed), fmtAt(f.LookupsBack))
	fmtOK := func(p *bool) string {
		if p == nil {
			return "n/a"
		}
		return map[bool]string{true: "yes", false: "NO"}[*p]
	}
	fmt.Fprintf(w, "back above %.0f%% of the pre-pause rate within %g s of the breaker opening: %s (window ending %s; first failed look-up in the window ending %s); of the gauge reading 1: %s (%s); rate over the second after the first failure %.0f/s (%.2f)\n",
		100*sessRecoverShare, sessRecoverWithin, fmtOK(f.WithinFirst), fmtAt(f.BackFirst), fmtAt(f.FirstFailure), fmtOK(f.WithinGauge), fmtAt(f.BackGauge),
		f.FirstSecond, sessDiv(f.FirstSecond, f.PreRate))
	fmt.Fprintf(w, "stayed above %.0f%% from %.2f s to the resume; %d 100 ms windows in the pause below it:\n", 100*sessRecoverShare, f.Recovered, len(f.Low))
	for _, l := range f.Low {
		other := ""
		if l.OtherPct >= 0 {
			other = fmt.Sprintf(", %.0f%% of gslbd's core to other work", l.OtherPct)
		}
		fmt.Fprintf(w, "  low window %.2f-%.2f s: %.0f/s (%.2f)%s\n", l.Start, l.End, l.Rate, sessDiv(l.Rate, f.PreRate), other)
	}
	fmt.Fprintln(w, "dnsperf -S 1 (per second; the first interval is unreliable, dnsperf 2.10 printed it as about 0 in some runs; none for the last partial second):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t (s)\tQPS\tof pre-pause\t")
	for _, iv := range f.Intervals {
		fmt.Fprintf(tw, "%.2f\t%.0f\t%.2f\t\n", iv.T, iv.QPS, sessDiv(iv.QPS, f.PreRate))
	}
	tw.Flush()
	fmt.Fprintln(w, "100 ms polls (t: end of window; rate: answers/s; look-ups in the window):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t (s)\trate\tof pre\tbreaker\thit\tmiss\tcreated\terror\tskipped\tRedis RT\tRedis err\tother %\t")
	for i := 1; i < len(f.Polls); i++ {
		a, b := f.Polls[i-1], f.Polls[i]
		dt := b.T - a.T
		if dt <= 0 {
			continue
		}
		r := (b.Responses - a.Responses) / dt
		other := "-"
		if v := sessOtherPct(a, b); v >= 0 {
			other = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(tw, "%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n", b.T, r, sessDiv(r, f.PreRate), b.Breaker,
			b.Hit-a.Hit, b.Miss-a.Miss, b.Created-a.Created, b.Errored-a.Errored, b.Skipped-a.Skipped, b.RoundTrip-a.RoundTrip, b.RedisErrs-a.RedisErrs, other)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func sessDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func sessFmtLookups(l map[string]int64) string {
	if l == nil {
		return "-"
	}
	var p []string
	for _, res := range sessLookupResults {
		p = append(p, strconv.FormatInt(l[res], 10))
	}
	return strings.Join(p, "/")
}

func sessFmtFloats(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	var p []string
	for _, x := range v {
		p = append(p, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(p, ", ")
}
