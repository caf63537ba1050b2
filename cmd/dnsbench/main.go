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
//	go run ./cmd/dnsbench -gslbd bin/gslbd -duration 10s [-rounds 2] [-qps 20000] [-json FILE]
//
// The baseline is this same binary, run as "dnsbench baseline-server
// -listen 127.0.0.1:PORT", so that it is a separate process that can be
// pinned and measured exactly like gslbd.
package main

import (
	"context"
	"encoding/json"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
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
	if len(os.Args) > 1 && os.Args[1] == "baseline-server" {
		os.Exit(baselineServer(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	gslbd       string
	config      string
	name        string
	answer      string
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
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("dnsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gslbd, "gslbd", "bin/gslbd", "the gslbd binary to measure (make build writes bin/gslbd)")
	fs.StringVar(&o.config, "config", "configs/bench/static.yaml", "the configuration gslbd serves; its listen addresses are overridden")
	fs.StringVar(&o.name, "name", "static.bench.example.", "the name queried (type A); a static record in -config")
	fs.StringVar(&o.answer, "answer", "192.0.2.1", "the address the baseline answers for -name; must match -config")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured dnsperf run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured dnsperf run before each server's measurements (0: none)")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds, each measuring the baseline then gslbd")
	fs.IntVar(&o.threads, "T", 2, "dnsperf -T: client threads")
	fs.IntVar(&o.clients, "c", 8, "dnsperf -c: clients (source ports)")
	fs.IntVar(&o.outstanding, "q", 128, "dnsperf -q: queries outstanding")
	fs.IntVar(&o.qps, "qps", 0, "also run at this fixed offered rate (dnsperf -Q), with latency percentiles; 0: saturation only")
	fs.StringVar(&o.jsonFile, "json", "", "also write the results to this file as JSON")
	fs.BoolVar(&o.pin, "pin", true, "pin the server and dnsperf to different cores with taskset")
	fs.IntVar(&o.serverCPU, "server-cpu", 0, "the core the server is pinned to")
	fs.IntVar(&o.clientCPU, "client-cpu", 1, "the core dnsperf is pinned to")
	fs.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "the dnsperf binary")
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
		out, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(o.jsonFile, append(out, '\n'), 0o644)
		}
		if err != nil {
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
	if _, ok := dns.IsDomainName(o.name); !ok {
		return fmt.Sprintf("-name %q is not a domain name", o.name)
	}
	o.name = dns.Fqdn(o.name)
	return ""
}

// bench holds what every run shares.
type bench struct {
	o        options
	args     []string
	log      io.Writer
	tmp      string
	queries  string
	self     string
	pinned   bool
	pinNote  string
	dnsperfV string
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
	b.queries = filepath.Join(b.tmp, "queries.txt")
	if err := os.WriteFile(b.queries, []byte(strings.TrimSuffix(o.name, ".")+" A\n"), 0o644); err != nil {
		os.RemoveAll(b.tmp)
		return nil, err
	}
	return b, nil
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

// report is everything one invocation measured; it is also the JSON.
type report struct {
	Date     string    `json:"date"`
	Host     string    `json:"host"`
	CPUs     int       `json:"cpus"`
	Go       string    `json:"go"`
	DNSPerf  string    `json:"dnsperf_version"`
	Args     []string  `json:"args"`
	Pinned   bool      `json:"pinned"`
	PinNote  string    `json:"pinning"`
	Settings settings  `json:"settings"`
	Runs     []result  `json:"runs"`
	Summary  []summary `json:"summary"`
	Warnings []string  `json:"warnings,omitempty"`
}

type settings struct {
	Name        string  `json:"name"`
	Config      string  `json:"config"`
	Duration    float64 `json:"duration_s"`
	Warmup      float64 `json:"warmup_s"`
	Rounds      int     `json:"rounds"`
	Threads     int     `json:"dnsperf_threads"`
	Clients     int     `json:"dnsperf_clients"`
	Outstanding int     `json:"dnsperf_outstanding"`
	QPS         int     `json:"fixed_qps,omitempty"`
}

// result is one measured dnsperf run against one server.
type result struct {
	Round     int     `json:"round"`
	Server    string  `json:"server"`
	Mode      string  `json:"mode"` // "saturation" or "fixed"
	Offered   int     `json:"offered_qps,omitempty"`
	DNSPerf   stats   `json:"dnsperf"`
	CPUSec    float64 `json:"server_cpu_s"`
	CPUPerQ   float64 `json:"server_cpu_us_per_query"`
	ServerPct float64 `json:"server_cpu_percent"`
	ClientPct float64 `json:"client_cpu_percent"`
	// OtherPct is the share of the server's core that was busy but not
	// with the server: other processes on this shared machine, interrupts,
	// hypervisor steal. Only when pinned; it says how noisy the run was.
	OtherPct *float64     `json:"server_core_other_percent,omitempty"`
	Latency  *percentiles `json:"latency,omitempty"`
}

// summary compares the servers for one mode: medians over rounds, and
// gslbd/baseline ratios taken within each round, where the two ran
// seconds apart, then their median.
type summary struct {
	Mode             string    `json:"mode"`
	BaselineQPS      float64   `json:"baseline_qps_median"`
	GslbdQPS         float64   `json:"gslbd_qps_median"`
	BaselineCPUPerQ  float64   `json:"baseline_cpu_us_per_query_median"`
	GslbdCPUPerQ     float64   `json:"gslbd_cpu_us_per_query_median"`
	QPSRatios        []float64 `json:"qps_ratio_per_round"`
	CPURatios        []float64 `json:"cpu_per_query_ratio_per_round"`
	QPSRatio         float64   `json:"qps_ratio_median"`
	CPURatio         float64   `json:"cpu_per_query_ratio_median"`
	BaselineP99      float64   `json:"baseline_p99_us_median,omitempty"`
	GslbdP99         float64   `json:"gslbd_p99_us_median,omitempty"`
	ServerSaturation bool      `json:"servers_cpu_bound"`
	// Rounds where neither server's core had over noisyPct% of other work,
	// and the median ratios over those alone.
	QuietRounds   []int   `json:"quiet_rounds"`
	QuietQPSRatio float64 `json:"qps_ratio_quiet_median,omitempty"`
	QuietCPURatio float64 `json:"cpu_per_query_ratio_quiet_median,omitempty"`
}

func (b *bench) run(ctx context.Context) (*report, error) {
	host, _ := os.Hostname()
	rep := &report{
		Date: time.Now().UTC().Format(time.RFC3339), Host: host, CPUs: runtime.NumCPU(),
		Go: runtime.Version(), DNSPerf: b.dnsperfV, Args: b.args, Pinned: b.pinned, PinNote: b.pinNote,
		Settings: settings{
			Name: b.o.name, Config: b.o.config, Duration: b.o.duration.Seconds(), Warmup: b.o.warmup.Seconds(),
			Rounds: b.o.rounds, Threads: b.o.threads, Clients: b.o.clients, Outstanding: b.o.outstanding, QPS: b.o.qps,
		},
	}
	fmt.Fprintf(b.log, "dnsbench: %s\n", b.pinNote)
	for round := 1; round <= b.o.rounds; round++ {
		for _, server := range []string{"baseline", "gslbd"} {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("interrupted: %w", err)
			}
			res, err := b.measure(ctx, round, server)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round, server, err)
			}
			rep.Runs = append(rep.Runs, res...)
		}
	}
	rep.summarise()
	return rep, nil
}

// measure starts one server, runs the warm-up and the measured dnsperf
// runs against it, and stops it.
func (b *bench) measure(ctx context.Context, round int, server string) (_ []result, err error) {
	p, port, err := b.startServer(ctx, server)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := p.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	if b.o.warmup > 0 {
		fmt.Fprintf(b.log, "dnsbench: round %d/%d: %s on port %d: warm-up %s\n", round, b.o.rounds, server, port, b.o.warmup)
		if _, _, err := b.dnsperfRun(ctx, port, b.o.warmup, 0, fmt.Sprintf("%d-%s-warmup", round, server)); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	modes := []int{0}
	if b.o.qps > 0 {
		modes = append(modes, b.o.qps)
	}
	var out []result
	for _, qps := range modes {
		r := result{Round: round, Server: server, Mode: "saturation", Offered: qps}
		if qps > 0 {
			r.Mode = "fixed"
		}
		fmt.Fprintf(b.log, "dnsbench: round %d/%d: %s on port %d: %s %s\n", round, b.o.rounds, server, port, r.Mode, b.o.duration)
		t0, err := p.cpuTicks()
		if err != nil {
			return nil, err
		}
		cb0, ct0, cerr0 := b.serverCoreTicks()
		w0 := time.Now()
		st, clientCPU, err := b.dnsperfRun(ctx, port, b.o.duration, qps, fmt.Sprintf("%d-%s-%s", round, server, r.Mode))
		if err != nil {
			return nil, err
		}
		t1, err := p.cpuTicks()
		if err != nil {
			return nil, err
		}
		wall := time.Since(w0).Seconds()
		cb1, ct1, cerr1 := b.serverCoreTicks()
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
		}
		p, err := b.startProc(server, argv)
		if err != nil {
			return nil, 0, err
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
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, once done is closed
	out  *tail
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

// dnsperfRun runs dnsperf for d against port, at most qps queries per
// second when qps > 0, and returns its statistics and its own CPU time.
// Output goes to files and is parsed afterwards, so that this process
// does no work while the measurement runs.
func (b *bench) dnsperfRun(ctx context.Context, port int, d time.Duration, qps int, tag string) (stats, float64, error) {
	argv := []string{b.o.dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", b.queries,
		"-l", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		"-T", strconv.Itoa(b.o.threads), "-c", strconv.Itoa(b.o.clients), "-q", strconv.Itoa(b.o.outstanding)}
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

// noisyPct is how much of the server's core may go to other work before a
// run counts as disturbed.
const noisyPct = 10

func (rep *report) summarise() {
	var noisy []string
	for _, r := range rep.Runs {
		if r.OtherPct != nil && *r.OtherPct > noisyPct {
			noisy = append(noisy, fmt.Sprintf("round %d %s %s %.0f%%", r.Round, r.Server, r.Mode, *r.OtherPct))
		}
		if r.DNSPerf.Lost > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s %s: %d queries lost", r.Round, r.Server, r.Mode, r.DNSPerf.Lost))
		}
		if ok := r.DNSPerf.Rcodes["NOERROR"]; ok != r.DNSPerf.Completed {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s %s: %d of %d answers were not NOERROR: %v",
				r.Round, r.Server, r.Mode, r.DNSPerf.Completed-ok, r.DNSPerf.Completed, r.DNSPerf.Rcodes))
		}
	}
	if len(noisy) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("noisy runs, where over %d%% of the server's core went to other work: %s",
			noisyPct, strings.Join(noisy, ", ")))
	}
	for _, mode := range []string{"saturation", "fixed"} {
		byRound := map[int]map[string]result{}
		for _, r := range rep.Runs {
			if r.Mode == mode {
				if byRound[r.Round] == nil {
					byRound[r.Round] = map[string]result{}
				}
				byRound[r.Round][r.Server] = r
			}
		}
		if len(byRound) == 0 {
			continue
		}
		s := summary{Mode: mode, ServerSaturation: true}
		var bq, gq, bc, gc, bp, gp, quietQ, quietC []float64
		for round := 1; round <= rep.Settings.Rounds; round++ {
			base, gs := byRound[round]["baseline"], byRound[round]["gslbd"]
			bq, gq = append(bq, base.DNSPerf.QPS), append(gq, gs.DNSPerf.QPS)
			bc, gc = append(bc, base.CPUPerQ), append(gc, gs.CPUPerQ)
			qr, cr := ratio(gs.DNSPerf.QPS, base.DNSPerf.QPS), ratio(gs.CPUPerQ, base.CPUPerQ)
			s.QPSRatios, s.CPURatios = append(s.QPSRatios, qr), append(s.CPURatios, cr)
			if base.Latency != nil && gs.Latency != nil {
				bp, gp = append(bp, base.Latency.P99), append(gp, gs.Latency.P99)
			}
			if quiet(base) && quiet(gs) {
				s.QuietRounds = append(s.QuietRounds, round)
				quietQ, quietC = append(quietQ, qr), append(quietC, cr)
			}
			// Below 90% of its core a server had capacity left: dnsperf or
			// other load, not the server, set the QPS.
			if base.ServerPct < 90 || gs.ServerPct < 90 {
				s.ServerSaturation = false
			}
			if base.DNSPerf.ResponseSize != gs.DNSPerf.ResponseSize {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d %s: responses differ in size (baseline %d bytes, gslbd %d): not like for like",
					round, mode, base.DNSPerf.ResponseSize, gs.DNSPerf.ResponseSize))
			}
		}
		s.BaselineQPS, s.GslbdQPS = median(bq), median(gq)
		s.BaselineCPUPerQ, s.GslbdCPUPerQ = median(bc), median(gc)
		s.QPSRatio, s.CPURatio = median(s.QPSRatios), median(s.CPURatios)
		s.QuietQPSRatio, s.QuietCPURatio = median(quietQ), median(quietC)
		s.BaselineP99, s.GslbdP99 = median(bp), median(gp)
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
	st := rep.Settings
	fmt.Fprintf(w, "query %s A; dnsperf -T %d -c %d -q %d; %gs per run after a %gs warm-up; rounds: %d\n\n",
		st.Name, st.Threads, st.Clients, st.Outstanding, st.Duration, st.Warmup, st.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tserver\tmode\tQPS\tlost\tavg µs\tp50 µs\tp99 µs\tsrv CPU µs/q\tQPS/core\tsrv CPU%\tdnsperf CPU%\tother% srv core\t")
	for _, r := range rep.Runs {
		p50, p99, other := "-", "-", "-"
		if r.OtherPct != nil {
			other = fmt.Sprintf("%.0f", *r.OtherPct)
		}
		if r.Latency != nil {
			p50, p99 = fmt.Sprintf("%.0f", r.Latency.P50), fmt.Sprintf("%.0f", r.Latency.P99)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.0f\t%d\t%.0f\t%s\t%s\t%.2f\t%s\t%.0f\t%.0f\t%s\t\n",
			r.Round, r.Server, mode(r), r.DNSPerf.QPS, r.DNSPerf.Lost, r.DNSPerf.AvgLatency*1e6, p50, p99,
			r.CPUPerQ, perCore(r), r.ServerPct, r.ClientPct, other)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, s := range rep.Summary {
		m := s.Mode
		if m == "fixed" {
			m = fmt.Sprintf("fixed %d QPS", st.QPS)
		}
		fmt.Fprintf(w, "%s, median over rounds (%d):\n", m, len(s.QPSRatios))
		fmt.Fprintf(w, "  baseline  %8.0f QPS  %6.2f CPU µs/query", s.BaselineQPS, s.BaselineCPUPerQ)
		if s.BaselineP99 > 0 {
			fmt.Fprintf(w, "  p99 %.0f µs", s.BaselineP99)
		}
		fmt.Fprintf(w, "\n  gslbd     %8.0f QPS  %6.2f CPU µs/query", s.GslbdQPS, s.GslbdCPUPerQ)
		if s.GslbdP99 > 0 {
			fmt.Fprintf(w, "  p99 %.0f µs", s.GslbdP99)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  gslbd/baseline CPU µs/query: %s per round, median %.2f", fmtRatios(s.CPURatios), s.CPURatio)
		if s.Mode == "saturation" {
			// 90% of the baseline's ceiling is 1/0.9 of its cost per query.
			fmt.Fprintf(w, " (aim <= %.2f)\n", 1/0.9)
			fmt.Fprintf(w, "  gslbd/baseline QPS:          %s per round, median %.2f (aim >= 0.90)\n", fmtRatios(s.QPSRatios), s.QPSRatio)
		} else {
			fmt.Fprintln(w)
		}
		if rep.Pinned {
			if len(s.QuietRounds) == 0 {
				fmt.Fprintf(w, "  quiet rounds (no more than %d%% other work on the server's core for either server): none\n", noisyPct)
			} else {
				fmt.Fprintf(w, "  quiet rounds (no more than %d%% other work on the server's core for either server): %s; median CPU ratio %.2f, QPS ratio %.2f\n",
					noisyPct, fmtInts(s.QuietRounds), s.QuietCPURatio, s.QuietQPSRatio)
			}
		}
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
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
