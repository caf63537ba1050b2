package health

// Benchmarks of the health checker: BenchmarkProbe10k, a Manager probing
// 10,000 endpoints once a second against real loopback servers, and
// BenchmarkObserve, the per-result state machine. Figures and method are
// in docs/performance.md ("Health checking at scale and failover time").
//
//	go test -run='^$' -bench=Probe10k -benchtime=1x -timeout 30m ./health
//	go test -run='^$' -bench='Probe10k/mixed$' -benchtime=1x ./health -args -probe10k.duration=30s
//	go test -run='^$' -bench=Observe -benchmem ./health
//
// BenchmarkProbe10k measures for a fixed time (-probe10k.duration), not
// for b.N probes: whatever -benchtime asks, each sub-benchmark runs once.
// It is skipped with -short. Its servers run in a child process (this
// test binary, re-run as TestHelperProbe10kServers), so that the CPU
// time read with getrusage(RUSAGE_SELF) is the prober's alone; the
// servers' is read from /proc/PID/stat and reported beside it.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	probe10kDuration  = flag.Duration("probe10k.duration", 10*time.Second, "BenchmarkProbe10k: how long probing is measured, after the first round and the warm-up")
	probe10kWarmup    = flag.Duration("probe10k.warmup", 3*time.Second, "BenchmarkProbe10k: probing before the measurement starts, after the first round")
	probe10kEndpoints = flag.Int("probe10k.endpoints", 10000, "BenchmarkProbe10k: endpoints probed")
	probe10kServerCPU = flag.Int("probe10k.server-cpu", -1, "BenchmarkProbe10k: pin the server process to this core (taskset); -1: not pinned")
)

const (
	// p10kAddrs loopback addresses, 127.0.0.1 to 127.0.0.40, each with
	// p10kHTTPPerAddr HTTP servers and p10kTCPPerAddr TCP servers.
	p10kAddrs       = 40
	p10kHTTPPerAddr = 2
	p10kTCPPerAddr  = 1

	p10kInterval    = time.Second
	p10kTimeout     = 500 * time.Millisecond // the configuration's default for a 1 s interval
	p10kMaxInFlight = 256                    // health.max_in_flight's default
	p10kJitter      = 0.1                    // health.jitter's default

	p10kHelperEnv = "GSLBD_HEALTH_BENCH_SERVERS"
	p10kOwnEnv    = "GSLBD_HEALTH_BENCH_OWN_HTTP" // how many HTTP servers on addresses of their own, 127.1.0.1 on
	p10kBoundWait = 30 * time.Second              // every wait on the child or the Manager
)

// p10kServers is what the child process reports: where it listens, and
// on exit how many connections it accepted.
type p10kServers struct {
	HTTP      []netip.AddrPort `json:"http"`
	TCP       []netip.AddrPort `json:"tcp"`
	Own       []netip.AddrPort `json:"own"` // one HTTP server per endpoint, each on its own address
	HTTPConns int64            `json:"http_conns"`
	TCPConns  int64            `json:"tcp_conns"`
}

