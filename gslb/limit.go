package gslb

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limitListener bounds concurrent TCP connections. At the bound, the
// connection idle the longest is closed to make room (RFC 7766 section
// 6.2.2 lets a server close connections under load), provided it has been
// idle at least minIdle; otherwise the new connection is closed at once
// rather than queued: a client that is told no can retry elsewhere, one
// left waiting in the accept queue cannot tell. So idle connections left
// open cannot lock clients out, while a burst of busy ones is not churned.
type limitListener struct {
	net.Listener
	max     int
	minIdle time.Duration
	refused prometheus.Counter
	evicted prometheus.Counter

	mu    sync.Mutex
	conns map[*limitConn]struct{}
}

func newLimitListener(l net.Listener, max int, minIdle time.Duration, m *Metrics) *limitListener {
	return &limitListener{Listener: l, max: max, minIdle: minIdle, refused: m.tcpRefuse, evicted: m.tcpEvicted,
		conns: make(map[*limitConn]struct{}, max)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		now := time.Now().UnixNano()
		lc := &limitConn{Conn: c, l: l}
		lc.last.Store(now)
		var victim *limitConn
		l.mu.Lock()
		if len(l.conns) >= l.max {
			for k := range l.conns {
				if victim == nil || k.last.Load() < victim.last.Load() {
					victim = k
				}
			}
			if victim == nil || now-victim.last.Load() < int64(l.minIdle) {
				l.mu.Unlock()
				l.refused.Inc()
				c.Close()
				continue
			}
			delete(l.conns, victim)
		}
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Inc()
			victim.Close()
		}
		return lc, nil
	}
}

// limitConn notes when it last carried data, which is what "idle" means
// for eviction.
type limitConn struct {
	net.Conn
	l    *limitListener
	last atomic.Int64 // unix nanoseconds
}

func (c *limitConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *limitConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *limitConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// sampledLog logs at most one message per interval and reports how many it
// held back, so a flood of bad packets cannot flood the log too.
type sampledLog struct {
	logger     *slog.Logger
	every      time.Duration
	next       atomic.Int64
	suppressed atomic.Int64
}

func newSampledLog(log *slog.Logger, every time.Duration) *sampledLog {
	return &sampledLog{logger: log, every: every}
}

func (s *sampledLog) log(msg string, args ...any) {
	now := time.Now().UnixNano()
	next := s.next.Load()
	if now < next || !s.next.CompareAndSwap(next, now+int64(s.every)) {
		s.suppressed.Add(1)
		return
	}
	if n := s.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	s.logger.Warn(msg, args...)
}
