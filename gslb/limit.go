package gslb

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limitListener bounds concurrent TCP connections. Past the bound a new
// connection is closed at once rather than queued: a client that is told
// no can retry elsewhere, one left waiting in the accept queue cannot tell
// (RFC 7766 section 6.2.2 lets a server close connections under load).
type limitListener struct {
	net.Listener
	sem     chan struct{}
	refused prometheus.Counter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.refused.Inc()
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
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