// TestHelperProbe10kServers is not a test: BenchmarkProbe10k runs this
// test binary again with only this test selected and p10kHelperEnv set,
// and it then serves HTTP and TCP health endpoints on 127.0.0.1 to
// 127.0.0.40, and p10kOwnEnv more HTTP ones on 127.1.x.y, until its
// standard input closes.
func TestHelperProbe10kServers(t *testing.T) {
	if os.Getenv(p10kHelperEnv) != "1" {
		t.Skip("helper process for BenchmarkProbe10k")
	}
	var httpConns, tcpConns atomic.Int64
	var out p10kServers
	var closers []io.Closer
	body := []byte(`{"status":"ok","load":1,"latency":2}`)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	serveHTTP := func(host string) netip.AddrPort {
		ln, err := net.Listen("tcp", host+":0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
			ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					httpConns.Add(1)
				}
			}}
		go srv.Serve(ln)
		closers = append(closers, srv)
		return netip.MustParseAddrPort(ln.Addr().String())
	}
	own, _ := strconv.Atoi(os.Getenv(p10kOwnEnv))
	for k := range own {
		out.Own = append(out.Own, serveHTTP(p10kOwnAddr(k).String()))
	}
	for i := 1; i <= p10kAddrs; i++ {
		host := fmt.Sprintf("127.0.0.%d", i)
		for range p10kHTTPPerAddr {
			out.HTTP = append(out.HTTP, serveHTTP(host))
		}
		for range p10kTCPPerAddr {
			ln, err := net.Listen("tcp", host+":0")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						if errors.Is(err, net.ErrClosed) {
							return
						}
						time.Sleep(time.Millisecond) // EMFILE and the like: back off, keep serving
						continue
					}
					tcpConns.Add(1)
					// Wait for the prober to close first, as a server
					// would: the TIME_WAIT is then on the prober's side.
					go func() {
						c.SetDeadline(time.Now().Add(10 * time.Second))
						io.Copy(io.Discard, c)
						c.Close()
					}()
				}
			}()
			closers = append(closers, ln)
			out.TCP = append(out.TCP, netip.MustParseAddrPort(ln.Addr().String()))
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.Encode(out)
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes it, or dies
	for _, c := range closers {
		c.Close()
	}
	out.HTTPConns, out.TCPConns = httpConns.Load(), tcpConns.Load()
	enc.Encode(out)
	os.Exit(0) // not the test framework's PASS line on stdout
}

// p10kChild is the server process; it is stopped by closing its
// standard input, and killed by its own PID if that does not work.
type p10kChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
	first p10kServers
}

// p10kOwnAddr is the k-th address of its own: 127.1.0.1 to 127.1.0.250,
// 127.1.1.1, ...
func p10kOwnAddr(k int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(k / 250), byte(k%250 + 1)})
}

