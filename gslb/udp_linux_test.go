//go:build linux

package gslb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// serveOn starts srv's listeners on addrs and stops them when the test
// ends, requiring Serve to return nil after Shutdown.
func serveOn(t *testing.T, srv *Server, addrs ...string) *Listeners {
	t.Helper()
	ln, err := listenOn(srv, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, ln)
	return ln
}

func listenOn(srv *Server, addrs ...string) (*Listeners, error) {
	lc := ListenConfig{TCPIdleTimeout: time.Second, TCPMaxConnections: 4}
	for _, a := range addrs {
		lc.Addrs = append(lc.Addrs, netip.MustParseAddrPort(a))
	}
	return srv.Listen(lc)
}

func serveUntilCleanup(t *testing.T, ln *Listeners) {
	served := make(chan error, 1)
	go func() { served <- ln.Serve() }()
	t.Cleanup(func() {
		if err := ln.Shutdown(t.Context()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of Shutdown")
		}
	})
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// allocTries is how many times a socket allocation count is taken; the
// fewest counts. The count is process-wide, so another test's goroutines
// winding down can land thousands of objects in one window, while an
// allocation per query shows in every window.
const allocTries = 3

// fewestHeapObjects runs fn allocTries times and returns the smallest
// number of heap objects allocated, process-wide, during one run.
func fewestHeapObjects(fn func()) uint64 {
	fewest := ^uint64(0)
	for range allocTries {
		before := heapObjects()
		fn()
		fewest = min(fewest, heapObjects()-before)
	}
	return fewest
}

// TestUDPNoAllocsThroughSocket counts every heap allocation in the
// process while a client exchanges queries with the real listener over
// loopback: the fast path, socket loop and metrics included, answering
// must not allocate.
func TestUDPNoAllocsThroughSocket(t *testing.T) {
	srv, reg := newTestServer(t, policySnapshot(t))
	ln := serveOn(t, srv, "127.0.0.1:0")
	conn, err := net.DialUDP("udp", nil, ln.Addrs()[0].(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(81, 2, 69, 0)}
	queries := [][]byte{
		packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, ecs))),
		packed(t, query("failover.p.test.", dns.TypeAAAA, withEDNS(1232, false))),
		packed(t, query("nope.p.test.", dns.TypeA)),
		packed(t, query("www.example.com.", dns.TypeA)),
	}
	buf := make([]byte, 4096)
	const burst = 8 // several queries in flight, so batches hold more than one
	exchange := func(rounds int) {
		for range rounds {
			for _, q := range queries {
				for range burst {
					if _, err := conn.Write(q); err != nil {
						t.Fatal(err)
					}
				}
				for range burst {
					_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
					if _, err := conn.Read(buf); err != nil {
						t.Fatalf("reading an answer: %v", err)
					}
				}
			}
		}
	}
	exchange(20) // resolve the metric series, warm the GeoIP cache
	const rounds = 100
	allocs := fewestHeapObjects(func() { exchange(rounds) })
	n := uint64(rounds * len(queries) * burst)
	// A few objects of runtime background work (timers, the deadline's
	// own bookkeeping) may land in the window; one per query would be n.
	if allocs > 16 {
		t.Errorf("%d heap objects allocated over %d queries through the socket; want none per query", allocs, n)
	}
	got := testutil.ToFloat64(srv.metrics.requests.WithLabelValues("p.test.", "A", "udp"))
	if want := float64((20 + allocTries*rounds) * burst * 2); got != want {
		t.Errorf("gslb_dns_requests_total{zone=p.test.,qtype=A,proto=udp}: got %v, want %v", got, want)
	}
	got = testutil.ToFloat64(srv.metrics.responses.WithLabelValues("none", "A", "REFUSED", "udp"))
	if want := float64((20 + allocTries*rounds) * burst); got != want {
		t.Errorf("gslb_dns_responses_total for REFUSED: got %v, want %v", got, want)
	}
	if c, _ := testutil.GatherAndCount(reg, "gslb_dns_answers_total"); c == 0 {
		t.Error("gslb_dns_answers_total has no series after service answers")
	}
}

