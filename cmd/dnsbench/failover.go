package main

// dnsbench failover: how long after a datacenter's health endpoint starts
// failing do gslbd's answers move to the backup, and back after it
// recovers, under dnsperf load.
//
//	go run ./cmd/dnsbench failover -gslbd bin/gslbd [-rounds 10] [-qps 5000] [-mode 503|hang|stop] [-json FILE]
//
// It starts two HTTP health endpoints in this process (127.0.0.1, free
// ports), writes a configuration with two datacenters, primary and
// backup, each one endpoint checked over HTTP (interval 1s, timeout
// 500ms, fall 3, rise 2, health.jitter 0.1 by default), and a failover
// service www.failover.test. over them, starts gslbd on it, and runs
// dnsperf at a fixed rate (-qps) against that name for the whole run. A
// miekg/dns client meanwhile asks the name every -poll (10 ms) and
// records every answer. Each round waits a random part of an interval
// (so the failure lands anywhere between two probes), makes the
// primary's endpoint fail (-mode: answer 503; hang, so that each probe
// runs into its timeout; or stop listening, so that it is refused),
// waits for the answers to move to the backup and stay there for -hold,
// waits a random part of an interval again, makes the endpoint healthy
// again, and waits for the answers to come back and stay for -hold.
// Damping is off in the configuration (health.damping.max_transitions
// 0): with the default, a fifth transition within 5 minutes would hold
// the primary down for 2.
//
// Reported per round and as medians: "first", from the instant the
// endpoint changed to the first answer (the poll's reply) with the other
// address; "all", to the first answer after which every answer in the
// hold had it; "failed probe #fall" and "good probe #rise", when the
// endpoint received the fall-th failing (rise-th good) probe in a row
// after the change, from its own request log (none when stopped); the
// bound, interval × fall + timeout + jitter for failover, interval ×
// rise + timeout + jitter for failback, where the jitter term is fall
// (rise) times health.jitter × interval, the most the probes in between
// can be spread late. Also dnsperf's statistics over the whole run:
// every response code and lost queries, which should be NOERROR only
// and none.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
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
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
)

const (
	foName    = "www.failover.test."
	foPrimary = "192.0.2.1"
	foBackup  = "192.0.2.2"
)

type foOptions struct {
	gslbd    string
	dnsperf  string
	rounds   int
	qps      int
	interval time.Duration
	timeout  time.Duration
	fall     int
	rise     int
	jitter   float64
	poll     time.Duration
	hold     time.Duration
	threads  int
	clients  int
	outst    int
	jsonFile string
	keep     bool
	mode     string
}

func (o *foOptions) check() string {
	switch {
	case o.rounds < 1 || o.rounds > 100:
		return "-rounds must be between 1 and 100"
	case o.qps < 0:
		return "-qps must not be negative (0: no dnsperf load)"
	case o.interval < 100*time.Millisecond:
		return "-interval must be at least 100ms (the configuration's minimum)"
	case o.timeout <= 0 || o.timeout >= o.interval:
		return "-timeout must be positive and shorter than -interval"
	case o.fall < 1 || o.rise < 1:
		return "-fall and -rise must be at least 1"
	case o.jitter < 0 || o.jitter > 0.5:
		return "-jitter must be within 0..0.5"
	case o.poll < time.Millisecond || o.poll > time.Second:
		return "-poll must be between 1ms and 1s"
	case o.hold < 0:
		return "-hold must not be negative"
	case o.threads < 1 || o.clients < 1 || o.outst < 1:
		return "-T, -c and -q must be positive"
	case !slices.Contains([]string{"503", "hang", "stop"}, o.mode):
		return "-mode must be 503, hang or stop"
	}
	return ""
}

// bounds are the documented worst cases: fall (rise) intervals, each
// stretched by up to jitter × interval, and one probe's timeout.
func (o *foOptions) bounds() (down, up time.Duration) {
	f := func(n int) time.Duration {
		return time.Duration(n)*o.interval + o.timeout + time.Duration(float64(n)*o.jitter*float64(o.interval))
	}
	return f(o.fall), f(o.rise)
}

