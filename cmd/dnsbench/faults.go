package main

// dnsbench faults: gslbd under a steady dnsperf load while one fault at a
// time is injected, each in a fresh environment of its own: a
// redis-server holding the sessions, two datacenters whose HTTP health
// endpoints this process serves, a copy of the demo GeoIP database, and
// gslbd on free loopback ports. Every window is the same length; dnsperf
// starts, the fault is injected a quarter of the way in (and undone
// within the window where it has an end), and dnsperf's counts are
// compared with no-fault windows of the same run (one first, one last).
// The pass rule is passRule's; the table and the rule are printed, and
// the exit status is 1 when a fault fails.
//
//	go run ./cmd/dnsbench faults -gslbd bin/gslbd [-qps 3000] [-window 8s] [-only redis-kill,sighup-loop]
//
// Every process started here is stopped by its PID, and dies with this
// one (Pdeathsig); every loop is bounded in count and in time.

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

const (
	faultZone   = "faults.test."
	faultSticky = "sticky." + faultZone
	faultStatic = "static." + faultZone
	// faultPrefixes is how many client /24s the load rotates over as ECS:
	// more than sessions.cache_size, so that most queries go to Redis.
	faultPrefixes = 20000
)

type faultOptions struct {
	gslbd, dnsperf, redis, geoip string
	qps                          int
	window                       time.Duration
	only                         string
	json                         string
}

// faultEnv is one window's world: the processes and files of one fault.
type faultEnv struct {
	o                 faultOptions
	dir, cfg, geoPath string
	argv              []string // gslbd's, to start a successor with
	gslbd             *proc
	redis             *proc
	redisAddr         string
	dnsAddr, httpAddr string
	dcs               [2]*faultHealth
	ttl               int // the sticky service's, changed by the valid reload
	tcpLimit          int
	mu                sync.Mutex
	note              []string
}