func startP10kChild(b *testing.B, own int) *p10kChild {
	b.Helper()
	argv := []string{os.Args[0], "-test.run=^TestHelperProbe10kServers$", "-test.count=1"}
	if *probe10kServerCPU >= 0 {
		// taskset execs the command: the PID is still the server's.
		argv = append([]string{"taskset", "-c", strconv.Itoa(*probe10kServerCPU)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), p10kHelperEnv+"=1", p10kOwnEnv+"="+strconv.Itoa(own))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &p10kChild{cmd: cmd, stdin: stdin, lines: make(chan string, 4), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	go func() { cmd.Wait(); close(c.done) }()
	select {
	case line, ok := <-c.lines:
		if ok && json.Unmarshal([]byte(line), &c.first) == nil && len(c.first.HTTP) > 0 {
			return c
		}
		c.stop(b)
		b.Fatalf("server process: unexpected output %q", line)
	case <-time.After(p10kBoundWait):
		c.stop(b)
		b.Fatalf("server process not listening after %s", p10kBoundWait)
	}
	return nil
}

// cpuTicks is the child's utime+stime in clock ticks (100 a second).
func (c *p10kChild) cpuTicks() uint64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st
}

// stop closes the child's standard input and returns its final report;
// after p10kBoundWait it kills the child by its PID.
func (c *p10kChild) stop(b *testing.B) (final p10kServers, ok bool) {
	c.stdin.Close()
	deadline := time.After(p10kBoundWait)
	for {
		select {
		case line, open := <-c.lines:
			if !open {
				<-c.done
				return final, ok
			}
			ok = json.Unmarshal([]byte(line), &final) == nil
		case <-deadline:
			b.Errorf("server process (pid %d) did not exit within %s; killing it", c.cmd.Process.Pid, p10kBoundWait)
			c.cmd.Process.Kill()
			<-c.done
			return final, false
		}
	}
}

type p10kCase struct {
	name      string
	httpShare float64 // of the endpoints; the rest are tcp
	dcs       int     // datacenters the endpoints are spread over
	onChange  bool    // take a View on every change, as the daemon does
	ownHTTP   bool    // each http endpoint probes a server of its own, on its own address
}

// BenchmarkProbe10k runs a Manager over 10,000 endpoints (-probe10k.endpoints)
// at a 1 s interval, with the configuration's defaults (max_in_flight 256,
// jitter 0.1, timeout 500 ms), against HTTP and TCP servers on
// 127.0.0.1..40 in a child process; endpoints of one datacenter probe the
// servers of one address. It reports, over -probe10k.duration:
//
//   - cpu-s/probe: this process's user+system CPU (getrusage) per probe
//     completed: the scheduler, probers, state machine, metrics and, with
//     OnChange, a View per coalesced change (the daemon then also builds
//     a DNS snapshot, not counted here); cpu-%, the same per wall second;
//     server-cpu-s/probe, the child's; other-cpu-%, the rest of the
//     machine's busy time (other work on a shared machine);
//   - probes/s against target-probes/s (endpoints / interval);
//     first-round-s, until every endpoint had a result;
//   - http-probe-ms, tcp-probe-ms: mean probe duration, and the upper
//     bounds of the histogram buckets holding p50 and p99;
//   - max-lag-ms: how far past its time the most overdue endpoint was,
//     sampled every 10 ms at the head of the queue; max-in-flight;
//   - goroutines at start, during probing (sampled peak) and after Run
//     returned; heap-B/endpoint: HeapInuse after a GC, minus before
//     Configure, per endpoint; peak-fds, open descriptors (sampled);
//   - time-wait: TCP sockets in TIME_WAIT on 127.0.0.0/8 at the start
//     and the end (in this network namespace, whoever made them);
//     http-conns-total and tcp-conns-total, the connections the servers
//     accepted over the whole run (keep-alive keeps the first low);
//   - failed-probes and endpoints-down, which should be 0 (failures are
//     logged by reason); views/s, OnChange calls.
func BenchmarkProbe10k(b *testing.B) {
	if testing.Short() {
		b.Skip("probes real loopback servers for seconds; skipped with -short")
	}
	cases := []p10kCase{
		{name: "mixed", httpShare: 0.5, dcs: p10kAddrs, onChange: true},
		{name: "http", httpShare: 1, dcs: p10kAddrs, onChange: true},
		{name: "tcp", httpShare: 0, dcs: p10kAddrs, onChange: true},
		{name: "mixed-own-http", httpShare: 0.5, dcs: p10kAddrs, onChange: true, ownHTTP: true},
		{name: "mixed-no-onchange", httpShare: 0.5, dcs: p10kAddrs, onChange: false},
		{name: "mixed-4dc", httpShare: 0.5, dcs: 4, onChange: true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { benchProbe10k(b, c) })
	}
}

// p10kStart is when this test binary started, for -test.timeout.
var p10kStart = time.Now()

func benchProbe10k(b *testing.B, bc p10kCase) {
	// A case takes up to the TIME_WAIT wait (70 s), the first round, the
	// warm-up, the measurement and the stops. go test's default timeout
	// is 10 minutes for the whole package: skip a case that might not
	// end within it rather than let the binary be killed mid-run.
	budget := 70*time.Second + *probe10kWarmup + *probe10kDuration + p10kBoundWait
	if f := flag.Lookup("test.timeout"); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if d, ok := g.Get().(time.Duration); ok && d > 0 && time.Since(p10kStart)+budget > d {
				b.Skipf("%s left of -test.timeout %s, a case may take %s: run with a longer -timeout", (d - time.Since(p10kStart)).Round(time.Second), d, budget)
			}
		}
	}
	n := *probe10kEndpoints
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	// Descriptors here: up to max_in_flight probe connections, two idle
	// keep-alive connections per HTTP server, and the child's pipes. Go
	// raises the soft limit to the hard one at start-up.
	need := uint64(p10kMaxInFlight + 2*p10kAddrs*p10kHTTPPerAddr + 256)
	if lim.Cur < need {
		b.Skipf("open file limit %d, need at least %d (ulimit -n)", lim.Cur, need)
	}
	// TIME_WAIT sockets left by an earlier run (a tcp probe leaves one
	// per connection, for 60 s) make connect() search longer for a free
	// port: let them expire first, so that runs start alike.
	tw0 := p10kTimeWait()
	for deadline := time.Now().Add(70 * time.Second); tw0 > 2000 && time.Now().Before(deadline); tw0 = p10kTimeWait() {
		time.Sleep(time.Second)
	}
	own := 0
	if bc.ownHTTP {
		own = int(math.Ceil(float64(n) * bc.httpShare))
		// Both ends of every keep-alive connection, and a listener each.
		if need2 := uint64(2*own) + need; lim.Cur < need2 {
			b.Skipf("open file limit %d, need at least %d (ulimit -n)", lim.Cur, need2)
		}
	}
	child := startP10kChild(b, own)
	stopped := false
	defer func() {
		if !stopped {
			child.stop(b)
		}
	}()

	specs := p10kSpecs(n, bc, child.first)
	reg := prometheus.NewRegistry()
	var views atomic.Int64
	var m *Manager
	opts := Options{
		MaxInFlight: p10kMaxInFlight, Jitter: p10kJitter,
		Damping:    Damping{Window: 5 * time.Minute, MaxTransitions: 4, Hold: 2 * time.Minute},
		Registerer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if bc.onChange {
		// The daemon's applyHealth takes a View on every coalesced change
		// and builds a snapshot from it.
		opts.OnChange = func() { m.View(); views.Add(1) }
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapInuse
	g0 := runtime.NumGoroutine()

	m = New(opts)
	if err := m.Configure(specs); err != nil {
		b.Fatal(err)
	}
	// Count why probes fail (they should not: the servers never do).
	fails := &p10kFailures{byReason: map[string]int{}}
	m.mu.Lock()
	for _, ep := range m.eps {
		ep.prober = &p10kProber{Prober: ep.prober, fails: fails}
	}
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	started := time.Now()
	go func() { m.Run(ctx); close(runDone) }()
	defer func() {
		cancel()
		select {
		case <-runDone:
		case <-time.After(p10kBoundWait):
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, p10kBoundWait)
	err := m.WaitFirstRound(wctx)
	wcancel()
	if err != nil {
		b.Fatal(err)
	}
	firstRound := time.Since(started)
	time.Sleep(*probe10kWarmup)

	// The measured window.
	b.ResetTimer()
	h0 := p10kDurations(b, reg)
	ru0, probes0, t0, srv0 := p10kRusage(), p10kProbes(m), time.Now(), child.cpuTicks()
	busy0, total0 := p10kMachineTicks()
	views0 := views.Load()
	var maxLag time.Duration
	maxG, maxFDs, maxInFlight := 0, 0, 0.0
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 0; time.Since(t0) < *probe10kDuration; i++ {
		<-tick.C
		now := time.Now()
		m.mu.Lock()
		if len(m.queue) > 0 {
			maxLag = max(maxLag, now.Sub(m.queue[0].next))
		}
		m.mu.Unlock()
		maxInFlight = max(maxInFlight, testutil.ToFloat64(m.metrics.inFlight))
		if i%10 == 0 {
			maxG = max(maxG, runtime.NumGoroutine())
			maxFDs = max(maxFDs, p10kOpenFDs())
		}
	}
	tick.Stop()
	ru1, probes1, t1, srv1 := p10kRusage(), p10kProbes(m), time.Now(), child.cpuTicks()
	busy1, total1 := p10kMachineTicks()
	views1 := views.Load()
	b.StopTimer()
	h1 := p10kDurations(b, reg)
	timeWait := p10kTimeWait()

	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap1 := ms.HeapInuse
	// Probes that failed against servers that never fail: the machine
	// was too slow for the timeout. Did any take an endpoint down?
	downs := 0.0
	m.mu.Lock()
	for _, d := range m.dcs {
		downs += testutil.ToFloat64(m.metrics.transitions.WithLabelValues("endpoint", d.spec.ID, "down"))
	}
	m.mu.Unlock()

	cancel()
	select {
	case <-runDone:
	case <-time.After(p10kBoundWait):
		b.Fatalf("Run did not return within %s of cancel", p10kBoundWait)
	}
	for _, ep := range m.eps {
		if w, ok := ep.prober.(*p10kProber); ok {
			if hp, ok := w.Prober.(*httpProber); ok {
				hp.client.CloseIdleConnections()
			}
		}
	}
	gStop := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); gStop > g0+2 && time.Now().Before(deadline); gStop = runtime.NumGoroutine() {
		time.Sleep(50 * time.Millisecond) // closed connections' goroutines finish
	}
	final, _ := child.stop(b)
	stopped = true

	wall := t1.Sub(t0).Seconds()
	probes := float64(probes1 - probes0)
	if probes == 0 {
		b.Fatal("no probes completed in the measured window")
	}
	b.ReportMetric(0, "ns/op") // one timed run, not per-op
	b.ReportMetric((ru1-ru0)/probes, "cpu-s/probe")
	b.ReportMetric(float64(srv1-srv0)/100/probes, "server-cpu-s/probe")
	b.ReportMetric(probes/wall, "probes/s")
	b.ReportMetric(float64(n)/p10kInterval.Seconds(), "target-probes/s")
	b.ReportMetric(100*(ru1-ru0)/wall, "cpu-%")
	if total1 > total0 {
		// Busy time of every core not spent in this process or the
		// servers': other work on this shared machine.
		cores := float64(runtime.NumCPU())
		other := 100*cores*float64(busy1-busy0)/float64(total1-total0) - 100*(ru1-ru0)/wall - float64(srv1-srv0)/wall
		b.ReportMetric(max(other, 0), "other-cpu-%")
	}
	b.ReportMetric(float64(maxLag)/float64(time.Millisecond), "max-lag-ms")
	b.ReportMetric(maxInFlight, "max-in-flight")
	b.ReportMetric(float64(g0), "goroutines-start")
	b.ReportMetric(float64(maxG), "goroutines-peak")
	b.ReportMetric(float64(gStop), "goroutines-after")
	b.ReportMetric(float64(int64(heap1)-int64(heap0))/float64(n), "heap-B/endpoint")
	b.ReportMetric(float64(maxFDs), "peak-fds")
	b.ReportMetric(float64(timeWait), "time-wait")
	b.ReportMetric(float64(final.HTTPConns), "http-conns-total")
	b.ReportMetric(float64(final.TCPConns), "tcp-conns-total")
	b.ReportMetric(h1.failed(), "failed-probes")
	b.ReportMetric(downs, "endpoints-down")
	for check, name := range map[string]string{"web": "http", "port": "tcp"} {
		if v := h1.meanMS(h0, check+"/success"); !math.IsNaN(v) {
			b.ReportMetric(v, name+"-probe-ms")
			b.ReportMetric(h1.quantileMS(h0, check+"/success", 0.5), name+"-probe-p50-ms<=")
			b.ReportMetric(h1.quantileMS(h0, check+"/success", 0.99), name+"-probe-p99-ms<=")
		}
	}
	b.ReportMetric(float64(tw0), "time-wait-start")
	b.ReportMetric(float64(views1-views0)/wall, "views/s")
	b.ReportMetric(firstRound.Seconds(), "first-round-s")
	b.Logf("%s: %d endpoints in %d datacenters (%.0f%% http, own servers %t); first round %s; measured %.1fs: %.0f probes; %.0f failed in all; "+
		"limit nofile %d/%d", bc.name, n, bc.dcs, 100*bc.httpShare, bc.ownHTTP, firstRound.Round(time.Millisecond), wall, probes, h1.failed(), lim.Cur, lim.Max)
	if reasons := fails.get(); len(reasons) > 0 {
		b.Logf("failed probes by reason: %v", reasons)
	}
}

// p10kProber counts its prober's failures by reason.
type p10kProber struct {
	Prober
	fails *p10kFailures
}

type p10kFailures struct {
	mu       sync.Mutex
	byReason map[string]int
}

func (p *p10kProber) Probe(ctx context.Context, target netip.AddrPort) Result {
	r := p.Prober.Probe(ctx, target)
	if !r.OK && !errors.Is(ctx.Err(), context.Canceled) { // not the stop at the end
		why := reason(r)
		if strings.HasPrefix(why, "timed out") {
			why = "timed out" // without the duration
		}
		p.fails.mu.Lock()
		p.fails.byReason[why]++
		p.fails.mu.Unlock()
	}
	return r
}

func (f *p10kFailures) get() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.byReason)
}