func runFailover(args []string, stdout, stderr io.Writer) int {
	var o foOptions
	fs := flag.NewFlagSet("dnsbench failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gslbd, "gslbd", "bin/gslbd", "the gslbd binary (make build writes bin/gslbd)")
	fs.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "the dnsperf binary")
	fs.IntVar(&o.rounds, "rounds", 5, "failovers measured, each followed by a failback")
	fs.IntVar(&o.qps, "qps", 5000, "dnsperf's fixed rate (-Q) for the whole run; 0: no dnsperf")
	fs.DurationVar(&o.interval, "interval", time.Second, "the check's interval")
	fs.DurationVar(&o.timeout, "timeout", 500*time.Millisecond, "the check's timeout")
	fs.IntVar(&o.fall, "fall", 3, "the check's fall")
	fs.IntVar(&o.rise, "rise", 2, "the check's rise")
	fs.Float64Var(&o.jitter, "jitter", 0.1, "health.jitter")
	fs.DurationVar(&o.poll, "poll", 10*time.Millisecond, "how often the name is asked with the miekg/dns client")
	fs.DurationVar(&o.hold, "hold", 2*time.Second, "how long answers must stay moved before the next change")
	fs.IntVar(&o.threads, "T", 1, "dnsperf -T")
	fs.IntVar(&o.clients, "c", 4, "dnsperf -c")
	fs.IntVar(&o.outst, "q", 100, "dnsperf -q")
	fs.StringVar(&o.jsonFile, "json", "", "also write the results to this file as JSON")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configuration, dnsperf output)")
	fs.StringVar(&o.mode, "mode", "503", "how the primary's endpoint fails: 503 (answers 503), hang (answers nothing: the probe times out), stop (closed: connection refused)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnsbench failover: unexpected arguments: %q\n", fs.Args())
		return exitUsage
	}
	if msg := o.check(); msg != "" {
		fmt.Fprintf(stderr, "dnsbench failover: %s\n", msg)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := failover(ctx, o, args, stderr)
	if rep != nil {
		rep.print(stdout)
		if o.jsonFile != "" {
			if jerr := writeJSONFile(o.jsonFile, rep); jerr != nil && err == nil {
				err = jerr
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "dnsbench failover: %v\n", err)
		return exitFail
	}
	return exitOK
}

// healthServer is one datacenter's health endpoint: healthy, or failing
// in one of the -mode ways, as told, with a log of when each probe
// arrived and whether it was answered healthy.
type healthServer struct {
	addr  netip.AddrPort
	state atomic.Int32 // a serve* constant

	mu  sync.Mutex
	srv *http.Server // nil while stopped
	log []probeHit
}

const (
	serveOK   = iota
	serve503  // answer 503
	serveHang // answer nothing until the prober gives up
)

type probeHit struct {
	At time.Time
	OK bool
}

func startHealthServer() (*healthServer, error) {
	h := &healthServer{}
	if err := h.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return h, nil
}

// listen serves on addr; "127.0.0.1:0" picks the port the first time,
// and a restart binds the same one (Go listeners set SO_REUSEADDR).
func (h *healthServer) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(h.serve)}
	h.mu.Lock()
	h.addr, h.srv = netip.MustParseAddrPort(ln.Addr().String()), srv
	h.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

func (h *healthServer) serve(w http.ResponseWriter, r *http.Request) {
	st := h.state.Load()
	h.mu.Lock()
	h.log = append(h.log, probeHit{At: time.Now(), OK: st == serveOK})
	h.mu.Unlock()
	switch st {
	case serve503:
		http.Error(w, "down", http.StatusServiceUnavailable)
	case serveHang:
		<-r.Context().Done() // the probe's timeout closes the connection
	default:
		io.WriteString(w, `{"status":"ok"}`)
	}
}

// fail makes the endpoint fail as mode says: "503", "hang", or "stop"
// (listener and connections closed: connection refused).
func (h *healthServer) fail(mode string) {
	switch mode {
	case "503":
		h.state.Store(serve503)
	case "hang":
		h.state.Store(serveHang)
	case "stop":
		h.mu.Lock()
		srv := h.srv
		h.srv = nil
		h.mu.Unlock()
		srv.Close()
	}
}

// restore makes it healthy again.
func (h *healthServer) restore() error {
	h.state.Store(serveOK)
	h.mu.Lock()
	stopped := h.srv == nil
	h.mu.Unlock()
	if stopped {
		return h.listen(h.addr.String())
	}
	return nil
}