// TestUDPFallbackLikeMiekg sends what the fast path declines through the
// real socket: each gets what miekg/dns's server and the full path give.
func TestUDPFallbackLikeMiekg(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	ln := serveOn(t, srv, "127.0.0.1:0")
	addr := ln.Addrs()[0].String()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for name, tc := range map[string]struct {
		req   *dns.Msg
		check func(*dns.Msg) bool
	}{
		"DO copied":  {query("host.example.test.", dns.TypeA, withEDNS(1232, true)), func(r *dns.Msg) bool { return r.IsEdns0() != nil && r.IsEdns0().Do() && len(r.Answer) == 1 }},
		"ANY":        {query("example.test.", dns.TypeANY), func(r *dns.Msg) bool { return len(r.Answer) == 1 && r.Answer[0].Header().Rrtype == dns.TypeHINFO }},
		"truncation": {query("big.example.test.", dns.TypeTXT), func(r *dns.Msg) bool { return r.Truncated }},
		"BADVERS": {query("host.example.test.", dns.TypeA, withEDNS(1232, false), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }),
			func(r *dns.Msg) bool { return r.Rcode == dns.RcodeBadVers }},
	} {
		r, _, err := c.Exchange(tc.req, addr)
		if err != nil || !tc.check(r) {
			t.Errorf("%s: got %v, %v", name, r, err)
		}
	}

	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A question cut short: miekg/dns's server answers FORMERR itself.
	q := packed(t, query("host.example.test.", dns.TypeA))
	if _, err := conn.Write(q[:len(q)-3]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := conn.Read(buf)
	r := new(dns.Msg)
	id := binary.BigEndian.Uint16(q)
	if err != nil || r.Unpack(buf[:n]) != nil || r.Rcode != dns.RcodeFormatError || r.Id != id {
		t.Errorf("truncated question: got %v, %v; want FORMERR with the query's ID", r, err)
	}
	// A response is never answered; the next query still is.
	resp := packed(t, query("host.example.test.", dns.TypeA, func(m *dns.Msg) { m.Response = true }))
	if _, err := conn.Write(resp); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(q); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err = conn.Read(buf)
	if err != nil || r.Unpack(buf[:n]) != nil || r.Id != id || len(r.Answer) != 1 {
		t.Errorf("after a response packet: got %v, %v; want the query's answer only", r, err)
	}
	if got := testutil.ToFloat64(srv.metrics.malformed.WithLabelValues("udp")); got != 1 {
		t.Errorf("gslb_dns_malformed_requests_total{proto=udp}: got %v, want 1", got)
	}
}

// TestUDPShutdownLeavesSharedSocket: two listeners on one socket (a
// restart's hand-over); stopping the first must not stop the second.
func TestUDPShutdownLeavesSharedSocket(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	lc := ListenConfig{Addrs: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, TCPIdleTimeout: time.Second, TCPMaxConnections: 4}
	first, err := srv.Listen(lc)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*os.File{}
	for _, s := range first.Sockets() {
		f, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		files[s.Network] = f
	}
	lc.Inherited = func(network string, _ netip.AddrPort) *os.File { return files[network] }
	second, err := srv.Listen(lc)
	if err != nil {
		t.Fatal(err)
	}
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() { done1 <- first.Serve() }()
	go func() { done2 <- second.Serve() }()
	defer func() {
		_ = second.Shutdown(t.Context())
		<-done2
	}()
	addr := first.Addrs()[0].String()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	if _, _, err := c.Exchange(query("host.example.test.", dns.TypeA), addr); err != nil {
		t.Fatal(err)
	}
	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatalf("first shutdown: %v", err)
	}
	select {
	case err := <-done1:
		if err != nil {
			t.Fatalf("first Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first Serve did not return after Shutdown")
	}
	for i := range 20 {
		if r, _, err := c.Exchange(query("host.example.test.", dns.TypeA), addr); err != nil || len(r.Answer) != 1 {
			t.Fatalf("query %d after the first listener stopped: %v, %v; the shared socket must still be read", i, r, err)
		}
	}
}

