package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// queryLoad sends queries from several UDP clients, one outstanding each,
// until stopped, and counts what was answered and what was lost (no
// answer within the timeout). Each client is a connected socket, like a
// resolver's, so a reply from a wrong address would count as lost too.
type queryLoad struct {
	sent, answered, lost atomic.Int64
	mu                   sync.Mutex
	wrong                []string // answers that were not a NOERROR with records
	stop                 chan struct{}
	wg                   sync.WaitGroup
}

func startQueryLoad(t *testing.T, addr, name string, clients int) *queryLoad {
	t.Helper()
	l := &queryLoad{stop: make(chan struct{})}
	const maxPerClient = 200000 // bounds the loop whatever happens to stop
	for i := 0; i < clients; i++ {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer conn.Close()
			buf := make([]byte, 1500)
			for n := 0; n < maxPerClient; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				q := new(dns.Msg)
				q.SetQuestion(name, dns.TypeA)
				b, _ := q.Pack()
				l.sent.Add(1)
				if _, err := conn.Write(b); err != nil {
					l.lost.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				for {
					k, err := conn.Read(buf)
					if err != nil {
						l.lost.Add(1)
						l.mu.Lock()
						if len(l.wrong) < 10 {
							l.wrong = append(l.wrong, fmt.Sprintf("no answer (%v) at %s", err, time.Now().Format("15:04:05.000")))
						}
						l.mu.Unlock()
						break
					}
					r := new(dns.Msg)
					if r.Unpack(buf[:k]) == nil && r.Id == q.Id { // a late reply to an earlier query is skipped
						if r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
							l.answered.Add(1)
						} else {
							l.lost.Add(1)
							l.mu.Lock()
							if len(l.wrong) < 10 {
								l.wrong = append(l.wrong, fmt.Sprintf("%s at %s", dns.RcodeToString[r.Rcode], time.Now().Format("15:04:05.000")))
							}
							l.mu.Unlock()
						}
						break
					}
				}
			}
		}()
	}
	return l
}

func (l *queryLoad) finish(t *testing.T) (sent, answered, lost int64) {
	close(l.stop)
	l.wg.Wait()
	for _, w := range l.wrong {
		t.Logf("failed query: %s", w)
	}
	return l.sent.Load(), l.answered.Load(), l.lost.Load()
}