func (h *healthServer) close() {
	h.mu.Lock()
	srv := h.srv
	h.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (h *healthServer) hits() []probeHit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

// failoverConfig is gslbd's configuration for the run; its listen
// addresses are set on the command line.
func failoverConfig(o foOptions, primary, backup netip.AddrPort) string {
	return fmt.Sprintf(`# Written by dnsbench failover.
instance: {name: dnsbench-failover}
log: {level: warn}
health:
  jitter: %v
  # Off: a fifth transition within the window would hold the primary
  # down (flap damping), and every round makes two.
  damping: {max_transitions: 0}
health_checks:
  web: {type: http, path: /health, interval: %s, timeout: %s, rise: %d, fall: %d}
datacenters:
  - id: primary
    lat: 50.1
    lon: 8.7
    endpoints: [{address: %s, check: web, check_address: "%s"}]
  - id: backup
    lat: 39.0
    lon: -77.5
    endpoints: [{address: %s, check: web, check_address: "%s"}]
zones:
  - origin: failover.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: failover, datacenters: [primary, backup], ttl: 30}
`, o.jitter, o.interval, o.timeout, o.rise, o.fall, foPrimary, primary, foBackup, backup)
}

// sample is one poll: when it was sent and answered, and what came back.
type sample struct {
	Sent, Recv time.Time
	Answer     string // the A records, sorted, space-separated; "" on error
	Rcode      int
	Err        bool
}

// poller asks the name every interval until stopped.
type poller struct {
	mu      sync.Mutex
	samples []sample
}

func (p *poller) run(ctx context.Context, addr string, every time.Duration) {
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		q := new(dns.Msg)
		q.SetQuestion(foName, dns.TypeA)
		s := sample{Sent: time.Now()}
		r, _, err := c.ExchangeContext(ctx, q, addr)
		s.Recv = time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Err = true
		} else {
			s.Rcode = r.Rcode
			s.Answer = answerOf(r)
		}
		p.mu.Lock()
		p.samples = append(p.samples, s)
		p.mu.Unlock()
	}
}

func answerOf(r *dns.Msg) string {
	var as []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			as = append(as, a.A.String())
		}
	}
	slices.Sort(as)
	return strings.Join(as, " ")
}

func (p *poller) since(t time.Time) []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.samples, t, func(s sample, t time.Time) int { return s.Sent.Compare(t) })
	return slices.Clone(p.samples[i:])
}

