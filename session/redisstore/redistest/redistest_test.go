package redistest

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// send writes a command on c and returns the reply's first line.
func send(c net.Conn, timeout time.Duration, args ...string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := c.Write(command(args...)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exercise runs the Server's whole API against s.
func exercise(t *testing.T, s *Server) {
	addr := s.Addr()
	if err := ping(addr, time.Second); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	c := dial(t, addr)
	if got, err := send(c, time.Second, "SET", "k", "v"); err != nil || got != "+OK" {
		t.Fatalf("SET: %q, %v", got, err)
	}

	s.Pause()
	s.Pause() // twice is once
	// A stalled server: the command goes out, nothing comes back.
	if _, err := send(c, 50*time.Millisecond, "GET", "k"); !isTimeout(err) {
		t.Fatalf("GET on a paused server: %v, want a timeout", err)
	}
	s.Resume()
	s.Resume()
	if err := ping(addr, time.Second); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}

	s.Kill()
	s.Kill()
	if err := ping(addr, time.Second); err == nil {
		t.Fatal("PING after Kill: answered")
	}

	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Addr after Restart: %s, want %s", s.Addr(), addr)
	}
	if err := ping(addr, time.Second); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}

	// Restart of a running, paused server.
	s.Pause()
	s.Restart()
	if err := ping(addr, time.Second); err != nil {
		t.Fatalf("PING after Restart of a paused server: %v", err)
	}
	// And the test ends paused: cleanup must cope.
	s.Pause()
}

func TestServer(t *testing.T) {
	var addr string
	t.Run("real", func(t *testing.T) {
		s := Start(t)
		s.RequireReal(t)
		addr = s.Addr()
		exercise(t, s)
	})
	if addr == "" {
		return // skipped
	}
	// Cleanup has stopped the server, paused as it was.
	if err := ping(addr, time.Second); err == nil {
		t.Fatalf("%s still answers after its test ended", addr)
	}
}

func TestServerMiniredis(t *testing.T) {
	t.Setenv("PATH", "")
	t.Setenv("CI", "")
	var addr string
	t.Run("mini", func(t *testing.T) {
		s := Start(t)
		if s.Real() {
			t.Fatal("Real with no redis-server on PATH")
		}
		addr = s.Addr()
		exercise(t, s)
	})
	if err := ping(addr, time.Second); err == nil {
		t.Fatalf("%s still answers after its test ended", addr)
	}
}

func TestRealUnderCI(t *testing.T) {
	if os.Getenv("CI") != "true" {
		t.Skip("not CI")
	}
	if s := Start(t); !s.Real() {
		t.Fatal("under CI, Start returned miniredis")
	}
}
