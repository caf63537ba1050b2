//go:build linux

package gslb

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// udpBatch is how many datagrams one recvmmsg takes and one sendmmsg
// answers: enough to spread a system call's cost thin at saturation.
const udpBatch = 32

// fastOut is the room for one fast answer: the most a client may be sent
// is dns.udp_size, at most 4096.
const fastOut = 4096

// sockaddrSize is the room for a client's address as the kernel gives
// it: a sockaddr_in6, which also holds a sockaddr_in.
const sockaddrSize = unix.SizeofSockaddrInet6

// oobLen holds one IP_PKTINFO or IPV6_PKTINFO control message.
const oobLen = 64

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel fills in,
// padded to the platform's alignment.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// udpServer serves one UDP socket. One reader goroutine takes datagrams
// in batches with recvmmsg, answers those the fast path takes into
// preallocated buffers and sends them with one sendmmsg; the rest are
// copied to the fallback workers, which run the full path. When the socket is empty the reader waits in the kernel, in
// a blocking recvmmsg with MSG_WAITFORONE, as gdnsd does: Go's poller
// would add a scheduler round trip (epoll, park, wake) to every drained
// batch, measured at a sixth of the server's CPU, and a non-blocking
// read followed by poll(2) costs two system calls more per wake-up, most
// of the cost of a query at a modest rate. SO_RCVTIMEO bounds the wait,
// so the reader sees a stop within pollTimeout.
//
// The socket is shared across a hand-over, and whether it blocks is the
// socket's, not the descriptor's. A socket handed over stays
// non-blocking until the predecessor has stopped reading (Listeners.Own),
// since a predecessor may read without waiting; a successor making it
// non-blocking again (Go's net does) is no harm either. The reader then
// gets immediate EAGAINs, which it waits out in poll(2); every other use
// here passes MSG_DONTWAIT and never blocks whatever the mode.
//
// The socket is kept out of Go's poller altogether, on a descriptor of
// its own: a socket in an epoll set has a waiter, and the kernel then
// wakes the epoll instance each time a sent datagram frees its buffer
// space, measured at 2–3% of the server's CPU. The fallback workers send
// with sendmsg and wait in poll(2) if the send buffer is full. A stop is
// a flag and never touches a socket a successor may share.
type udpServer struct {
	srv      *Server
	local    *net.UDPAddr
	fallback chan *fallbackPacket
	fd       int
	// fdMu guards fd against closing while a fallback worker sends on
	// it or a hand-over duplicates it: a closed number can be reused.
	fdMu     sync.RWMutex
	closed   bool
	stopping atomic.Bool
	workers  sync.WaitGroup
	started  atomic.Bool
	read     chan struct{} // closed when the reader has stopped
	done     chan struct{} // closed when the workers have too
}