// waitMoved polls the poller's samples until, since from, answers have
// been want for hold (true), or until limit passes (false).
func (p *poller) waitMoved(ctx context.Context, from time.Time, want string, hold, limit time.Duration) bool {
	deadline := from.Add(limit)
	for time.Now().Before(deadline) {
		if m := analyse(p.since(from), from, want); m.First >= 0 && m.All >= 0 && time.Since(from.Add(m.All)) >= hold {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// move is what the answers did after one change.
type move struct {
	// First: from the change to the reply of the first poll answered with
	// the new address; All: to the reply of the first poll from which on
	// every answer had it. -1: never.
	First, All time.Duration `json:"-"` // in foRound, as seconds
	// Flips counts answers with the new address followed again by one
	// without it (should be 0).
	Flips int `json:"flips"`
}

// analyse reads the polls sent since the change at t0, until the next
// change, for the answer want.
func analyse(samples []sample, t0 time.Time, want string) move {
	m := move{First: -1, All: -1}
	lastOther := -1
	seen := false
	for i, s := range samples {
		if s.Err {
			continue
		}
		if s.Answer == want {
			if m.First < 0 {
				m.First = s.Recv.Sub(t0)
			}
			seen = true
			continue
		}
		if seen {
			m.Flips++
			seen = false
		}
		lastOther = i
	}
	for _, s := range samples[lastOther+1:] {
		if !s.Err && s.Answer == want {
			m.All = s.Recv.Sub(t0)
			break
		}
	}
	return m
}

// detected is when, after t0, the endpoint answered its n-th probe with
// the new status ok, counted from the first probe after t0; -1 if it
// did not within hits.
func detected(hits []probeHit, t0 time.Time, ok bool, n int) time.Duration {
	k := 0
	for _, h := range hits {
		if h.At.Before(t0) {
			continue
		}
		if h.OK != ok {
			k = 0
			continue
		}
		if k++; k == n {
			return h.At.Sub(t0)
		}
	}
	return -1
}

type foRound struct {
	Round     int       `json:"round"`
	DownAt    time.Time `json:"down_at"`
	UpAt      time.Time `json:"up_at"`
	Failover  move      `json:"failover"`
	Failback  move      `json:"failback"`
	DetectDn  float64   `json:"failover_detect_s"` // the fall-th failing probe received
	DetectUp  float64   `json:"failback_detect_s"` // the rise-th good probe received
	FailoverS float64   `json:"failover_first_s"`
	FailAllS  float64   `json:"failover_all_s"`
	FailbackS float64   `json:"failback_first_s"`
	BackAllS  float64   `json:"failback_all_s"`
	Note      string    `json:"note,omitempty"`
}

type foReport struct {
	Date    string    `json:"date"`
	Host    string    `json:"host"`
	CPUs    int       `json:"cpus"`
	Go      string    `json:"go"`
	DNSPerf string    `json:"dnsperf_version"`
	Args    []string  `json:"args"`
	Check   string    `json:"check"`
	Mode    string    `json:"mode"`
	Fall    int       `json:"fall"`
	Rise    int       `json:"rise"`
	QPS     int       `json:"dnsperf_qps"`
	BoundDn float64   `json:"failover_bound_s"`
	BoundUp float64   `json:"failback_bound_s"`
	Rounds  []foRound `json:"rounds"`
	Median  struct {
		FailoverFirst  float64 `json:"failover_first_s"`
		FailoverAll    float64 `json:"failover_all_s"`
		FailoverDetect float64 `json:"failover_detect_s"`
		FailbackFirst  float64 `json:"failback_first_s"`
		FailbackAll    float64 `json:"failback_all_s"`
		FailbackDetect float64 `json:"failback_detect_s"`
	} `json:"median"`
	Max struct {
		FailoverAll float64 `json:"failover_all_s"`
		FailbackAll float64 `json:"failback_all_s"`
	} `json:"max"`
	Polls    int            `json:"polls"`
	PollErrs int            `json:"poll_errors"`
	PollRC   map[string]int `json:"poll_rcodes"`
	Flips    int            `json:"flips"`
	// DNSPerf is dnsperf's statistics over the whole run (failovers,
	// failbacks and the time between); Interrupted is the queries still
	// outstanding when it was stopped.
	DNSPerfStats *stats   `json:"dnsperf,omitempty"`
	Interrupted  int64    `json:"dnsperf_interrupted"`
	Warnings     []string `json:"warnings,omitempty"`
}

func failover(ctx context.Context, o foOptions, args []string, log io.Writer) (*foReport, error) {
	host, _ := os.Hostname()
	rep := &foReport{Date: time.Now().UTC().Format(time.RFC3339), Host: host, CPUs: runtime.NumCPU(), Go: runtime.Version(),
		Args: args, QPS: o.qps, PollRC: map[string]int{}, Fall: o.fall, Rise: o.rise, Mode: o.mode,
		Check: fmt.Sprintf("http, interval %s, timeout %s, fall %d, rise %d, jitter %v", o.interval, o.timeout, o.fall, o.rise, o.jitter)}
	bDown, bUp := o.bounds()
	rep.BoundDn, rep.BoundUp = bDown.Seconds(), bUp.Seconds()
	if o.qps > 0 {
		p, err := exec.LookPath(o.dnsperf)
		if err != nil {
			return nil, fmt.Errorf("%s not found: install the Debian package dnsperf (apt-get install dnsperf)", o.dnsperf)
		}
		o.dnsperf = p
		rep.DNSPerf = dnsperfVersion(p)
	}
	if fi, err := os.Stat(o.gslbd); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("gslbd binary %s not found: run make build", o.gslbd)
	}
	tmp, err := os.MkdirTemp("", "dnsbench-failover-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(log, "dnsbench failover: keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	primary, err := startHealthServer()
	if err != nil {
		return nil, err
	}
	defer primary.close()
	backup, err := startHealthServer()
	if err != nil {
		return nil, err
	}
	defer backup.close()
	cfg := filepath.Join(tmp, "gslbd.yaml")
	if err := os.WriteFile(cfg, []byte(failoverConfig(o, primary.addr, backup.addr)), 0o644); err != nil {
		return nil, err
	}

	// The benchmark's own server start: free ports, retries, /readyz and
	// the answer checked; never pinned here.
	b := &bench{o: options{gslbd: o.gslbd, config: cfg, name: foName, answer: foPrimary}, log: log, tmp: tmp,
		pinNote: "not pinned"}
	p, port, err := b.startServer(ctx, "gslbd")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := p.stop(); err != nil {
			fmt.Fprintf(log, "dnsbench failover: %v\n", err)
		}
	}()
	dnsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	fmt.Fprintf(log, "dnsbench failover: gslbd (pid %d) on %s; health endpoints primary %s, backup %s; bounds %s down, %s up\n",
		p.cmd.Process.Pid, dnsAddr, primary.addr, backup.addr, bDown, bUp)

	pollCtx, stopPoll := context.WithCancel(ctx)
	var pl poller
	pollDone := make(chan struct{})
	go func() { pl.run(pollCtx, dnsAddr, o.poll); close(pollDone) }()
	defer func() { stopPoll(); <-pollDone }()

	var dp *dnsperfBG
	if o.qps > 0 {
		// Longer than the rounds can take; stopped with SIGINT when done.
		limit := 10*time.Second + time.Duration(o.rounds)*(3*(bDown+bUp)+2*o.hold+o.interval+time.Second)
		if dp, err = startDNSPerf(o, tmp, port, limit); err != nil {
			return nil, err
		}
		defer dp.kill()
		time.Sleep(time.Second) // dnsperf up to rate before the first change
	}

	var runErr error
	for r := 1; r <= o.rounds; r++ {
		if err := ctx.Err(); err != nil {
			runErr = fmt.Errorf("interrupted: %w", err)
			break
		}
		if err := p.exited(); err != nil {
			runErr = err
			break
		}
		// Land the change anywhere between two probes.
		time.Sleep(time.Duration(rand.Int64N(int64(o.interval))))
		rd := foRound{Round: r, DownAt: time.Now()}
		primary.fail(o.mode)
		moved := pl.waitMoved(ctx, rd.DownAt, foBackup, o.hold, 3*bDown+o.hold)
		// The hold ended a fixed time after the probe that moved the
		// answers: land the recovery anywhere between two probes too.
		time.Sleep(time.Duration(rand.Int64N(int64(o.interval))))
		rd.UpAt = time.Now()
		if err := primary.restore(); err != nil {
			runErr = fmt.Errorf("round %d: restarting the primary's health endpoint on %s: %w", r, primary.addr, err)
			break
		}
		if !moved {
			rd.Note = fmt.Sprintf("answers did not stay on the backup for %s within %s", o.hold, 3*bDown+o.hold)
		}
		back := pl.waitMoved(ctx, rd.UpAt, foPrimary, o.hold, 3*bUp+o.hold)
		if !back {
			rd.Note = strings.TrimPrefix(rd.Note+"; ", "; ") + fmt.Sprintf("answers did not stay on the primary for %s within %s", o.hold, 3*bUp+o.hold)
		}
		nextAt := time.Now()
		downSamples := pl.since(rd.DownAt)
		downSamples = downSamples[:countBefore(downSamples, rd.UpAt)]
		upSamples := pl.since(rd.UpAt)
		upSamples = upSamples[:countBefore(upSamples, nextAt)]
		rd.Failover, rd.Failback = analyse(downSamples, rd.DownAt, foBackup), analyse(upSamples, rd.UpAt, foPrimary)
		hits := primary.hits()
		rd.DetectDn = secs(detected(hits, rd.DownAt, false, o.fall))
		rd.DetectUp = secs(detected(hits, rd.UpAt, true, o.rise))
		rd.FailoverS, rd.FailAllS = secs(rd.Failover.First), secs(rd.Failover.All)
		rd.FailbackS, rd.BackAllS = secs(rd.Failback.First), secs(rd.Failback.All)
		rep.Rounds = append(rep.Rounds, rd)
		fmt.Fprintf(log, "dnsbench failover: round %d/%d: failover %.3fs (all %.3fs, failed probe #%d at %.3fs), failback %.3fs (all %.3fs, good probe #%d at %.3fs) %s\n",
			r, o.rounds, rd.FailoverS, rd.FailAllS, o.fall, rd.DetectDn, rd.FailbackS, rd.BackAllS, o.rise, rd.DetectUp, rd.Note)
		if !moved || !back {
			runErr = fmt.Errorf("round %d: %s", r, rd.Note)
			break
		}
	}

	if dp != nil {
		st, interrupted, err := dp.stop()
		if err != nil && runErr == nil {
			runErr = err
		}
		if err == nil {
			rep.DNSPerfStats, rep.Interrupted = &st, interrupted
		}
	}
	stopPoll()
	<-pollDone
	for _, s := range pl.since(time.Time{}) {
		rep.Polls++
		if s.Err {
			rep.PollErrs++
			continue
		}
		rep.PollRC[dns.RcodeToString[s.Rcode]]++
	}
	rep.summarise(o)
	return rep, runErr
}

func countBefore(s []sample, t time.Time) int {
	i, _ := slices.BinarySearchFunc(s, t, func(s sample, t time.Time) int { return s.Sent.Compare(t) })
	return i
}

func secs(d time.Duration) float64 {
	if d < 0 {
		return -1
	}
	return d.Seconds()
}

func (rep *foReport) summarise(o foOptions) {
	var fo, foAll, foDet, fb, fbAll, fbDet []float64
	for _, r := range rep.Rounds {
		rep.Flips += r.Failover.Flips + r.Failback.Flips
		add := func(dst *[]float64, v float64) {
			if v >= 0 {
				*dst = append(*dst, v)
			}
		}
		add(&fo, r.FailoverS)
		add(&foAll, r.FailAllS)
		add(&foDet, r.DetectDn)
		add(&fb, r.FailbackS)
		add(&fbAll, r.BackAllS)
		add(&fbDet, r.DetectUp)
		if r.FailAllS > rep.BoundDn {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d: failover took %.3fs, over the bound of %.3fs", r.Round, r.FailAllS, rep.BoundDn))
		}
		if r.BackAllS > rep.BoundUp {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("round %d: failback took %.3fs, over the bound of %.3fs", r.Round, r.BackAllS, rep.BoundUp))
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return -1 // printed "-"
		}
		return median(v)
	}
	rep.Median.FailoverFirst, rep.Median.FailoverAll, rep.Median.FailoverDetect = med(fo), med(foAll), med(foDet)
	rep.Median.FailbackFirst, rep.Median.FailbackAll, rep.Median.FailbackDetect = med(fb), med(fbAll), med(fbDet)
	if len(foAll) > 0 {
		rep.Max.FailoverAll = slices.Max(foAll)
	}
	if len(fbAll) > 0 {
		rep.Max.FailbackAll = slices.Max(fbAll)
	}
	if rep.Flips > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d times an answer went back to the old address after the new one", rep.Flips))
	}
	if rep.PollErrs > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d of %d polls got no answer", rep.PollErrs, rep.Polls))
	}
	for rc, n := range rep.PollRC {
		if rc != "NOERROR" {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d polls answered %s", n, rc))
		}
	}
	if st := rep.DNSPerfStats; st != nil {
		if st.Lost > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("dnsperf lost %d of %d queries", st.Lost, st.Sent))
		}
		if ok := st.Rcodes["NOERROR"]; ok != st.Completed {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("dnsperf: %d of %d answers were not NOERROR: %v", st.Completed-ok, st.Completed, st.Rcodes))
		}
	}
}

