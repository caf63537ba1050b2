package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The hand-over protocol, one Unix stream connection per successor:
//
//	successor:   SOCKETS <pid>\n
//	predecessor: one message: JSON {"pid":N,"sockets":[names]} with the
//	             descriptors attached (SCM_RIGHTS), in the same order
//	successor:   READY\n    (once it answers and /readyz is ready)
//	predecessor: stops reading, finishes what is in flight, closes its
//	             descriptors, then: DONE\n, and exits
//
// Both processes read the same kernel sockets for a while; a query is
// taken by one of them and answered by it, so none waits on a socket
// nobody reads. If the successor dies before READY, the connection closes
// and the predecessor simply goes on serving.

const (
	handoverTimeout = 5 * time.Second // one protocol step, not the successor's start
	maxHandedOver   = 64
)

type handoverHello struct {
	PID     int      `json:"pid"`
	Sockets []string `json:"sockets"`
}

// predecessor is the running instance this one takes over from.
type predecessor struct {
	conn *net.UnixConn
	pid  int
}

// takeOver asks the instance listening on path for its sockets. No one
// listening (no file, or a stale file) is not an error: this is a plain
// start.
func takeOver(path string) (*predecessor, *socketPool, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("dns.handover_socket %s: %w", path, err)
	}
	fail := func(err error) (*predecessor, *socketPool, error) {
		conn.Close()
		return nil, nil, fmt.Errorf("dns.handover_socket %s: taking over: %w", path, err)
	}
	_ = conn.SetDeadline(time.Now().Add(handoverTimeout))
	if _, err := fmt.Fprintf(conn, "SOCKETS %d\n", os.Getpid()); err != nil {
		return fail(err)
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, syscall.CmsgSpace(maxHandedOver*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return fail(err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return fail(err)
	}
	var hello handoverHello
	if err := json.Unmarshal(buf[:n], &hello); err != nil || len(hello.Sockets) != len(fds) {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return fail(fmt.Errorf("malformed hello (%d descriptors for %d names): %v", len(fds), len(hello.Sockets), err))
	}
	pool := &socketPool{source: "hand-over from pid " + strconv.Itoa(hello.PID), pid: hello.PID}
	for i, fd := range fds {
		syscall.CloseOnExec(fd)
		s, err := describeSocket(os.NewFile(uintptr(fd), hello.Sockets[i]))
		if err != nil {
			pool.leftovers()
			return fail(fmt.Errorf("socket %q: %w", hello.Sockets[i], err))
		}
		s.name = hello.Sockets[i]
		pool.sockets = append(pool.sockets, s)
	}
	_ = conn.SetDeadline(time.Time{})
	return &predecessor{conn: conn, pid: hello.PID}, pool, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// finish tells the predecessor this instance is serving and waits, up to
// the predecessor's shutdown grace, for it to have stopped reading; true
// when it said so.
func (p *predecessor) finish(log *slog.Logger) bool {
	defer p.conn.Close()
	_ = p.conn.SetDeadline(time.Now().Add(shutdownGrace + handoverTimeout))
	if _, err := io.WriteString(p.conn, "READY\n"); err != nil {
		log.Warn("hand-over: could not tell the predecessor to stop", "pid", p.pid, "err", err)
		return false
	}
	line, err := bufio.NewReader(p.conn).ReadString('\n')
	if err != nil || line != "DONE\n" {
		log.Warn("hand-over: the predecessor did not confirm it stopped", "pid", p.pid, "got", strings.TrimSpace(line), "err", err)
		return false
	}
	log.Info("hand-over complete: the predecessor stopped", "pid", p.pid)
	return true
}

// abandon tells a waiting predecessor nothing will come: it keeps serving.
func (p *predecessor) abandon() {
	if p != nil {
		p.conn.Close()
	}
}

// handoverListener answers successors on dns.handover_socket.
type handoverListener struct {
	ln *net.UnixListener
}

// listenHandover claims path. A file left by an instance that died is
// removed; one that still answers belongs to a live instance, which the
// caller has just taken over from or must not steal from.
func listenHandover(path string) (*handoverListener, error) {
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("dns.handover_socket %s: another instance is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dns.handover_socket %s: removing a stale socket: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("dns.handover_socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	return &handoverListener{ln: ln}, nil
}

// serve hands sockets to one successor at a time. When a successor says
// READY, its connection goes to ready and serve returns: the caller shuts
// down and answers DONE on it.
func (h *handoverListener) serve(ctx context.Context, sockets func() ([]string, []*os.File, error), ready chan<- *net.UnixConn, log *slog.Logger) {
	go func() { <-ctx.Done(); h.ln.Close() }()
	for {
		conn, err := h.ln.AcceptUnix()
		if err != nil {
			return
		}
		if h.handle(conn, sockets, log) {
			ready <- conn
			return
		}
		conn.Close()
	}
}

func (h *handoverListener) handle(conn *net.UnixConn, sockets func() ([]string, []*os.File, error), log *slog.Logger) bool {
	_ = conn.SetDeadline(time.Now().Add(handoverTimeout))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "SOCKETS "))
	if err != nil || !strings.HasPrefix(line, "SOCKETS ") || perr != nil {
		log.Warn("hand-over: malformed request; expected \"SOCKETS <pid>\"", "got", strings.TrimSpace(line), "err", err)
		return false
	}
	names, files, err := sockets()
	if err != nil {
		log.Error("hand-over: cannot duplicate the listening sockets", "err", err)
		return false
	}
	defer func() {
		for _, f := range files {
			f.Close() // the successor holds its own copies now
		}
	}()
	hello, _ := json.Marshal(handoverHello{PID: os.Getpid(), Sockets: names})
	fds := make([]int, len(files))
	for i, f := range files {
		if fds[i], err = rawFD(f); err != nil {
			log.Error("hand-over: cannot read a socket's descriptor", "socket", names[i], "err", err)
			return false
		}
	}
	if _, _, err := conn.WriteMsgUnix(hello, syscall.UnixRights(fds...), nil); err != nil {
		log.Warn("hand-over: sending sockets failed", "successor", pid, "err", err)
		return false
	}
	log.Info("hand-over: sockets sent; serving until the successor is ready", "successor", pid, "sockets", names)
	// The successor's start includes its first probe round; wait for it
	// as long as it takes, and go on serving if it dies.
	_ = conn.SetDeadline(time.Time{})
	line, err = r.ReadString('\n')
	if err != nil || line != "READY\n" {
		log.Warn("hand-over: the successor went away before it was ready; still serving", "successor", pid, "err", err)
		return false
	}
	log.Info("hand-over: the successor is ready; stopping", "successor", pid)
	return true
}

// close stops taking successors. The socket file stays: a successor may
// already have replaced it with its own, and a stale one is removed by the
// next instance that starts.
func (h *handoverListener) close() { h.ln.Close() }

// startHandover claims dns.handover_socket, if configured, and serves
// successors on it until ctx ends.
func (d *daemon) startHandover(ctx context.Context) {
	d.reloadMu.Lock()
	path := d.cfg.DNS.HandoverSocket // restart-only: a reload keeps it
	d.reloadMu.Unlock()
	if path == "" {
		return
	}
	h, err := listenHandover(path)
	if err != nil {
		d.log.Error("hand-over unavailable: a successor will bind its own sockets", "err", err)
		return
	}
	d.handover.Store(h)
	go h.serve(ctx, d.handoverSockets, d.handedOver, d.log.With("component", "handover"))
}

// handoverSockets duplicates every listening socket for a successor.
func (d *daemon) handoverSockets() ([]string, []*os.File, error) {
	var names []string
	var files []*os.File
	fail := func(err error) ([]string, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	for _, s := range d.listen.Sockets() {
		f, err := s.File()
		if err != nil {
			return fail(fmt.Errorf("%s: %w", s.Name(), err))
		}
		names, files = append(names, s.Name()), append(files, f)
	}
	tl, ok := d.httpLn.(*net.TCPListener)
	if !ok {
		return fail(fmt.Errorf("http listener is %T, not TCP", d.httpLn))
	}
	f, err := tl.File()
	if err != nil {
		return fail(fmt.Errorf("http: %w", err))
	}
	d.reloadMu.Lock()
	name := "http " + d.cfg.HTTP.Listen.String()
	d.reloadMu.Unlock()
	return append(names, name), append(files, f), nil
}