// p10kSpecs spreads n endpoints over the datacenters; datacenter i's
// endpoints probe the servers on 127.0.0.(i mod 40 + 1), in turn. An
// endpoint's answered address is 10.i.x.y, its identity; its probe
// target is shared with other endpoints, as check_address allows.
func p10kSpecs(n int, bc p10kCase, srv p10kServers) []DatacenterSpec {
	httpCheck := &Check{Name: "web", Type: "http", Interval: p10kInterval, Timeout: p10kTimeout, Rise: 2, Fall: 3,
		Method: "GET", Path: "/health", ExpectStatus: []int{200}, BodyLimit: 65536}
	tcpCheck := &Check{Name: "port", Type: "tcp", Interval: p10kInterval, Timeout: p10kTimeout, Rise: 2, Fall: 3}
	byAddr := func(list []netip.AddrPort) map[netip.Addr][]netip.AddrPort {
		out := map[netip.Addr][]netip.AddrPort{}
		for _, ap := range list {
			out[ap.Addr()] = append(out[ap.Addr()], ap)
		}
		return out
	}
	httpBy, tcpBy := byAddr(srv.HTTP), byAddr(srv.TCP)
	specs := make([]DatacenterSpec, bc.dcs)
	for i := range n {
		dc := i % bc.dcs
		d := &specs[dc]
		if d.ID == "" {
			d.ID, d.MinHealthy = fmt.Sprintf("dc%02d", dc+1), 1
		}
		j := len(d.Endpoints)
		host := netip.AddrFrom4([4]byte{127, 0, 0, byte(dc%p10kAddrs + 1)})
		es := EndpointSpec{Address: netip.AddrFrom4([4]byte{10, byte(dc), byte(j >> 8), byte(j)})}
		// Within each datacenter, http and tcp endpoints alternate in
		// proportion.
		if math.Floor(float64(j+1)*bc.httpShare) != math.Floor(float64(j)*bc.httpShare) {
			ports := httpBy[host]
			es.Check, es.Probe = httpCheck, ports[j%len(ports)]
			if bc.ownHTTP {
				es.Probe, srv.Own = srv.Own[0], srv.Own[1:]
			}
		} else {
			ports := tcpBy[host]
			es.Check, es.Probe = tcpCheck, ports[j%len(ports)]
		}
		d.Endpoints = append(d.Endpoints, es)
	}
	return specs
}