func (rep *foReport) print(w io.Writer) {
	fmt.Fprintf(w, "dnsbench failover, %s, %s, %d CPUs, %s, dnsperf %s\n", rep.Date, rep.Host, rep.CPUs, rep.Go, rep.DNSPerf)
	fmt.Fprintf(w, "check: %s; the primary fails by: %s; dnsperf at %d QPS; bounds: failover %.3fs, failback %.3fs\n\n",
		rep.Check, rep.Mode, rep.QPS, rep.BoundDn, rep.BoundUp)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "round\tfailover first s\tall s\tfailed probe #%d s\tfailback first s\tall s\tgood probe #%d s\t\n", rep.Fall, rep.Rise)
	f := func(v float64) string {
		if v < 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	for _, r := range rep.Rounds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Round, f(r.FailoverS), f(r.FailAllS), f(r.DetectDn), f(r.FailbackS), f(r.BackAllS), f(r.DetectUp))
	}
	m := rep.Median
	fmt.Fprintf(tw, "median\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f(m.FailoverFirst), f(m.FailoverAll), f(m.FailoverDetect), f(m.FailbackFirst), f(m.FailbackAll), f(m.FailbackDetect))
	fmt.Fprintf(tw, "max\t\t%s\t\t\t%s\t\t\n", f(rep.Max.FailoverAll), f(rep.Max.FailbackAll))
	fmt.Fprintf(tw, "bound\t\t%s\t\t\t%s\t\t\n", f(rep.BoundDn), f(rep.BoundUp))
	tw.Flush()
	fmt.Fprintf(w, "\npolls: %d, %d unanswered, rcodes %v; answers that went back: %d\n", rep.Polls, rep.PollErrs, rep.PollRC, rep.Flips)
	if st := rep.DNSPerfStats; st != nil {
		fmt.Fprintf(w, "dnsperf: %d sent, %d completed, %d lost, %d interrupted at the stop; %.0f QPS over %.1fs; rcodes %v; latency avg %.3f ms, max %.3f ms\n",
			st.Sent, st.Completed, st.Lost, rep.Interrupted, st.QPS, st.RunTime, st.Rcodes, st.AvgLatency*1e3, st.MaxLatency*1e3)
	}
	for _, wn := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
}

