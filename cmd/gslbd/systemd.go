package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// sdNotify sends a state line to the service manager when it asked for
// one (Type=notify sets NOTIFY_SOCKET); without a manager it does
// nothing. The protocol is one datagram per state, so it needs no
// library: sd_notify(3).
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // an abstract socket
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd notify socket %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd notify socket %s: %w", os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}

// socketPool holds listening sockets this process did not open: from
// systemd's socket activation or from the predecessor it takes over
// from. Listeners take from it before binding anew.
type socketPool struct {
	mu      sync.Mutex
	sockets []*pooledSocket
	source  string // "socket activation" or "hand-over", for messages
	pid     int    // the predecessor's, in a hand-over
}

type pooledSocket struct {
	// name is how a predecessor named the socket ("udp 127.0.0.1:0",
	// "http 127.0.0.1:9053"); empty for activated sockets, which are
	// matched on what they are bound to.
	name  string
	kind  string // "udp" or "tcp", read from the socket
	bound netip.AddrPort
	file  *os.File
	taken bool
}

// take returns the pooled socket for a listener: role is "udp" or "tcp"
// for DNS, "http" for the admin listener, configured the address the
// configuration gives. Named sockets match on their name; activated ones
// on kind and bound address and port.
func (p *socketPool) take(role string, configured netip.AddrPort) *os.File {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	name := role + " " + configured.String()
	for _, s := range p.sockets {
		if !s.taken && s.name == name {
			s.taken = true
			return s.file
		}
	}
	kind := role
	if role == "http" {
		kind = "tcp"
	}
	// An activated socket must match exactly: "any port" (0) in the
	// configuration would otherwise adopt whichever socket of the unit
	// comes first, the HTTP one for a DNS address included.
	for _, s := range p.sockets {
		if !s.taken && s.name == "" && s.kind == kind && s.bound.Addr().Unmap() == configured.Addr().Unmap() &&
			s.bound.Port() == configured.Port() {
			s.taken = true
			return s.file
		}
	}
	return nil
}

// leftovers closes the sockets no listener took and describes them.
func (p *socketPool) leftovers() []string {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range p.sockets {
		if s.taken {
			continue
		}
		desc := s.name
		if desc == "" {
			desc = s.kind + " " + s.bound.String()
		}
		out = append(out, desc)
		s.file.Close()
	}
	return out
}

// activatedSockets reads systemd's socket activation variables
// (sd_listen_fds(3)): LISTEN_FDS descriptors from 3 on, meant for this
// process when LISTEN_PID names it. The variables are unset so that
// nothing this process starts believes the sockets are its own.
func activatedSockets() (*socketPool, error) {
	fds, pid := os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID")
	if fds == "" {
		return nil, nil
	}
	defer func() {
		for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
			os.Unsetenv(k)
		}
	}()
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, nil // inherited from a parent that was activated
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 || n > 256 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q: expected a count of descriptors", fds)
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	pool := &socketPool{source: "socket activation"}
	for i := 0; i < n; i++ {
		fd := 3 + i
		syscall.CloseOnExec(fd)
		name := "fd" + strconv.Itoa(fd)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		s, err := describeSocket(os.NewFile(uintptr(fd), name))
		if err != nil {
			return nil, fmt.Errorf("socket activation: descriptor %d (%s): %w", fd, name, err)
		}
		pool.sockets = append(pool.sockets, s)
	}
	return pool, nil
}

// rawFD returns f's descriptor number without (*os.File).Fd's side
// effect: Fd puts the descriptor into blocking mode, and the mode belongs
// to the socket, shared with every process holding it. A process that is
// serving on the socket would find its reads blocking and its deadlines
// ignored, so it could no longer stop reading when it hands over.
func rawFD(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := sc.Control(func(p uintptr) { fd = int(p) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// describeSocket reads what kind of socket f is and where it is bound.
func describeSocket(f *os.File) (*pooledSocket, error) {
	fd, err := rawFD(f)
	if err != nil {
		return nil, err
	}
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("not a socket: %w", err)
	}
	var kind string
	switch typ {
	case syscall.SOCK_DGRAM:
		kind = "udp"
	case syscall.SOCK_STREAM:
		kind = "tcp"
	default:
		return nil, fmt.Errorf("socket type %d: expected a datagram (UDP) or stream (TCP) socket", typ)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	var bound netip.AddrPort
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		bound = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *syscall.SockaddrInet6:
		bound = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	default:
		return nil, errors.New("not an IPv4 or IPv6 socket")
	}
	return &pooledSocket{kind: kind, bound: bound, file: f}, nil
}