// newUDPServer prepares conn for the fast path: on a wildcard socket it
// asks the kernel for each datagram's destination address, which the
// reply's source must be. It takes the socket over on a duplicate
// descriptor and closes conn, which takes the socket out of Go's poller.
// exclusive says no other process reads the socket, so it may be made
// blocking now; otherwise own does that later.
func newUDPServer(s *Server, conn *net.UDPConn, exclusive bool) (*udpServer, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	laddr := conn.LocalAddr().(*net.UDPAddr)
	local := laddr.IP
	v4 := local.To4() != nil
	var serr error
	sockfd := -1
	if err := rc.Control(func(fd uintptr) {
		sockfd, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if serr != nil {
			return
		}
		tv := unix.NsecToTimeval(int64(pollTimeout))
		if serr = unix.SetsockoptTimeval(int(fd), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); serr != nil {
			return
		}
		if !local.IsUnspecified() {
			// Bound to one address, the socket replies from it: the
			// control messages would cost the kernel a parse on every
			// send and a write on every receive for nothing.
			return
		}
		if v4 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		// A dual-stack socket (one inherited, say) also takes IPv4.
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		if sockfd >= 0 {
			unix.Close(sockfd)
		}
		return nil, serr
	}
	// Closing Go's descriptor deletes it from the epoll set; the socket
	// stays open on the duplicate, which the reader blocks on.
	if err := conn.Close(); err != nil {
		unix.Close(sockfd)
		return nil, err
	}
	if exclusive {
		if err := unix.SetNonblock(sockfd, false); err != nil {
			unix.Close(sockfd)
			return nil, err
		}
	}
	return &udpServer{srv: s, local: laddr, fd: sockfd, fallback: make(chan *fallbackPacket, fallbackQueue),
		read: make(chan struct{}), done: make(chan struct{})}, nil
}

// own makes the socket blocking, for the reader's blocking waits, once
// no other process reads it. Before that the reader waits in poll(2):
// the mode is the socket's, and a predecessor in a hand-over that reads
// without waiting (an earlier release did) would block in its reads.
func (u *udpServer) own() error {
	u.fdMu.RLock()
	defer u.fdMu.RUnlock()
	if u.closed {
		return nil
	}
	return unix.SetNonblock(u.fd, false)
}

// addr is the socket's bound address.
func (u *udpServer) addr() net.Addr { return u.local }

// File returns a duplicate of the socket's descriptor, for a successor.
func (u *udpServer) File() (*os.File, error) {
	u.fdMu.RLock()
	defer u.fdMu.RUnlock()
	if u.closed {
		return nil, net.ErrClosed
	}
	fd, err := unix.FcntlInt(uintptr(u.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "udp "+u.local.String()), nil
}

// closeFD closes this process's descriptor once no worker sends on it.
func (u *udpServer) closeFD() error {
	u.fdMu.Lock()
	defer u.fdMu.Unlock()
	if u.closed {
		return nil
	}
	u.closed = true
	return unix.Close(u.fd)
}

// sendTo sends one datagram to the raw address name from the socket:
// the fallback workers' write. A full send buffer is waited out in
// poll(2) for up to a second, then the reply is given up; closeFD waits
// for such a send, so a shutdown may take that second longer.
func (u *udpServer) sendTo(b, oob []byte, name *[sockaddrSize]byte, namelen uint32) error {
	u.fdMu.RLock()
	defer u.fdMu.RUnlock()
	if u.closed {
		return net.ErrClosed
	}
	var iov unix.Iovec
	if len(b) > 0 {
		iov.Base = &b[0]
	}
	iov.SetLen(len(b))
	h := unix.Msghdr{Name: &name[0], Namelen: namelen, Iov: &iov, Iovlen: 1}
	if len(oob) > 0 {
		h.Control = &oob[0]
		h.SetControllen(len(oob))
	}
	deadline := time.Now().Add(time.Second)
	for {
		_, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&h)), unix.MSG_DONTWAIT)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return errno
			}
			pfd := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(pfd, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
				return err
			}
		default:
			return errno
		}
	}
}

// serve runs the reader and the fallback workers until shutdown.
func (u *udpServer) serve() error {
	if !u.started.CompareAndSwap(false, true) {
		return errors.New("udp server already started")
	}
	for range fallbackWorkers {
		u.workers.Add(1)
		go func() {
			defer u.workers.Done()
			for p := range u.fallback {
				u.srv.serveFallback(u, p)
				p.buf = p.buf[:0]
				fallbackPool.Put(p)
			}
		}()
	}
	r := newUDPReader(u)
	err := r.run()
	close(u.read)
	close(u.fallback)
	u.workers.Wait()
	close(u.done)
	if u.stopping.Load() {
		return nil
	}
	return err
}

// pollTimeout bounds how long the reader waits in poll(2) before it looks
// at the stop flag again.
const pollTimeout = 100 * time.Millisecond

// shutdown stops the reader by its flag (never shutdown(2), which would
// stop a successor sharing the socket), waits up to ctx for declined
// queries in flight to be answered, then closes this process's
// descriptor. The reader itself stops within pollTimeout even when ctx
// is done sooner: its descriptor is closed only once it no longer reads.
func (u *udpServer) shutdown(ctx context.Context) error {
	u.stopping.Store(true)
	if !u.started.Load() {
		return u.closeFD()
	}
	var err error
	select {
	case <-u.done:
	case <-ctx.Done():
		err = ctx.Err()
		<-u.read
	}
	if cerr := u.closeFD(); err == nil {
		err = cerr
	}
	return err
}