// dnsperfBG is dnsperf running in the background for the whole run.
type dnsperfBG struct {
	cmd  *exec.Cmd
	out  string
	errb *tail
	done chan struct{}
}

func startDNSPerf(o foOptions, dir string, port int, limit time.Duration) (*dnsperfBG, error) {
	in := filepath.Join(dir, "failover.txt")
	if err := os.WriteFile(in, []byte(strings.TrimSuffix(foName, ".")+" A\n"), 0o644); err != nil {
		return nil, err
	}
	d := &dnsperfBG{out: filepath.Join(dir, "dnsperf.out"), errb: &tail{max: 4 << 10}, done: make(chan struct{})}
	outF, err := os.Create(d.out)
	if err != nil {
		return nil, err
	}
	defer outF.Close() // the child has its own descriptor
	d.cmd = exec.Command(o.dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", in,
		"-l", strconv.Itoa(int(limit.Seconds())+1), "-Q", strconv.Itoa(o.qps),
		"-T", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.clients), "-q", strconv.Itoa(o.outst))
	d.cmd.Stdout, d.cmd.Stderr = outF, d.errb
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dnsperf: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	return d, nil
}

// stop interrupts dnsperf (SIGINT: it prints its statistics and exits),
// waits for it within stopGrace, and parses what it printed.
func (d *dnsperfBG) stop() (stats, int64, error) {
	select {
	case <-d.done:
		return stats{}, 0, fmt.Errorf("dnsperf ended before the rounds did (its -l was too short?): %s", d.errb.String())
	default:
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(stopGrace):
		d.kill()
		return stats{}, 0, fmt.Errorf("dnsperf (pid %d) did not stop within %s of SIGINT; killed", d.cmd.Process.Pid, stopGrace)
	}
	raw, err := os.ReadFile(d.out)
	if err != nil {
		return stats{}, 0, err
	}
	st, err := parseDNSPerf(strings.NewReader(string(raw)))
	if err != nil {
		return stats{}, 0, fmt.Errorf("%w: %s", err, d.errb.String())
	}
	return st, interruptedQueries(string(raw)), nil
}

// kill stops dnsperf by its PID if it still runs.
func (d *dnsperfBG) kill() {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Kill()
		select {
		case <-d.done:
		case <-time.After(stopGrace):
		}
	}
}

// interruptedQueries reads "Queries interrupted: N (x%)", which dnsperf
// prints when stopped by a signal: queries sent and not yet answered,
// neither lost nor completed.
func interruptedQueries(out string) int64 {
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Queries interrupted:"); ok {
			n, _ := firstInt(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