func (e *faultEnv) notef(format string, args ...any) {
	e.mu.Lock()
	e.note = append(e.note, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// fault is one entry of the suite. inject runs from a quarter of the way
// into the window and must return before the window ends.
type fault struct {
	name   string
	info   bool // reported for comparison, not judged
	tcpMax int  // dns.tcp_max_connections for this window; 0: the default
	inject func(ctx context.Context, e *faultEnv) error
}

func faultList() []fault {
	return []fault{
		{name: "redis-kill", inject: func(_ context.Context, e *faultEnv) error {
			return e.redis.cmd.Process.Signal(syscall.SIGKILL)
		}},
		{name: "redis-pause-3s", inject: func(_ context.Context, e *faultEnv) error {
			return e.pauseRedis(1, 3*time.Second, 0)
		}},
		{name: "redis-slow", inject: func(_ context.Context, e *faultEnv) error {
			// Ten stalls of 200 ms with 100 ms of service between: each
			// stall outlasts the lookup budget, each gap lets the
			// backlog through.
			return e.pauseRedis(10, 200*time.Millisecond, 100*time.Millisecond)
		}},
		{name: "health-hang", inject: healthFault(0, healthHang)},
		{name: "health-reset", inject: healthFault(0, healthReset)},
		{name: "health-flap", inject: func(ctx context.Context, e *faultEnv) error {
			for i := range 12 { // 3 s, a change every 250 ms
				e.dcs[0].mode.Store(int32(i%2) * health503)
				if !sleepCtx(ctx, 250*time.Millisecond) {
					break
				}
			}
			e.dcs[0].mode.Store(healthOK)
			return nil
		}},
		{name: "all-dcs-down", inject: func(ctx context.Context, e *faultEnv) error {
			for _, d := range e.dcs {
				d.mode.Store(health503)
			}
			sleepCtx(ctx, 3*time.Second)
			for _, d := range e.dcs {
				d.mode.Store(healthOK)
			}
			return nil
		}},
		{name: "reload-invalid", inject: func(_ context.Context, e *faultEnv) error {
			cfg, err := os.ReadFile(e.cfg)
			if err != nil {
				return err
			}
			if err := os.WriteFile(e.cfg, append(cfg, "no_such_key: 1\n"...), 0o600); err != nil {
				return err
			}
			return e.reload(0)
		}},
		{name: "reload-valid", inject: func(_ context.Context, e *faultEnv) error {
			e.ttl++
			if err := e.writeConfig(); err != nil {
				return err
			}
			return e.reload(1)
		}},
		{name: "geoip-removed", inject: func(_ context.Context, e *faultEnv) error {
			if err := os.Remove(e.geoPath); err != nil {
				return err
			}
			return e.reload(-1)
		}},
		{name: "geoip-overwritten", inject: func(ctx context.Context, e *faultEnv) error {
			// In place (truncate and write, same inode), first half of
			// the file as a copy caught mid-write would be, then whole.
			full, err := os.ReadFile(e.geoPath)
			if err != nil {
				return err
			}
			if err := os.WriteFile(e.geoPath, full[:len(full)/2], 0o644); err != nil {
				return err
			}
			if err := e.reload(-1); err != nil {
				return err
			}
			if err := os.WriteFile(e.geoPath, full, 0o644); err != nil {
				return err
			}
			return e.reload(1)
		}},
		{name: "sighup-loop", inject: func(ctx context.Context, e *faultEnv) error {
			for range 50 { // 50 in 2 s
				if err := e.gslbd.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					return err
				}
				if !sleepCtx(ctx, 40*time.Millisecond) {
					break
				}
			}
			sleepCtx(ctx, 500*time.Millisecond) // the reload in progress
			e.notef("%.0f reloads from 50 SIGHUPs", e.reloads())
			return nil
		}},
		{name: "restart-handover", inject: func(ctx context.Context, e *faultEnv) error {
			return e.handOver()
		}},
		{name: "stop-start", info: true, inject: func(ctx context.Context, e *faultEnv) error {
			return e.stopStart(ctx)
		}},
		{name: "malformed-burst", inject: func(ctx context.Context, e *faultEnv) error {
			return e.burst(ctx, 20000, malformedPacket)
		}},
		{name: "valid-burst", info: true, inject: func(ctx context.Context, e *faultEnv) error {
			// The same burst of well-formed queries: the control that
			// tells a cost of malformed packets from one of the rate.
			return e.burst(ctx, 20000, func(_ *rand.Rand, valid []byte) []byte { return valid })
		}},
		{name: "tcp-idle-over-limit", tcpMax: 16, inject: func(ctx context.Context, e *faultEnv) error {
			return e.idleTCP(ctx, 64)
		}},
		{name: "tcp-slow-readers", inject: func(ctx context.Context, e *faultEnv) error {
			return e.slowReaders(ctx, 32)
		}},
	}
}

func runFaults(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dnsbench faults", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o faultOptions
	fs.StringVar(&o.gslbd, "gslbd", "bin/gslbd", "the gslbd binary")
	fs.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "the dnsperf binary")
	fs.StringVar(&o.redis, "redis-server", "redis-server", "the redis-server binary")
	fs.StringVar(&o.geoip, "geoip", "configs/demo/geo.mmdb", "the GeoIP database copied into each window's directory")
	fs.IntVar(&o.qps, "qps", 3000, "offered queries per second (dnsperf -Q)")
	fs.DurationVar(&o.window, "window", 8*time.Second, "dnsperf run per fault and per baseline")
	fs.StringVar(&o.only, "only", "", "comma-separated faults to run (default: all)")
	fs.StringVar(&o.json, "json", "", "also write the results to this file as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if o.qps < 1 || o.qps > 100000 || o.window < 4*time.Second || o.window > time.Minute || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "dnsbench faults: -qps 1..100000, -window 4s..1m, no arguments")
		return exitUsage
	}
	faults := faultList()
	if o.only != "" {
		var sel []fault
		for n := range strings.SplitSeq(o.only, ",") {
			i := slices.IndexFunc(faults, func(f fault) bool { return f.name == n })
			if i < 0 {
				fmt.Fprintf(stderr, "dnsbench faults: no fault %q\n", n)
				return exitUsage
			}
			sel = append(sel, faults[i])
		}
		faults = sel
	}
	for _, b := range []*string{&o.dnsperf, &o.redis} {
		p, err := exec.LookPath(*b)
		if err != nil {
			fmt.Fprintf(stderr, "dnsbench faults: %v (Debian packages dnsperf, redis-server)\n", err)
			return exitFail
		}
		*b = p
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "dnsbench-faults-")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	defer os.RemoveAll(dir)
	if err := sessWriteFile(filepath.Join(dir, "queries.bin"), faultSticky, sessPrefixes(faultPrefixes)); err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	fmt.Fprintf(stdout, "faults under %d queries/s, %s per window, %s then %s A with ECS from %d /24s\n",
		o.qps, o.window, o.gslbd, faultSticky, faultPrefixes)
	none := fault{name: "baseline", inject: func(context.Context, *faultEnv) error { return nil }}
	var baselines, results []faultResult
	runs := append(append([]fault{none}, faults...), none)
	for i, f := range runs {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "dnsbench faults: interrupted")
			return exitFail
		}
		r := runFault(ctx, o, f, filepath.Join(dir, strconv.Itoa(i)+"-"+f.name), filepath.Join(dir, "queries.bin"))
		fmt.Fprintf(stderr, "dnsbench faults: %-20s sent %d lost %d servfail %d %s%s\n", r.Name, r.Sent, r.Lost, r.ServFail, r.Err, ifNote(r.Note))
		if f.name == "baseline" {
			baselines = append(baselines, r)
		} else {
			results = append(results, r)
		}
	}
	failed := printFaults(stdout, defaultPassRule, baselines, results)
	if o.json != "" {
		if err := writeJSONFile(o.json, map[string]any{"baselines": baselines, "faults": results, "rule": defaultPassRule.String()}); err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
	}
	if failed > 0 || slices.ContainsFunc(baselines, func(b faultResult) bool { return b.Err != "" }) {
		return exitFail
	}
	return exitOK
}