// TestHandoverUnderLoad: a second instance started with the same
// dns.handover_socket takes the first one's sockets, the first stops once
// the second is ready, and a query loop running throughout loses nothing.
func TestHandoverUnderLoad(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, dir, fmt.Sprintf(baseConfig, "v1"))
	sock := filepath.Join(dir, "handover.sock")
	first := startDaemon(t, file, "--set", "dns.handover_socket="+sock)
	load := startQueryLoad(t, first.dns, "www.it.test.", 4)
	time.Sleep(300 * time.Millisecond)

	second := startDaemon(t, file, "--set", "dns.handover_socket="+sock)
	if second.dns != first.dns || second.http != first.http {
		t.Errorf("successor serves dns %s, http %s; want the predecessor's %s, %s", second.dns, second.http, first.dns, first.http)
	}
	select {
	case err := <-first.exited:
		if err != nil {
			t.Errorf("predecessor exit: got %v, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("predecessor still running 20s after its successor was ready")
	}
	time.Sleep(300 * time.Millisecond) // the successor alone, on the same sockets
	sent, answered, lost := load.finish(t)
	t.Logf("queries across the hand-over: sent %d, answered %d, lost %d", sent, answered, lost)
	if lost != 0 || answered == 0 {
		t.Errorf("hand-over under load: sent %d, answered %d, lost %d; want none lost", sent, answered, lost)
	}
	if !first.logged("hand-over: the successor is ready; stopping") || !second.logged("hand-over complete") {
		t.Errorf("hand-over not logged on both sides:\npredecessor:\n%s\nsuccessor:\n%s", first.log(), second.log())
	}
	if code, _ := httpDo(t, "GET", "http://"+second.http+"/readyz", ""); code != http.StatusOK {
		t.Errorf("successor /readyz on the inherited HTTP socket: %d", code)
	}

	// The successor took over the hand-over socket too: a third instance
	// takes over from it.
	third := startDaemon(t, file, "--set", "dns.handover_socket="+sock)
	select {
	case <-second.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the second instance did not hand over to a third")
	}
	if r := third.exchange(t, "udp", "www.it.test.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("third instance: got %v", r)
	}
}

// TestHandoverAbandoned: a successor that fails after taking the sockets
// leaves the predecessor serving them.
func TestHandoverAbandoned(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, dir, fmt.Sprintf(baseConfig, "v1"))
	sock := filepath.Join(dir, "handover.sock")
	first := startDaemon(t, file, "--set", "dns.handover_socket="+sock)
	// The successor's HTTP address is taken by someone else, so it takes
	// the DNS sockets, then fails to start.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	out, code := runCLI(t, "serve", "--config", file, "--dns.listen", "127.0.0.1:0", "--http.listen", busy.Addr().String(),
		"--set", "dns.handover_socket="+sock)
	if code == 0 || !strings.Contains(out, busy.Addr().String()) {
		t.Fatalf("successor with a busy HTTP port: exit %d, %s; want a failure naming %s", code, out, busy.Addr())
	}
	if r := first.exchange(t, "udp", "www.it.test.", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("predecessor after an abandoned hand-over: got %v", r)
	}
	eventually(t, "the predecessor to log the abandoned hand-over", func() bool {
		return first.logged("the successor went away before it was ready")
	})
}

// activationSockets binds what a systemd socket unit would: DNS over UDP
// and TCP on one port, and the HTTP listener.
func activationSockets(t *testing.T) (files []*os.File, dnsAddr, httpAddr string) {
	t.Helper()
	tl, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tl.Addr().(*net.TCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []interface{ File() (*os.File, error) }{uc, tl, hl} {
		f, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	dnsAddr, httpAddr = tl.Addr().String(), hl.Addr().String()
	uc.Close()
	tl.Close()
	hl.Close()
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	return files, dnsAddr, httpAddr
}

// activatedCommand runs gslbd as systemd would with socket activation:
// the sockets from descriptor 3 on, LISTEN_PID naming the process itself
// (the shell sets it, then execs gslbd in its place).
func activatedCommand(files []*os.File, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, gslbdBin}, args...)...)
	cmd.ExtraFiles = files
	cmd.Env = append(append(os.Environ(), fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES=dns:dns:http"), env...)
	return cmd
}

// TestSocketActivationRestart: the model of `systemctl restart` with
// gslbd.socket: the sockets outlive the process, so queries sent while
// the old process stops and the new one starts wait in them, and none is
// lost.
func TestSocketActivationRestart(t *testing.T) {
	files, dnsAddr, httpAddr := activationSockets(t)
	file := writeConfig(t, t.TempDir(), fmt.Sprintf(baseConfig, "v1"))
	args := []string{"serve", "--config", file, "--dns.listen", dnsAddr, "--http.listen", httpAddr, "--log.format", "json"}
	first := startDaemonCmd(t, activatedCommand(files, nil, args...))
	if first.dns != dnsAddr || first.http != httpAddr {
		t.Fatalf("activated instance serves %s and %s; want the passed sockets %s and %s", first.dns, first.http, dnsAddr, httpAddr)
	}
	load := startQueryLoad(t, dnsAddr, "www.it.test.", 4)
	time.Sleep(300 * time.Millisecond)
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("first instance still running 15s after SIGTERM")
	}
	time.Sleep(200 * time.Millisecond) // a gap with no process at all
	second := startDaemonCmd(t, activatedCommand(files, nil, args...))
	time.Sleep(300 * time.Millisecond)
	sent, answered, lost := load.finish(t)
	t.Logf("queries across the restart: sent %d, answered %d, lost %d", sent, answered, lost)
	if lost != 0 || answered == 0 {
		t.Errorf("restart with activated sockets: sent %d, answered %d, lost %d; want none lost", sent, answered, lost)
	}
	if r := second.exchange(t, "tcp", "www.it.test.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("TCP on the activated socket: got %v", r)
	}
}

