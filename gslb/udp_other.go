//go:build !linux

package gslb

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
)

// udpServer is the Linux fast path's serving loop; elsewhere Listen
// serves UDP with miekg/dns's server, which the fast path only speeds up.
type udpServer struct{}

// sockaddrSize is the Linux reader's room for a client's address.
const sockaddrSize = 28

func newUDPServer(*Server, *net.UDPConn, bool) (*udpServer, error) {
	return nil, errors.ErrUnsupported
}

func (*udpServer) serve() error                   { return errors.ErrUnsupported }
func (*udpServer) shutdown(context.Context) error { return nil }
func (*udpServer) closeFD() error                 { return nil }
func (*udpServer) own() error                     { return nil }
func (*udpServer) addr() net.Addr                 { return nil }
func (*udpServer) File() (*os.File, error)        { return nil, errors.ErrUnsupported }

// pktinfo: no control message; the fallback writer sends from the
// socket's own address.
func pktinfo([]byte, netip.Addr, uint32) int { return 0 }