// runFault sets up a fresh environment, runs dnsperf for the window with
// the fault injected a quarter of the way in, and tears everything down.
func runFault(ctx context.Context, o faultOptions, f fault, dir, queries string) (r faultResult) {
	r = faultResult{Name: f.name, Info: f.info}
	e := &faultEnv{o: o, dir: dir, ttl: 30, tcpLimit: f.tcpMax}
	defer e.teardown()
	fail := func(err error) faultResult {
		r.Err = err.Error()
		r.Note = strings.Join(e.note, "; ")
		return r
	}
	if err := e.setup(ctx); err != nil {
		return fail(fmt.Errorf("setup: %w", err))
	}
	drops0 := readUDPDrops()
	perf, err := startFaultDNSPerf(o, dir, queries, e.dnsAddr)
	if err != nil {
		return fail(err)
	}
	defer perf.kill()
	start := time.Now()
	sleepCtx(ctx, o.window/4)
	r.HeapBefore, r.GoBefore = e.heap(ctx)

	fctx, cancel := context.WithDeadline(ctx, start.Add(o.window-time.Second))
	injErr := f.inject(fctx, e)
	cancel()
	if injErr != nil {
		e.notef("inject: %v", injErr)
	}
	select {
	case <-perf.done:
	case <-time.After(time.Until(start.Add(o.window + 10*time.Second))):
		return fail(errors.New("dnsperf ran 10s past its window"))
	}
	raw, err := os.ReadFile(perf.out)
	if err != nil {
		return fail(err)
	}
	st, err := parseDNSPerf(strings.NewReader(string(raw)))
	if err != nil {
		return fail(fmt.Errorf("%w: %s", err, perf.errb.String()))
	}
	r.fromStats(st)
	if drops1 := readUDPDrops(); drops0 >= 0 && drops1 >= 0 {
		r.UDPDrops = drops1 - drops0
	} else {
		r.UDPDrops = -1
	}
	if err := e.gslbd.exited(); err != nil {
		return fail(fmt.Errorf("gslbd died: %v", err))
	}
	if err := e.answers(ctx); err != nil {
		return fail(fmt.Errorf("gslbd not answering after the fault: %v", err))
	}
	r.HeapAfter, r.GoAfter = e.heap(ctx)
	if strings.HasPrefix(f.name, "health") || f.name == "all-dcs-down" {
		// That the fault was seen: datacenter transitions to down (labels
		// in the exposition's order, which is sorted by name).
		e.notef("datacenter down transitions: dc-a %.0f, dc-b %.0f",
			max(0, e.metric(`gslb_health_transitions_total{datacenter="dc-a",kind="datacenter",state="down"}`)),
			max(0, e.metric(`gslb_health_transitions_total{datacenter="dc-b",kind="datacenter",state="down"}`)))
	}
	if f.name == "baseline" || strings.HasPrefix(f.name, "redis") {
		// Where the session look-ups went: the store's failures show as
		// error and skipped (breaker open), answered without affinity.
		var parts []string
		for _, res := range []string{"hit", "miss", "created", "error", "skipped"} {
			parts = append(parts, fmt.Sprintf("%s %.0f", res, max(0, e.metric(`gslb_session_lookups_total{result="`+res+`"}`))))
		}
		e.notef("session look-ups: %s", strings.Join(parts, ", "))
	}
	if injErr != nil {
		r.Err = "inject: " + injErr.Error()
	}
	r.Note = strings.Join(e.note, "; ")
	return r
}