// TestUDPSwapUnderLoad: clients query the real socket while snapshots
// are swapped as fast as they can be built; run with -race it checks the
// reader, the fallback workers and Swap share nothing unsynchronised, and
// every query is answered from one snapshot or the other.
func TestUDPSwapUnderLoad(t *testing.T) {
	base := policySnapshot(t)
	down := map[string]DCState{"eu-central": {Up: false, Load: math.NaN(), LatencyMS: math.NaN(), Ramp: 1, Unsettled: true}}
	srv, _ := newTestServer(t, base)
	addr := serveOn(t, srv, "127.0.0.1:0").Addrs()[0].String()
	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n%2 == 0 {
				srv.Swap(base.WithHealth(down)) // built while queries read the last one
			} else {
				srv.Swap(base)
			}
			n++
			time.Sleep(100 * time.Microsecond)
		}
	}()
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(89, 160, 20, 0)}
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			for i := range 300 {
				req := query("score.p.test.", dns.TypeA, withEDNS(1232, false, ecs))
				if w == 3 && i%2 == 0 {
					req = query("failover.p.test.", dns.TypeA, withEDNS(1232, true)) // the fallback path
				}
				r, _, err := c.Exchange(req, addr)
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					errs <- fmt.Errorf("client %d query %d: %v, %v", w, i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-swapped; n < 10 {
		t.Errorf("only %d swaps happened while clients queried", n)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestUDPSourceAddressNetns: on a host with two addresses on one
// interface, a reply must leave from the address its query was sent to,
// on wildcard listeners for both families. The client is bound to the
// other address, so a reply sourced by routing alone would come from the
// wrong one. Runs in a network namespace of its own (root needed; CI runs
// as root and must not skip it).
func TestUDPSourceAddressNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run the source-address test as root")
		}
		t.Skip("creating a network namespace needs root")
	}
	ns := fmt.Sprintf("gslbd-udp-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	// The namespace's loopback carries both addresses: it needs no kernel
	// module (a dummy interface does), and routing alone would source a
	// reply to 192.0.2.10 from 192.0.2.10, whatever the query was sent to.
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "addr", "add", "192.0.2.10/24", "dev", "lo")
	run("-n", ns, "addr", "add", "192.0.2.11/24", "dev", "lo")
	run("-n", ns, "addr", "add", "2001:db8::10/64", "dev", "lo", "nodad")
	run("-n", ns, "addr", "add", "2001:db8::11/64", "dev", "lo", "nodad")

	srv, _ := newTestServer(t, testSnapshot(t))
	var ln *Listeners
	var clients = map[string]*net.UDPConn{}
	inNetns(t, ns, func() error {
		var err error
		if ln, err = listenOn(srv, "0.0.0.0:0", "[::]:0"); err != nil {
			return err
		}
		for _, a := range []string{"192.0.2.10", "192.0.2.11", "2001:db8::10", "2001:db8::11"} {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(a), 0)))
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
			clients[a] = c
		}
		return nil
	})
	serveUntilCleanup(t, ln)
	port4 := uint16(ln.Addrs()[0].(*net.UDPAddr).Port)
	port6 := uint16(ln.Addrs()[2].(*net.UDPAddr).Port)
	for _, tc := range []struct{ from, to string }{
		{"192.0.2.10", "192.0.2.11"}, {"192.0.2.11", "192.0.2.10"},
		{"2001:db8::10", "2001:db8::11"}, {"2001:db8::11", "2001:db8::10"},
	} {
		port := port4
		if strings.Contains(tc.to, ":") {
			port = port6
		}
		to := netip.AddrPortFrom(netip.MustParseAddr(tc.to), port)
		for name, req := range map[string]*dns.Msg{
			"fast":     query("host.example.test.", dns.TypeA),
			"fallback": query("host.example.test.", dns.TypeA, withEDNS(1232, true)),
		} {
			c := clients[tc.from]
			if _, err := c.WriteToUDPAddrPort(packed(t, req), to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1232)
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("%s query from %s to %s: %v", name, tc.from, to, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil || len(r.Answer) != 1 {
				t.Errorf("%s query to %s: got %v, %v", name, to, r, err)
			}
			if from.Addr().Unmap() != to.Addr() || from.Port() != to.Port() {
				t.Errorf("%s query sent to %s was answered from %s", name, to, from)
			}
		}
	}
}

