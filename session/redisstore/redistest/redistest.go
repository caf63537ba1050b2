// Package redistest runs a Redis server for tests: a real redis-server
// process on a loopback port when one is installed, or an in-process
// miniredis otherwise. Tests in other packages import it to exercise code
// that talks to Redis, including what happens when the server stalls
// (Pause), dies (Kill) or comes back empty (Restart).
//
// It is a non-test package so that any package's tests can import it, but
// only tests should: it calls t.Fatal and starts processes. It imports the
// standard library and miniredis only, never go-redis, so a test that
// needs a server does not have to link a client it does not use.
//
// Under CI (the CI environment variable is "true") a missing redis-server
// fails the test instead of falling back: the fallback cannot stall a
// socket the way a stopped process does, and a check that quietly runs
// against a weaker stand-in is a check that does not run.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

const (
	// readyTimeout bounds the wait for a started redis-server to answer
	// PING. It normally answers within a few milliseconds; the bound is
	// for a loaded CI machine, and a failure is reported with its log.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds the wait for a process to exit after SIGTERM
	// (then after SIGKILL).
	stopTimeout = 5 * time.Second
	// startAttempts: the free port found by listening on :0 can be taken
	// by someone else before redis-server binds it, so a server that exits
	// before it is ready is retried on a new port a few times.
	startAttempts = 3
)

// Server is a Redis server for one test. Its methods must be called from
// the test's goroutine (they fail the test with t.Fatal), and are safe to
// call in any order: Resume on a running server, Kill on a killed one and
// so on are no-ops.
type Server struct {
	t    testing.TB
	addr string // 127.0.0.1:port, fixed for the server's life

	mu     sync.Mutex
	paused bool

	// A real redis-server: bin, its working dir and the running process,
	// nil once killed.
	bin  string
	dir  string
	runs int // processes started, to name their log files
	proc *process

	// Or the miniredis fallback.
	mini *miniredis.Miniredis
}

// Start starts a Redis server that lives until the test ends: a real
// redis-server on a free 127.0.0.1 port if one is on PATH, with
// persistence off and its files in a temporary directory. Without
// redis-server it fails the test under CI and otherwise falls back to an
// in-process miniredis, saying so with t.Log.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err == nil && !processesSupported {
		err = errUnsupportedOS
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: redis-server is not on PATH (%v): CI must install redis-server, the miniredis fallback cannot stall like a real server", err)
		}
		return startMini(t)
	}

	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	// Registered after TempDir's own cleanup, so it runs before the
	// directory is removed: the server must be gone first.
	t.Cleanup(s.stop)
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		err = s.startProcess()
		if err == nil {
			return s
		}
		if !errors.Is(err, errExited) || attempt == startAttempts {
			t.Fatalf("redistest: %v", err)
		}
		t.Logf("redistest: %v; retrying on another port", err)
	}
}

func startMini(t testing.TB) *Server {
	t.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		t.Fatalf("redistest: start miniredis: %v", err)
	}
	s := &Server{t: t, addr: m.Addr(), mini: m}
	t.Cleanup(s.stop)
	t.Log("redistest: redis-server is not on PATH; using in-process miniredis (Pause holds its lock instead of stopping a process)")
	return s
}

// Addr is the server's host:port. It stays the same across Restart.
func (s *Server) Addr() string { return s.addr }

// Real reports whether the server is a redis-server process rather than
// the miniredis fallback.
func (s *Server) Real() bool { return s.mini == nil }

// RequireReal skips t unless the server is a real redis-server process.
// It never skips under CI, where Start already guaranteed a real server.
func (s *Server) RequireReal(t testing.TB) {
	t.Helper()
	if !s.Real() {
		t.Skip("redistest: needs a real redis-server, which is not on PATH")
	}
}

// Pause stalls the server without closing anything, as a hung or
// overloaded Redis does: connections are still accepted, by the kernel,
// but no command is answered until Resume.
//
// A real server is stopped with SIGSTOP. The miniredis fallback has its
// lock taken instead, which blocks nearly every command, so clients' reads
// time out just the same. The exceptions are the few commands miniredis
// serves without its lock, HELLO among them: a client dialling a paused
// miniredis completes its handshake and then times out on its first
// command, where against a stopped redis-server the handshake times out.
func (s *Server) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return
	}
	if s.mini != nil {
		s.mini.Lock()
		s.paused = true
		return
	}
	if s.proc == nil {
		s.t.Fatal("redistest: Pause: the server is not running")
	}
	if err := s.proc.signal(sigStop); err != nil {
		s.t.Fatalf("redistest: Pause: %v", err)
	}
	s.paused = true
}