func (e *faultEnv) setup(ctx context.Context) error {
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return err
	}
	geo, err := os.ReadFile(e.o.geoip)
	if err != nil {
		return err
	}
	e.geoPath = filepath.Join(e.dir, "geo.mmdb")
	if err := os.WriteFile(e.geoPath, geo, 0o644); err != nil {
		return err
	}
	for i := range e.dcs {
		if e.dcs[i], err = startFaultHealth(); err != nil {
			return err
		}
	}
	if e.redis, e.redisAddr, err = startFaultRedis(ctx, e.o.redis, e.dir); err != nil {
		return err
	}
	dnsPort, err := freeDNSPort()
	if err != nil {
		return err
	}
	httpPort, err := freeTCPPort()
	if err != nil {
		return err
	}
	e.dnsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(dnsPort))
	e.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	e.cfg = filepath.Join(e.dir, "gslbd.yaml")
	if err := e.writeConfig(); err != nil {
		return err
	}
	e.argv = []string{e.o.gslbd, "serve", "--config", e.cfg, "--dns.listen", e.dnsAddr, "--http.listen", e.httpAddr,
		"--set", "dns.handover_socket=" + filepath.Join(e.dir, "handover.sock")}
	return e.startGSLBD(ctx)
}

func (e *faultEnv) startGSLBD(ctx context.Context) error {
	p, err := startFaultProc("gslbd", e.argv)
	if err != nil {
		return err
	}
	e.gslbd = p
	return e.waitReady(ctx)
}

func (e *faultEnv) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := e.gslbd.exited(); err != nil {
			return err
		}
		if getOK(ctx, http.DefaultClient, "http://"+e.httpAddr+"/readyz") == nil {
			return nil
		}
		sleepCtx(ctx, 25*time.Millisecond)
	}
	return fmt.Errorf("gslbd not ready on %s within %s: %s", e.httpAddr, readyTimeout, e.gslbd.out.String())
}

func (e *faultEnv) teardown() {
	if e.gslbd != nil {
		if err := e.gslbd.stop(); err != nil && !strings.Contains(err.Error(), "exited") {
			e.notef("stop: %v", err)
		}
	}
	if e.redis != nil {
		_ = e.redis.cmd.Process.Signal(syscall.SIGCONT) // a paused one cannot act on SIGTERM
		_ = e.redis.stop()
	}
	for _, d := range e.dcs {
		if d != nil {
			d.close()
		}
	}
}

