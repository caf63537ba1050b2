package gslb

import (
	"fmt"
	"net"
	"net/netip"
	"os"
)

// adoptUDP turns an inherited descriptor into the UDP socket for ap. The
// descriptor is checked rather than trusted: a socket of the wrong kind
// or bound elsewhere would serve the wrong address silently.
func adoptUDP(f *os.File, ap netip.AddrPort) (*net.UDPConn, error) {
	if f == nil {
		return nil, nil
	}
	defer f.Close() // FilePacketConn holds its own duplicate
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("dns: inherited socket %q for udp %s: %w", f.Name(), ap, err)
	}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("dns: inherited socket %q for udp %s is %s, not UDP", f.Name(), ap, c.LocalAddr().Network())
	}
	if err := checkBound(uc.LocalAddr().(*net.UDPAddr).AddrPort(), ap); err != nil {
		uc.Close()
		return nil, fmt.Errorf("dns: inherited socket %q for udp %s: %w", f.Name(), ap, err)
	}
	return uc, nil
}

// adoptTCP is adoptUDP for the TCP listener.
func adoptTCP(f *os.File, ap netip.AddrPort) (*net.TCPListener, error) {
	if f == nil {
		return nil, nil
	}
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("dns: inherited socket %q for tcp %s: %w", f.Name(), ap, err)
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("dns: inherited socket %q for tcp %s is %s, not a TCP listener", f.Name(), ap, l.Addr().Network())
	}
	if err := checkBound(tl.Addr().(*net.TCPAddr).AddrPort(), ap); err != nil {
		tl.Close()
		return nil, fmt.Errorf("dns: inherited socket %q for tcp %s: %w", f.Name(), ap, err)
	}
	return tl, nil
}

// checkBound reports whether a socket bound to got serves the configured
// address want: the same address (IPv4-mapped forms compare equal to
// IPv4) and the same port, where a configured port 0 takes any.
func checkBound(got, want netip.AddrPort) error {
	if got.Addr().Unmap() == want.Addr().Unmap() && (want.Port() == 0 || got.Port() == want.Port()) {
		return nil
	}
	return fmt.Errorf("bound to %s instead", got)
}