// p10kProbes is the number of probe results the Manager has applied.
func p10kProbes(m *Manager) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n uint64
	for _, ep := range m.eps {
		n += ep.st.probes
	}
	return n
}

// p10kRusage is this process's user+system CPU time, in seconds.
func p10kRusage() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// p10kMachineTicks is the busy and total clock ticks of every core, from
// /proc/stat's "cpu" line; steal counts as busy.
func p10kMachineTicks() (busy, total uint64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:9] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func p10kOpenFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// p10kTimeWait counts TCP sockets in TIME_WAIT (state 06) with a local
// address in 127.0.0.0/8, from /proc/net/tcp.
func p10kTimeWait() int {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "  0: 0100007F:8AE2 0500007F:9C41 06 ..."; the address is
		// little-endian hex, so 127.x.y.z ends in "7F".
		fs := strings.Fields(sc.Text())
		if len(fs) > 3 && fs[3] == "06" && strings.HasSuffix(strings.SplitN(fs[1], ":", 2)[0], "7F") {
			n++
		}
	}
	return n
}

// p10kHist is gslb_probe_duration_seconds: count and sum by check and
// result ("web/success").
type p10kHist map[string]p10kCount

type p10kCount struct {
	n, sum  float64
	buckets []float64 // cumulative counts at p10kBuckets
}