func (e *faultEnv) writeConfig() error {
	tcp := ""
	if e.tcpLimit > 0 {
		tcp = fmt.Sprintf("dns: {tcp_max_connections: %d}\n", e.tcpLimit)
	}
	cfg := fmt.Sprintf(`# Written by dnsbench faults.
instance: {name: dnsbench-faults}
log: {level: warn}
http: {allow_unauthenticated_loopback: true}
%sgeoip:
  city_db: %s
  default_location: {lat: 45.0, lon: -35.0}
health:
  jitter: 0.1
  damping: {max_transitions: 0}
health_checks:
  web: {type: http, path: /health, interval: 500ms, timeout: 300ms, rise: 2, fall: 2}
sessions:
  store: redis
  # Fewer than the /24s queried: most lookups go to Redis.
  cache_size: 1000
  ttl: 1h
  redis:
    addrs: ["%s"]
    lookup_budget: 2ms
datacenters:
  - id: dc-a
    lat: 50.1
    lon: 8.7
    endpoints: [{address: 192.0.2.10, check: web, check_address: "%s"}]
  - id: dc-b
    lat: 39.0
    lon: -77.5
    endpoints: [{address: 198.51.100.10, check: web, check_address: "%s"}]
zones:
  - origin: %s
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    records:
      - {name: static, type: A, data: 192.0.2.1}
      - {name: big, type: TXT, data: "%s"}
    services:
      - {name: sticky, policy: score, datacenters: [dc-a, dc-b], ttl: %d, sticky: true}
`, tcp, e.geoPath, e.redisAddr, e.dcs[0].addr, e.dcs[1].addr, faultZone, strings.Repeat("x", 200), e.ttl)
	return os.WriteFile(e.cfg, []byte(cfg), 0o600)
}

// heap reads go_memstats_heap_inuse_bytes and go_goroutines; 0 when
// /metrics does not answer, which judge reports.
func (e *faultEnv) heap(ctx context.Context) (heap, goroutines int64) {
	body, err := httpGet(ctx, "http://"+e.httpAddr+"/metrics")
	if err != nil {
		e.notef("metrics: %v", err)
		return 0, 0
	}
	h, err1 := metricValue(strings.NewReader(body), "go_memstats_heap_inuse_bytes")
	g, err2 := metricValue(strings.NewReader(body), "go_goroutines")
	if err := errors.Join(err1, err2); err != nil {
		e.notef("%v", err)
	}
	return int64(h), int64(g)
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// answers asks the static record over UDP and TCP, three tries each.
func (e *faultEnv) answers(ctx context.Context) error {
	var last error
	for _, netw := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: netw, Timeout: time.Second}
		m := new(dns.Msg)
		m.SetQuestion(faultStatic, dns.TypeA)
		for range 3 {
			r, _, err := c.ExchangeContext(ctx, m, e.dnsAddr)
			if last = err; err == nil {
				last = checkAnswer(r, "192.0.2.1")
			}
			if last == nil {
				break
			}
		}
		if last != nil {
			return fmt.Errorf("%s: %w", netw, last)
		}
	}
	return nil
}

// reload sends SIGHUP and waits (up to 5 s) for
// gslb_config_last_reload_successful to read want (0 or 1; -1: either),
// noting what it read.
func (e *faultEnv) reload(want int) error {
	before := e.reloads()
	if err := e.gslbd.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	for range 100 {
		time.Sleep(50 * time.Millisecond)
		if n := e.reloads(); n > before {
			ok := e.metric("gslb_config_last_reload_successful")
			geo := func(res string) float64 {
				return max(0, e.metric(`gslb_geoip_database_reloads_total{database="city",result="`+res+`"}`))
			}
			e.notef("reload %s (GeoIP loads failed %v, succeeded %v)",
				map[float64]string{0: "refused", 1: "applied"}[ok], geo("failure"), geo("success"))
			if want >= 0 && int(ok) != want {
				return fmt.Errorf("reload outcome %v, want %d", ok, want)
			}
			return nil
		}
	}
	return errors.New("no reload counted within 5s of SIGHUP")
}

