package replication

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// BenchmarkLag measures replication lag between two real redis-servers:
// writes go into dc-a's Redis at a fixed rate, in 5 ms batches as the
// session write queue sends them, and dc-b's replicator applies them. A
// change's lag is from just before its write was sent to just after the
// script that applied it at dc-b returned. The link to dc-a is loopback,
// or a proxy that delays every byte by 20 ms each way (a WAN-like 40 ms
// round trip). Each case also measures the link's PING round trip in the
// same run, the baseline the lag is quoted against (lag/rtt).
//
//	go test -run '^$' -bench Lag -benchtime 1x ./replication/
func BenchmarkLag(b *testing.B) {
	for _, link := range []struct {
		name  string
		delay time.Duration
	}{{"loopback", 0}, {"wan-20ms-each-way", 20 * time.Millisecond}} {
		for _, rate := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/%d-writes-per-s", link.name, rate), func(b *testing.B) {
				for b.Loop() {
					measureLag(b, rate, link.delay, 2*time.Second)
				}
			})
		}
	}
}

func measureLag(b *testing.B, rate int, delay, duration time.Duration) {
	ra, rb := redistest.Start(b), redistest.Start(b)
	ra.RequireReal(b)
	peerAddr := ra.Addr()
	if delay > 0 {
		peerAddr = startDelayProxy(b, ra.Addr(), delay)
	}
	ids, _ := idgen.New(idgen.Config{Datacenter: 1, Worker: 1})
	newStore := func(addr, dc string) *redisstore.Store {
		s, err := redisstore.New(redisstore.Options{Addrs: []string{addr}, ReadTimeout: 5 * time.Second,
			WriteTimeout: 5 * time.Second, DialTimeout: 5 * time.Second, PoolTimeout: 5 * time.Second,
			Replication: &redisstore.Replication{Datacenter: dc, IDs: ids}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	writer, local, peer := newStore(ra.Addr(), "dc-a"), newStore(rb.Addr(), "dc-b"), newStore(peerAddr, "dc-a")

	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lags []time.Duration
	mg, err := New(Options{
		Mode: ActiveActive, Datacenter: "dc-b", Local: local, IDs: ids,
		Peers: []Peer{{Datacenter: "dc-a", Store: peer}},
		applied: func(_ string, changes []redisstore.Change, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range changes {
				if t, ok := sent[c.Key]; ok {
					lags = append(lags, at.Sub(t))
					delete(sent, c.Key)
				}
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); mg.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(b, func() bool { cp, _, _ := local.Checkpoint(ctx, "dc-a"); return cp != "" })

	rtt := pingRTT(b, peerAddr)
	perTick := rate / 200
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start, n := time.Now(), 0
	for time.Since(start) < duration {
		<-tick.C
		batch := make([]session.Session, perTick)
		now := time.Now()
		mu.Lock()
		for i := range batch {
			id, _ := ids.Next()
			batch[i] = session.Session{ID: id, Service: "www.example.test.", Datacenter: "dc-a",
				Client: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32), Created: now, LastAccessed: now}
			sent[batch[i].Key().String()] = now
			n++
		}
		mu.Unlock()
		if err := writer.Put(ctx, batch, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	achieved := float64(n) / time.Since(start).Seconds()
	waitFor(b, func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) == 0 })
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
	b.ReportMetric(achieved, "writes/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(rtt.Microseconds())/1000, "rtt-ms")
	b.ReportMetric(float64(p50)/float64(rtt), "p50/rtt")
	b.ReportMetric(float64(p99)/float64(rtt), "p99/rtt")
}

// pingRTT is the median PING round trip to addr: the link's own cost.
func pingRTT(b *testing.B, addr string) time.Duration {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	var rtts []time.Duration
	for range 21 {
		t := time.Now()
		if err := c.Ping(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(t))
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

func waitFor(b *testing.B, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// startDelayProxy forwards TCP connections on a loopback port to target,
// holding every chunk of bytes for delay in each direction, in order, as
// a long link does (its bandwidth is not limited: only latency is added).
func startDelayProxy(tb testing.TB, target string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); delayCopy(out, in, delay) }()
			go func() { defer wg.Done(); delayCopy(in, out, delay) }()
		}
	}()
	return ln.Addr().String()
}

type chunk struct {
	due time.Time
	b   []byte
}

func delayCopy(dst io.WriteCloser, src io.ReadCloser, delay time.Duration) {
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{due: time.Now().Add(delay), b: buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range q { // let the reader finish
	}
}