// Resume undoes Pause: the server answers again, starting with the
// commands that queued up while it was paused.
func (s *Server) Resume() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumeLocked()
}

func (s *Server) resumeLocked() {
	if !s.paused {
		return
	}
	s.paused = false
	if s.mini != nil {
		s.mini.Unlock()
		return
	}
	if s.proc != nil {
		if err := s.proc.signal(sigCont); err != nil {
			s.t.Errorf("redistest: Resume: %v", err)
		}
	}
}

// Kill ends the server abruptly, as a crash does: a real server gets
// SIGKILL and Kill returns once the process is gone; miniredis is closed.
// Either way open connections are reset and new ones refused until
// Restart.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if s.mini != nil {
		s.resumeLocked() // Close takes the lock Pause holds
		s.mini.Close()
		return
	}
	s.paused = false // SIGKILL ends a stopped process too
	if s.proc == nil {
		return
	}
	p := s.proc
	s.proc = nil
	if err := p.kill(); err != nil {
		s.t.Fatalf("redistest: Kill: %v", err)
	}
}

// Restart kills the server if it is running and starts it again on the
// same address, returning once it answers PING. A real server comes back
// empty (it saves nothing); miniredis keeps its data across Restart, so a
// test must not rely on the data being either lost or kept.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	if s.mini != nil {
		if err := s.mini.Restart(); err != nil {
			s.t.Fatalf("redistest: Restart: %v", err)
		}
		return
	}
	// The port is ours until the kernel says otherwise: redis-server sets
	// SO_REUSEADDR, so the dead process's connections in TIME_WAIT do not
	// block the bind. Only a stranger taking the port in between can, and
	// then the test cannot go on at this address.
	if err := s.startProcess(); err != nil {
		s.t.Fatalf("redistest: Restart: %v", err)
	}
}

// stop is the test's cleanup: it ends the server gracefully if it can.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mini != nil {
		s.resumeLocked()
		s.mini.Close()
		return
	}
	if s.proc == nil {
		return
	}
	// A stopped process does not act on SIGTERM until continued.
	s.resumeLocked()
	p := s.proc
	s.proc = nil
	if err := p.stop(); err != nil {
		s.t.Errorf("redistest: stop: %v", err)
	}
}

var errUnsupportedOS = errors.New("a real server needs SIGSTOP, which this system lacks")

// errExited means redis-server exited before it answered PING, most
// likely because its port was taken.
var errExited = errors.New("redis-server exited before it was ready")

// startProcess starts redis-server on s.addr and waits until it answers
// PING. s.mu is held or s is not shared yet.
func (s *Server) startProcess() error {
	_, port, _ := net.SplitHostPort(s.addr)
	s.runs++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.runs))
	p, err := startProcess(s.bin, logPath,
		"--port", port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	)
	if err != nil {
		return err
	}
	if err := waitReady(s.addr, p, readyTimeout); err != nil {
		_ = p.kill()
		return fmt.Errorf("redis-server on %s: %w\n%s", s.addr, err, tail(logPath, 20))
	}
	s.proc = p
	return nil
}

// waitReady polls the server with PING until it answers PONG, the process
// exits or the timeout passes. Polling is the only readiness signal an
// external process offers; each try is bounded, so the whole wait is.
func waitReady(addr string, p *process, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = ping(addr, 250*time.Millisecond); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w (%v)", errExited, p.waitErr)
		case <-deadline.C:
			return fmt.Errorf("no PONG within %s: %v", timeout, last)
		case <-tick.C:
		}
	}
}

// ping sends one PING and expects +PONG. It speaks RESP by hand so that
// the package needs no Redis client.
func ping(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write(command("PING")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// While loading, redis answers -LOADING; anything but PONG is not ready.
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// command encodes args as a RESP array of bulk strings, the form every
// server accepts (miniredis does not take inline commands).
func command(args ...string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// tail returns the last n lines of the file at path, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "redis-server log " + path + ":\n" + strings.Join(lines, "\n")
}