func (e *faultEnv) reloads() float64 {
	body, err := httpGet(context.Background(), "http://"+e.httpAddr+"/metrics")
	if err != nil {
		return -1
	}
	var n float64
	for _, res := range []string{"success", "failure"} {
		v, _ := metricValue(strings.NewReader(body), `gslb_config_reloads_total{result="`+res+`"}`)
		n += v
	}
	return n
}

func (e *faultEnv) metric(name string) float64 {
	body, err := httpGet(context.Background(), "http://"+e.httpAddr+"/metrics")
	if err != nil {
		return -1
	}
	v, err := metricValue(strings.NewReader(body), name)
	if err != nil {
		return -1
	}
	return v
}

// pauseRedis stops redis-server n times for stall, with gap between.
func (e *faultEnv) pauseRedis(n int, stall, gap time.Duration) error {
	p := e.redis.cmd.Process
	for range n {
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		time.Sleep(stall)
		if err := p.Signal(syscall.SIGCONT); err != nil {
			return err
		}
		time.Sleep(gap)
	}
	return nil
}

// handOver starts a successor on the same handover socket and waits for
// the running gslbd to hand its sockets over and exit.
func (e *faultEnv) handOver() error {
	old := e.gslbd
	next, err := startFaultProc("gslbd", e.argv)
	if err != nil {
		return err
	}
	e.gslbd = next
	t0 := time.Now()
	select {
	case <-old.done:
		status := "status 0"
		if old.err != nil {
			status = old.err.Error()
		}
		e.notef("predecessor exited (%s) %s after the successor started", status, time.Since(t0).Round(time.Millisecond))
		return nil
	case <-next.done:
		_ = old.stop()
		return fmt.Errorf("the successor exited: %v: %s", next.err, next.out.String())
	case <-time.After(15 * time.Second):
		_ = old.stop()
		return errors.New("no hand-over within 15s")
	}
}

// stopStart is the naive restart: SIGTERM, wait, start anew on the same
// ports, for comparison with the hand-over.
func (e *faultEnv) stopStart(ctx context.Context) error {
	t0 := time.Now()
	if err := e.gslbd.stop(); err != nil {
		return err
	}
	if err := e.startGSLBD(ctx); err != nil {
		return err
	}
	e.notef("down-to-ready %s", time.Since(t0).Round(time.Millisecond))
	return nil
}