// inNetns runs f on a thread moved into the named network namespace:
// sockets created there stay in it, whichever thread later uses them.
func inNetns(t *testing.T, ns string, f func() error) {
	t.Helper()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime then discards it
			// rather than reuse a thread in the wrong namespace.
			done <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// stalledAffinity is a session store that does not answer until released,
// as Redis paused mid-look-up.
type stalledAffinity struct {
	entered chan struct{}
	release chan struct{}
}

func (a *stalledAffinity) Sticky(string, netip.Prefix, string) (string, string, bool) {
	a.entered <- struct{}{}
	<-a.release
	return "", "", false
}

func (a *stalledAffinity) Repin(string, netip.Prefix, string, string) {}

// TestUDPStalledSessionStoreDoesNotStallReader: while a sticky query
// waits on a session store that does not answer, queries for other names
// on the same socket are still answered, by the reader and by the other
// fallback workers; the sticky one is answered once the store returns.
func TestUDPStalledSessionStoreDoesNotStallReader(t *testing.T) {
	s := policySnapshot(t)
	for _, svc := range s.services {
		svc.sticky = svc.name == "score.p.test."
	}
	aff := &stalledAffinity{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s.SetAffinity(aff, false, 0, 0)
	srv, _ := newTestServer(t, s)
	addr := serveOn(t, srv, "127.0.0.1:0").Addrs()[0].String()

	sticky := make(chan error, 1)
	go func() {
		c := &dns.Client{Net: "udp", Timeout: 10 * time.Second}
		r, _, err := c.Exchange(query("score.p.test.", dns.TypeA), addr)
		if err == nil && len(r.Answer) == 0 {
			err = fmt.Errorf("sticky query: got %v, want an answer", r)
		}
		sticky <- err
	}()
	select {
	case <-aff.entered:
	case <-time.After(5 * time.Second):
		close(aff.release)
		t.Fatal("the sticky query never reached the session store")
	}
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for _, req := range []*dns.Msg{
		query("failover.p.test.", dns.TypeA),                       // the fast path
		query("failover.p.test.", dns.TypeA, withEDNS(1232, true)), // another fallback worker
	} {
		if r, _, err := c.Exchange(req, addr); err != nil || len(r.Answer) == 0 {
			t.Errorf("%v while the session store stalls: got %v, %v", req.Question[0], r, err)
		}
	}
	close(aff.release)
	if err := <-sticky; err != nil {
		t.Error(err)
	}
}

// TestUDPAnswerCacheFollowsSwaps asks the real socket the same query
// again and again while the health view changes: the replayed answer must
// follow every swap, and the repeats must be replayed.
func TestUDPAnswerCacheFollowsSwaps(t *testing.T) {
	base := policySnapshot(t)
	frankfurtDown := base.WithHealth(map[string]DCState{"eu-central": {Up: false, Load: math.NaN(), LatencyMS: math.NaN(), Ramp: 1, Unsettled: true}})
	srv, reg := newTestServer(t, base)
	ln := serveOn(t, srv, "127.0.0.1:0")
	conn, err := net.DialUDP("udp", nil, ln.Addrs()[0].(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(89, 160, 20, 0)}
	pkt := packed(t, query("score.p.test.", dns.TypeA, withEDNS(1232, false, ecs)))
	client := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	ask := func() []byte {
		t.Helper()
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading an answer: %v", err)
		}
		return buf[:n]
	}
	for i, s := range []*Snapshot{base, frankfurtDown, base, frankfurtDown} {
		srv.Swap(s)
		want := fastWire(t, s, pkt, client)
		for j := range 3 {
			if got := ask(); !bytes.Equal(got, want) {
				t.Fatalf("swap %d, query %d: answered %x; the fast path under this snapshot answers %x", i, j, got, want)
			}
		}
	}
	if bytes.Equal(fastWire(t, base, pkt, client), fastWire(t, frankfurtDown, pkt, client)) {
		t.Fatal("both snapshots answer alike; the test needs answers that differ")
	}
	// The reader adds its counts after it has sent the batch.
	hits := func() float64 {
		return testutil.ToFloat64(srv.metrics.answerCacheHits)
	}
	// The first snapshot: computed, computed and kept, replayed. Each
	// later one: computed and kept at once (the query was kept before),
	// replayed twice.
	const wantHits, wantMisses = 1 + 3*2, 2 + 3*1
	for deadline := time.Now().Add(3 * time.Second); hits() < wantHits && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := hits(); got != wantHits {
		t.Errorf("answer cache hits %v; want %d", got, wantHits)
	}
	if got := testutil.ToFloat64(srv.metrics.answerCacheMisses); got != wantMisses {
		t.Errorf("answer cache misses %v; want %d", got, wantMisses)
	}
	if c, _ := testutil.GatherAndCount(reg, "gslb_dns_answer_cache_lookups_total"); c != 2 {
		t.Errorf("gslb_dns_answer_cache_lookups_total has %d series; want hit and miss", c)
	}
}

// nonBlocking reports whether a socket (its file description, shared by
// every descriptor and process holding it) is in non-blocking mode.
func nonBlocking(t *testing.T, sk Socket) bool {
	t.Helper()
	f, err := sk.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		t.Fatal(err, ferr)
	}
	return flags&unix.O_NONBLOCK != 0
}

// TestUDPBlockingOnlyWhenOwned: a socket bound here is read with blocking
// waits at once; one handed over stays non-blocking, which a predecessor
// still reading it may rely on, until Own, and is served either way.
func TestUDPBlockingOnlyWhenOwned(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	fresh := serveOn(t, srv, "127.0.0.1:0")
	if nonBlocking(t, fresh.Sockets()[0]) {
		t.Error("a socket bound here is non-blocking; its reader should block in recvmmsg")
	}

	// The predecessor's socket, as the hand-over passes it.
	pred, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pred.Close()
	f, err := pred.File()
	if err != nil {
		t.Fatal(err)
	}
	ap := pred.LocalAddr().(*net.UDPAddr).AddrPort()
	ln, err := srv.Listen(ListenConfig{Addrs: []netip.AddrPort{ap}, TCPIdleTimeout: time.Second, TCPMaxConnections: 4,
		Inherited: func(network string, _ netip.AddrPort) *os.File {
			if network == "udp" {
				return f
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, ln)
	udp := ln.Sockets()[0]
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	ask := func(when string) {
		t.Helper()
		r, _, err := c.Exchange(query("host.example.test.", dns.TypeA), ap.String())
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("%s: %v %v", when, r, err)
		}
	}
	if !nonBlocking(t, udp) {
		t.Fatal("a handed-over socket was made blocking before the predecessor stopped")
	}
	ask("before Own")
	if err := ln.Own(); err != nil {
		t.Fatal(err)
	}
	if nonBlocking(t, udp) {
		t.Fatal("still non-blocking after Own")
	}
	ask("after Own")
}