// p10kBuckets are the histogram's upper bounds, in seconds.
var p10kBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func p10kDurations(b *testing.B, reg *prometheus.Registry) p10kHist {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	h := p10kHist{}
	for _, mf := range mfs {
		if mf.GetName() != "gslb_probe_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var check, result string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "check":
					check = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			c := p10kCount{n: float64(mt.GetHistogram().GetSampleCount()), sum: mt.GetHistogram().GetSampleSum()}
			for _, bk := range mt.GetHistogram().GetBucket() {
				c.buckets = append(c.buckets, float64(bk.GetCumulativeCount()))
			}
			h[check+"/"+result] = c
		}
	}
	return h
}

// meanMS is the mean duration in ms of the probes with this key that
// ended between h0 and h, or NaN.
func (h p10kHist) meanMS(h0 p10kHist, key string) float64 {
	n := h[key].n - h0[key].n
	if n == 0 {
		return math.NaN()
	}
	return 1000 * (h[key].sum - h0[key].sum) / n
}

// quantileMS is the upper bound, in ms, of the bucket holding quantile
// q of the probes with this key that ended between h0 and h; NaN if none
// did, +Inf past the last bucket.
func (h p10kHist) quantileMS(h0 p10kHist, key string, q float64) float64 {
	n := h[key].n - h0[key].n
	if n == 0 || len(h[key].buckets) != len(p10kBuckets) {
		return math.NaN()
	}
	for i, ub := range p10kBuckets {
		c := h[key].buckets[i]
		if i < len(h0[key].buckets) {
			c -= h0[key].buckets[i]
		}
		if c >= q*n {
			return ub * 1000
		}
	}
	return math.Inf(1)
}