// burst sends n packets made by gen over UDP at burstRate, from one
// socket, within 2n/burstRate.
func (e *faultEnv) burst(ctx context.Context, n int, gen func(*rand.Rand, []byte) []byte) error {
	c, err := net.Dial("udp", e.dnsAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	// Answers are read and dropped, so that the kernel's UDP drop count
	// is gslbd's and dnsperf's, not this socket's; Close ends the reader.
	var answered atomic.Int64
	go func() {
		buf := make([]byte, 65535)
		for {
			if _, err := c.Read(buf); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				return
			}
			answered.Add(1)
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	valid, err := wireQuery(faultSticky, dns.TypeA, netip.MustParsePrefix("1.2.3.0/24"))
	if err != nil {
		return err
	}
	start := time.Now()
	deadline := start.Add(2 * time.Duration(n) * time.Second / burstRate)
	sent, werr := 0, 0
	for ; sent < n && time.Now().Before(deadline) && ctx.Err() == nil; sent++ {
		if _, err := c.Write(gen(rng, valid)); err != nil {
			werr++ // ECONNREFUSED from an earlier ICMP; go on
		}
		// Paced in steps of 100 packets: at burstRate, not as fast as one
		// core can write, which would measure the machine's UDP path.
		if sent%100 == 99 {
			if ahead := time.Duration(sent+1)*time.Second/burstRate - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the last answers
	e.notef("%d packets in %s (%d write errors), %d answered", sent, took, werr, answered.Load())
	return nil
}

// burstRate is the bursts' packets per second: the default load again
// and two thirds more, so that the burst tests what gslbd does with the
// packets rather than this machine's capacity (at 10,000/s on the
// 2-core development machine the valid control lost as much as the
// malformed burst: docs/faults.md).
const burstRate = 5000

// malformedPacket is one of the shapes a parser gets wrong: random bytes,
// a truncated query, counts that promise more records than there are, a
// compression pointer to itself, a query with its QR bit set (a
// reflected response), or a valid query with random bytes flipped.
func malformedPacket(rng *rand.Rand, valid []byte) []byte {
	switch rng.IntN(6) {
	case 0:
		b := make([]byte, rng.IntN(600))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	case 1:
		return slices.Clone(valid[:rng.IntN(len(valid))])
	case 2:
		b := slices.Clone(valid)
		b[6], b[7], b[8], b[9], b[10], b[11] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
		return b
	case 3:
		// Header, one question whose name is a pointer to itself.
		return []byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
	case 4:
		b := slices.Clone(valid)
		b[2] |= 0x80
		return b
	default:
		b := slices.Clone(valid)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.UintN(256))
		}
		return b
	}
}

// idleTCP opens n connections (more than the fault's
// tcp_max_connections) and sends nothing on them; a fresh TCP query is
// asked at once, once the held ones may be evicted, and once gslbd's
// first-read deadline (2 s) has closed them. The answers are reported,
// not judged: they depend on timing, and the judged figure is the UDP
// load's.
func (e *faultEnv) idleTCP(ctx context.Context, n int) error {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := net.Dialer{Timeout: time.Second}
	for range n {
		c, err := d.DialContext(ctx, "tcp", e.dnsAddr)
		if err != nil {
			e.notef("dial: %v", err)
			break
		}
		conns = append(conns, c)
	}
	probe := func() string {
		// Not ctx: the probe after the wait must run even when the wait
		// was cut short, and says so.
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		m := new(dns.Msg)
		m.SetQuestion(faultStatic, dns.TypeA)
		if _, _, err := c.Exchange(m, e.dnsAddr); err != nil {
			return "failed (" + shortErr(err) + ")"
		}
		return "ok"
	}
	e.notef("%d idle, limit %d: fresh TCP query at once %s", len(conns), e.tcpLimit, probe())
	// After 1.3 s the held connections have been idle long enough to be
	// evicted for a newcomer (1 s) and not yet long enough for the
	// first-read deadline (2 s) to have closed them.
	sleepCtx(ctx, 1300*time.Millisecond)
	e.notef("after 1.3s %s", probe())
	sleepCtx(ctx, 1500*time.Millisecond)
	e.notef("after 2.8s %s; evicted %.0f, refused %.0f", probe(),
		e.metric("gslb_dns_tcp_connections_evicted_total"), e.metric("gslb_dns_tcp_connections_refused_total"))
	return nil
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// slowReaders opens n connections with a small receive buffer, writes
// queries for a 200-byte TXT record on each until a write would block
// (the server's responses fill the socket buffers, since nothing is
// read), and holds them so until the window ends.
func (e *faultEnv) slowReaders(ctx context.Context, n int) error {
	q := new(dns.Msg)
	q.SetQuestion("big."+faultZone, dns.TypeTXT)
	wire, err := q.Pack()
	if err != nil {
		return err
	}
	frame := append([]byte{byte(len(wire) >> 8), byte(len(wire))}, wire...)
	var conns []*net.TCPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var queued int64
	for range n {
		c, err := net.DialTimeout("tcp", e.dnsAddr, time.Second)
		if err != nil {
			e.notef("dial: %v", err)
			break
		}
		tc := c.(*net.TCPConn)
		_ = tc.SetReadBuffer(1024)
		conns = append(conns, tc)
		_ = tc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		for range 5000 {
			if _, err := tc.Write(frame); err != nil {
				break
			}
			queued++
		}
	}
	e.notef("%d connections, %d queries written, none read", len(conns), queued)
	<-ctx.Done() // held until a second before the window ends
	e.notef("while held: %.0f goroutines, heap %s", e.metric("go_goroutines"), mib(int64(e.metric("go_memstats_heap_inuse_bytes"))))
	return nil
}

// faultHealth is one datacenter's health endpoint, in one of the modes.
type faultHealth struct {
	addr string
	mode atomic.Int32
	srv  *http.Server
}

const (
	healthOK = iota
	health503
	healthHang  // no answer until the prober gives up
	healthReset // the connection is reset (RST) without an answer
)

func startFaultHealth() (*faultHealth, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &faultHealth{addr: ln.Addr().String()}
	h.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(h.serve)}
	go h.srv.Serve(ln)
	return h, nil
}

func (h *faultHealth) serve(w http.ResponseWriter, r *http.Request) {
	switch h.mode.Load() {
	case health503:
		http.Error(w, "down", http.StatusServiceUnavailable)
	case healthHang:
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	case healthReset:
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close sends RST
			}
			c.Close()
		}
	default:
		io.WriteString(w, `{"status":"ok","load":0.2,"latency":5}`)
	}
}