// udpReader is one reader's memory, allocated once: the batch's headers,
// buffers, addresses and control messages for receiving and sending, the
// fast path's scratch and the resolved metric series.
type udpReader struct {
	u     *udpServer
	rhdr  [udpBatch]mmsghdr
	riov  [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6
	roob  [udpBatch][oobLen]byte
	in    [udpBatch][]byte
	n     int
	errno syscall.Errno

	shdr [udpBatch]mmsghdr
	siov [udpBatch]unix.Iovec
	soob [udpBatch][oobLen]byte
	out  [udpBatch][fastOut]byte
	res  [udpBatch]fastResult
	qs   [udpBatch]*querySeries
	ok   [udpBatch]bool // the kernel took the reply
	ns   int            // replies queued
	sent int

	sc    fastScratch
	cache *answerCache
	hot   hotCounters
	pfd   [1]unix.PollFd
}

func newUDPReader(u *udpServer) *udpReader {
	r := &udpReader{u: u, hot: hotCounters{m: u.srv.metrics}, cache: newAnswerCache()}
	for i := range r.rhdr {
		r.in[i] = make([]byte, dns.MaxMsgSize)
		r.riov[i].Base = &r.in[i][0]
		r.rhdr[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.rhdr[i].hdr.Iov = &r.riov[i]
		r.rhdr[i].hdr.Iovlen = 1
		r.rhdr[i].hdr.Control = &r.roob[i][0]
		r.shdr[i].hdr.Iov = &r.siov[i]
		r.shdr[i].hdr.Iovlen = 1
	}
	return r
}

// yieldEvery is how often a busy reader yields its P. A goroutine that
// never does is preempted by the runtime after 10 ms, and if it is in a
// system call just then its P is taken from it; either way the runtime's
// monitor thread goes back to waking every 20 µs for a while, measured at
// a thousand extra context switches a second on the reader's core.
const yieldEvery = 5 * time.Millisecond

func (r *udpReader) run() error {
	yielded := time.Now()
	for !r.u.stopping.Load() {
		start := time.Now()
		if start.Sub(yielded) >= yieldEvery {
			runtime.Gosched()
			yielded = start
		}
		if !r.recv(uintptr(r.u.fd)) {
			// A wait cut short by SO_RCVTIMEO is the stop check's turn;
			// coming back at once means the socket is non-blocking (not
			// ours yet after a hand-over, or a successor's doing) or a
			// signal came, and poll(2) does the waiting.
			if time.Since(start) < pollTimeout/2 {
				if err := r.wait(unix.POLLIN); err != nil {
					return err
				}
			}
			continue
		}
		switch r.errno {
		case 0:
			r.batch()
		case unix.EBADF, unix.ENOTSOCK:
			return r.errno
		}
		// ECONNREFUSED and the like report an earlier send's ICMP error;
		// they are no reason to stop reading.
	}
	return nil
}

// wait blocks in poll(2) until the socket is ready for events or
// pollTimeout passes.
func (r *udpReader) wait(events int16) error {
	r.pfd[0] = unix.PollFd{Fd: int32(r.u.fd), Events: events}
	if _, err := unix.Poll(r.pfd[:], int(pollTimeout/time.Millisecond)); err != nil && err != unix.EINTR {
		return err
	}
	return nil
}

// recv is one recvmmsg, waiting for the first datagram up to
// SO_RCVTIMEO and taking whatever else is queued; false when nothing
// came. It tells the runtime it may block, so the scheduler slot passes
// to the other goroutines while it waits.
func (r *udpReader) recv(fd uintptr) bool {
	for i := range r.rhdr {
		r.rhdr[i].hdr.Namelen = unix.SizeofSockaddrInet6
		r.rhdr[i].hdr.SetControllen(oobLen)
		r.rhdr[i].hdr.Flags = 0
		r.riov[i].SetLen(len(r.in[i]))
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.rhdr[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0)
		switch errno {
		case unix.EINTR, unix.EAGAIN:
			// A signal restarts no wait here: the caller checks the stop
			// flag first.
			return false
		}
		r.n, r.errno = int(n), errno
		if errno != 0 {
			r.n = 0
		}
		return true
	}
}

// send is sendmmsg of the queued replies from r.sent on; false when the
// socket's send buffer is full. A reply the kernel refuses (an
// unroutable client) is skipped, as a failed write is on the full path.
// It is a raw system call that never blocks (MSG_DONTWAIT): a batch can
// take longer than the 20 µs after which the runtime would otherwise
// hand this thread's P to another thread, an exchange of two context
// switches, a futex wake and an epoll wait.
func (r *udpReader) send(fd uintptr) bool {
	for r.sent < r.ns {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&r.shdr[r.sent])), uintptr(r.ns-r.sent), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			for k := r.sent; k < r.sent+int(n); k++ {
				r.ok[k] = true
			}
			r.sent += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			r.u.srv.badLog.log("writing DNS response failed", "proto", "udp", "err", errno.Error())
			r.sent++
		}
	}
	return true
}