// TestSocketActivationUnlistedSocket: a socket unit and a configuration
// that disagree stop start-up with both named, rather than leaving a
// socket nobody serves.
func TestSocketActivationUnlistedSocket(t *testing.T) {
	files, dnsAddr, _ := activationSockets(t)
	file := writeConfig(t, t.TempDir(), fmt.Sprintf(baseConfig, "v1"))
	cmd := activatedCommand(files, nil, "serve", "--config", file, "--dns.listen", dnsAddr, "--http.listen", "127.0.0.1:0")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A daemon that wrongly starts would serve until killed.
	timer := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	if err == nil || !strings.Contains(out.String(), "socket activation passed tcp 127.0.0.1:") ||
		!strings.Contains(out.String(), "neither dns.listen nor http.listen lists") {
		t.Fatalf("unlisted activated socket: %v, %s; want a refusal naming it", err, out.String())
	}
}

// TestNotifyReady: with Type=notify, READY=1 must reach systemd only
// once the daemon answers and /readyz says ready, and not before: the
// first probe round here takes most of a second.
func TestNotifyReady(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(800 * time.Millisecond)
		fmt.Fprint(w, "ok")
	}))
	defer slow.Close()
	dir := t.TempDir()
	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	files, dnsAddr, httpAddr := activationSockets(t)
	body := fmt.Sprintf(healthConfig, slow.Listener.Addr(), slow.Listener.Addr())
	body = strings.Replace(body, "interval: 100ms, timeout: 80ms", "interval: 2s, timeout: 1500ms", 1)
	file := writeConfig(t, dir, body)
	cmd := activatedCommand(files, []string{"NOTIFY_SOCKET=" + notifyPath},
		"serve", "--config", file, "--dns.listen", dnsAddr, "--http.listen", httpAddr, "--log.format", "json")

	type observation struct {
		state     string
		readyz    int
		answered  bool
		sawNotYet bool
	}
	got := make(chan observation, 4)
	var notReadySeen atomic.Bool
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			o := observation{state: string(buf[:n]), sawNotYet: notReadySeen.Load()}
			if strings.Contains(o.state, "READY=1") {
				o.readyz, _ = httpDo(t, "GET", "http://"+httpAddr+"/readyz", "")
				c := &dns.Client{Timeout: time.Second}
				q := new(dns.Msg)
				q.SetQuestion("www.h.test.", dns.TypeA)
				r, _, err := c.Exchange(q, dnsAddr)
				o.answered = err == nil && len(r.Answer) > 0
			}
			got <- o
		}
	}()
	// Watch /readyz while the first probe round runs.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					notReadySeen.Store(true)
				}
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	d := startDaemonCmd(t, cmd)
	<-watchDone
	select {
	case o := <-got:
		if !strings.Contains(o.state, "READY=1") {
			t.Fatalf("first notification %q; want READY=1", o.state)
		}
		if !o.sawNotYet {
			t.Errorf("READY=1 came before /readyz was ever seen answering 503 during the probe round")
		}
		if o.readyz != http.StatusOK || !o.answered {
			t.Errorf("at READY=1: /readyz %d, DNS answered %v; want 200 and an answer", o.readyz, o.answered)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no READY=1 on NOTIFY_SOCKET")
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case o := <-got:
		if !strings.Contains(o.state, "STOPPING=1") {
			t.Errorf("notification at SIGTERM %q; want STOPPING=1", o.state)
		}
	case <-time.After(10 * time.Second):
		t.Error("no STOPPING=1 on NOTIFY_SOCKET after SIGTERM")
	}
}