func (h *faultHealth) close() { h.srv.Close() }

// healthFault puts datacenter i's endpoint in mode for 3 s.
func healthFault(i int, mode int32) func(context.Context, *faultEnv) error {
	return func(ctx context.Context, e *faultEnv) error {
		e.dcs[i].mode.Store(mode)
		sleepCtx(ctx, 3*time.Second)
		e.dcs[i].mode.Store(healthOK)
		return nil
	}
}

// startFaultProc starts argv as the benchmark starts its servers (GSLBD_*
// dropped from the environment, Pdeathsig), without pinning: the suite
// shares the machine's cores as production shares them with its
// neighbours.
func startFaultProc(name string, argv []string) (*proc, error) {
	return (&bench{}).startProc(name, argv)
}

// startFaultRedis starts redis-server on a free loopback port without
// persistence and waits (bounded) until it answers PING.
func startFaultRedis(ctx context.Context, bin, dir string) (*proc, string, error) {
	port, err := freeTCPPort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, err := startFaultProc("redis-server", []string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir, "--loglevel", "warning"})
	if err != nil {
		return nil, "", err
	}
	for range 200 { // 5 s
		if err := p.exited(); err != nil {
			return nil, "", err
		}
		if got, err := redisCmd(ctx, addr, "PING"); err == nil && got == "PONG" {
			return p, addr, nil
		}
		sleepCtx(ctx, 25*time.Millisecond)
	}
	_ = p.stop()
	return nil, "", fmt.Errorf("redis-server on %s did not answer PING within 5s", addr)
}

// faultPerf is dnsperf running for one window, its output in a file.
type faultPerf struct {
	cmd  *exec.Cmd
	out  string
	errb *tail
	done chan struct{}
}

func startFaultDNSPerf(o faultOptions, dir, queries, addr string) (*faultPerf, error) {
	host, port, _ := net.SplitHostPort(addr)
	p := &faultPerf{out: filepath.Join(dir, "dnsperf.out"), errb: &tail{max: 4 << 10}, done: make(chan struct{})}
	f, err := os.Create(p.out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// -t 2: a query unanswered for 2 s is lost; resolvers give up sooner.
	p.cmd = exec.Command(o.dnsperf, "-s", host, "-p", port, "-d", queries, "-B",
		"-l", strconv.FormatFloat(o.window.Seconds(), 'f', -1, 64), "-Q", strconv.Itoa(o.qps),
		"-t", "2", "-T", "1", "-c", "4", "-q", "200")
	p.cmd.Stdout, p.cmd.Stderr = f, p.errb
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dnsperf: %w", err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *faultPerf) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func readUDPDrops() int64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return -1
	}
	defer f.Close()
	n, err := udpRcvbufErrors(f)
	if err != nil {
		return -1
	}
	return n
}

// sleepCtx sleeps for d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