// failed is the failed probes of every check.
func (h p10kHist) failed() float64 {
	var n float64
	for k, v := range h {
		if strings.HasSuffix(k, "/failure") {
			n += v.n
		}
	}
	return n
}

// BenchmarkObserve is the state machine's cost per probe result: a
// steadily healthy endpoint; one that goes down and up again every five
// results (fail, fail, fail, ok, ok: a transition every two or three),
// with damping off; and the same with damping on (4 transitions in 5
// minutes), which soon holds it down and keeps it there.
func BenchmarkObserve(b *testing.B) {
	ok := Result{OK: true, RTT: 300 * time.Microsecond, Load: math.NaN(), LatencyMS: math.NaN()}
	bad := Result{RTT: 500 * time.Millisecond, Load: math.NaN(), LatencyMS: math.NaN(), Err: errors.New("status 503, want 200")}
	damped := Damping{Window: 5 * time.Minute, MaxTransitions: 4, Hold: 2 * time.Minute}
	for _, c := range []struct {
		name    string
		pattern []Result
		d       Damping
	}{
		{"steady", []Result{ok}, damped},
		{"transitions", []Result{bad, bad, bad, ok, ok}, Damping{}},
		{"damped", []Result{bad, bad, bad, ok, ok}, damped},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var e endpointState
			now := time.Now()
			i, changes := 0, 0
			for b.Loop() {
				now = now.Add(time.Second)
				if changed, _ := e.observe(c.pattern[i], now, 2, 3, c.d); changed {
					changes++
				}
				i = (i + 1) % len(c.pattern)
			}
			b.ReportMetric(float64(changes)/float64(b.N), "changes/op")
		})
	}
}
