//go:build !linux

package gslb

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// udpServer is the Linux fast path's serving loop; elsewhere Listen
// serves UDP with miekg/dns's server, which the fast path only speeds up.
type udpServer struct{ conn *net.UDPConn }

func newUDPServer(*Server, *net.UDPConn) (*udpServer, error) { return nil, errors.ErrUnsupported }

func (*udpServer) serve() error                   { return errors.ErrUnsupported }
func (*udpServer) shutdown(context.Context) error { return nil }

// pktinfo: no control message; the fallback writer sends from the
// socket's own address.
func pktinfo([]byte, netip.Addr, uint32) int { return 0 }