// batch answers the datagrams one recvmmsg returned.
func (r *udpReader) batch() {
	start := time.Now()
	snap := r.u.srv.snap.Load()
	p := r.u.srv.prot.Load()
	r.cache.sync(snap)
	defer r.cache.flush(r.u.srv.metrics)
	r.ns, r.sent = 0, 0
	for i := range r.n {
		pkt := r.in[i][:r.rhdr[i].n]
		src, srcOK := sockaddrAddr(&r.names[i], r.rhdr[i].hdr.Namelen)
		if !srcOK {
			continue
		}
		if p != nil && p.maxQuery > 0 && len(pkt) > p.maxQuery {
			r.u.srv.malformedUDP(pkt, errQueryTooLarge)
			continue
		}
		dst, ifindex := parsePktinfo(r.roob[i][:r.rhdr[i].hdr.Controllen])
		k := r.ns
		var jar *cookieJar
		if p != nil {
			jar = p.cookies
		}
		n, res, ok := r.cache.answer(snap, pkt, src.Addr(), r.out[k][:], &r.sc, jar)
		// A limited reply to a client whose cookie is not (yet) valid is
		// BADCOOKIE, which the full path writes: such a client is new, or
		// its cookie has lapsed, once in half an hour at most.
		if ok && res.cookie && jar != nil && !res.cookieValid && p.rrl != nil {
			ok = false
		}
		if !ok {
			r.decline(pkt, i, src, dst, ifindex)
			continue
		}
		if p != nil && p.rrl != nil && !res.cookieValid {
			switch p.rrl.check(src.Addr(), res.rcode, res.qtype, res.name, res.zone) {
			case rrlDrop:
				r.hot.series(&res).requests.Inc()
				continue
			case rrlSlip:
				n = slipWire(r.out[k][:], res.qend)
			}
		}
		r.res[k], r.ok[k] = res, false
		r.siov[k].Base = &r.out[k][0]
		r.siov[k].SetLen(n)
		h := &r.shdr[k].hdr
		h.Name, h.Namelen = r.rhdr[i].hdr.Name, r.rhdr[i].hdr.Namelen
		if c := pktinfo(r.soob[k][:], dst, ifindex); c > 0 {
			h.Control = &r.soob[k][0]
			h.SetControllen(c)
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
		r.ns++
	}
	if r.ns == 0 {
		return
	}
	for k := range r.ns {
		r.qs[k] = r.hot.series(&r.res[k])
		r.qs[k].requests.Inc()
	}
	for !r.send(uintptr(r.u.fd)) && !r.u.stopping.Load() {
		if err := r.wait(unix.POLLOUT); err != nil {
			r.u.srv.badLog.log("writing DNS responses failed", "proto", "udp", "err", err)
			break
		}
	}
	took := time.Since(start).Seconds()
	for k := range r.ns {
		if !r.ok[k] {
			continue
		}
		res := &r.res[k]
		qs := r.qs[k]
		qs.responses.Inc()
		qs.duration.Observe(took)
		if res.answered.datacenter != "" {
			r.hot.answer(res.answered).Inc()
		}
	}
}

// decline hands a packet to the fallback workers; when they are that far
// behind it is dropped rather than stall the socket.
func (r *udpReader) decline(pkt []byte, i int, src netip.AddrPort, dst netip.Addr, ifindex uint32) {
	p := fallbackPool.Get().(*fallbackPacket)
	p.buf = append(p.buf[:0], pkt...)
	p.src, p.dst, p.ifindex = src, dst, ifindex
	p.name = *(*[sockaddrSize]byte)(unsafe.Pointer(&r.names[i]))
	p.namelen = r.rhdr[i].hdr.Namelen
	select {
	case r.u.fallback <- p:
	default:
		fallbackPool.Put(p)
		r.u.srv.badLog.log("dropped a DNS query: the full path's workers are behind", "proto", "udp", "client", src.String())
	}
}

// sockaddrAddr reads the client's address and port from a received name.
func sockaddrAddr(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), ntohs(s4.Port)), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		// The zone of a link-local client is left out: the reply goes to
		// the very sockaddr it came from.
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return binary.BigEndian.Uint16(b[:])
}

// parsePktinfo finds the destination address in a datagram's control
// messages; invalid when there is none.
func parsePktinfo(oob []byte) (netip.Addr, uint32) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom4(pi.Addr), uint32(pi.Ifindex)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom16(pi.Addr), pi.Ifindex
		}
		next := cmsgAlign(l)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}, 0
}

func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// pktinfo writes the control message that makes a reply leave from dst
// and returns its length; 0 (no message) when dst is unknown or a
// wildcard. The interface is left to routing, as miekg/dns leaves it,
// except for link-local addresses, which only mean something on theirs.
func pktinfo(oob []byte, dst netip.Addr, ifindex uint32) int {
	if !dst.IsValid() || dst.IsUnspecified() {
		return 0
	}
	clear(oob[:unix.CmsgSpace(unix.SizeofInet6Pktinfo)])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	data := oob[unix.SizeofCmsghdr:]
	if dst.Is4() {
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
		pi.Spec_dst = dst.As4()
		return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
	pi.Addr = dst.As16()
	if dst.IsLinkLocalUnicast() {
		pi.Ifindex = ifindex
	}
	return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
}
