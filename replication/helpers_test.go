package replication

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

const (
	testTTL    = time.Hour
	testPrefix = "gslb:session:"
	testNS     = "gslb:repl:"
)

// dc is one datacenter of a test: a real redis-server, the store gslbd
// writes sessions through, and a Manager replicating from the others.
type dc struct {
	t     *testing.T
	name  string
	srv   *redistest.Server
	store *redisstore.Store
	raw   *redis.Client
	ids   *idgen.Generator
	reg   *prometheus.Registry
	mg    *Manager
	stop  context.CancelFunc
	done  chan struct{}
	mode  string
	role  string
	peers []*dc
}

// newDCs starts n datacenters named dc-0.. with one redis-server each;
// their managers are not running yet.
func newDCs(t *testing.T, n int, mode string) []*dc {
	t.Helper()
	dcs := make([]*dc, n)
	for i := range dcs {
		srv := redistest.Start(t)
		srv.RequireReal(t)
		ids, err := idgen.New(idgen.Config{Datacenter: i + 1, Worker: 1})
		if err != nil {
			t.Fatal(err)
		}
		d := &dc{t: t, name: fmt.Sprintf("dc-%d", i), srv: srv, ids: ids, mode: mode}
		if mode == ActivePassive {
			d.role = redisstore.RoleStandby
			if i == 0 {
				d.role = redisstore.RolePrimary
			}
		}
		d.store = d.newStore(t, d.name, srv.Addr(), func(n int) {
			if d.mg != nil {
				d.mg.Refused(n)
			}
		})
		d.raw = redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { d.raw.Close() })
		dcs[i] = d
	}
	for _, d := range dcs {
		for _, p := range dcs {
			if p != d {
				d.peers = append(d.peers, p)
			}
		}
		if mode == ActivePassive {
			// What the Manager does at start, done now so that writes made
			// before it runs are refused on standbys.
			primary := "dc-0"
			if err := d.store.InitRole(context.Background(), d.role, primary); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dcs
}

func (d *dc) newStore(t *testing.T, dcName, addr string, refused func(int)) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(redisstore.Options{
		Addrs: []string{addr}, KeyPrefix: testPrefix,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		DialTimeout: 500 * time.Millisecond, PoolTimeout: time.Second, PoolSize: 8,
		Replication: &redisstore.Replication{
			Datacenter: dcName, IDs: d.ids, Namespace: testNS, MaxLen: 1000000,
			ActivePassive: d.mode == ActivePassive, Refused: refused,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start runs the datacenter's Manager until stop (or the test's end).
func (d *dc) start(mod ...func(*Options)) {
	d.t.Helper()
	o := Options{
		Mode: d.mode, Datacenter: d.name, Role: d.role, Local: d.store, IDs: d.ids,
		Batch: 100, Block: 200 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	for _, p := range d.peers {
		o.Peers = append(o.Peers, Peer{Datacenter: p.name, Addr: p.srv.Addr(), Store: d.newStore(d.t, p.name, p.srv.Addr(), nil)})
	}
	for _, m := range mod {
		m(&o)
	}
	d.reg = prometheus.NewRegistry()
	o.Registerer = d.reg
	mg, err := New(o)
	if err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.mg, d.stop, d.done = mg, cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		mg.Run(ctx)
	}()
	d.t.Cleanup(d.halt)
}

// halt stops the Manager and waits for it.
func (d *dc) halt() {
	if d.stop == nil {
		return
	}
	d.stop()
	<-d.done
	d.stop = nil
}

func (d *dc) counter(name string, labels ...string) float64 {
	d.t.Helper()
	var c prometheus.Collector
	switch name {
	case "applied":
		c = d.mg.m.applied.WithLabelValues(labels...)
	case "conflicts":
		c = d.mg.m.conflicts.WithLabelValues(labels...)
	case "errors":
		c = d.mg.m.errors.WithLabelValues(labels...)
	case "resyncs":
		c = d.mg.m.resyncs.WithLabelValues(labels...)
	case "lag":
		c = d.mg.m.lag.WithLabelValues(labels...)
	case "refused":
		c = d.mg.m.refused
	}
	return testutil.ToFloat64(c)
}

// keyspace maps each session key to what must agree everywhere: the
// header (version, origin, digest, version vector) and the datacenter.
// The last access may differ: each side refreshes its own.
func (d *dc) keyspace() map[string]string {
	d.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	var cursor uint64
	for {
		keys, next, err := d.raw.Scan(ctx, cursor, testPrefix+"*", 500).Result()
		if err != nil {
			d.t.Fatalf("%s: scan: %v", d.name, err)
		}
		for _, k := range keys {
			v, err := d.raw.Get(ctx, k).Result()
			if err != nil {
				d.t.Fatalf("%s: get %s: %v", d.name, k, err)
			}
			head, rest, _ := strings.Cut(v, `"vv":"`)
			vv, _, _ := strings.Cut(rest, `"`)
			dcName := ""
			if _, after, ok := strings.Cut(v, `"datacenter":"`); ok {
				dcName, _, _ = strings.Cut(after, `"`)
			}
			out[k] = head + vv + " dc=" + dcName
		}
		if cursor = next; cursor == 0 {
			return out
		}
	}
}

// converge waits, bounded, until every datacenter holds the same
// keyspace, and returns it.
func converge(t *testing.T, dcs []*dc) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		want := dcs[0].keyspace()
		same := true
		var diff string
		for _, d := range dcs[1:] {
			got := d.keyspace()
			if !maps.Equal(got, want) {
				same = false
				diff = describeDiff(dcs[0].name, want, d.name, got)
				break
			}
		}
		if same {
			return want
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyspaces did not converge in 30s: %s", diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describeDiff(an string, a map[string]string, bn string, b map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if b[k] != a[k] {
			out = append(out, fmt.Sprintf("%s: %s=%q %s=%q", k, an, a[k], bn, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s: only in %s", k, bn))
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return fmt.Sprintf("%d keys in %s, %d in %s; %s", len(a), an, len(b), bn, strings.Join(out, "; "))
}

func testSession(d *dc, n int, where string) session.Session {
	now := time.Now()
	id, _ := d.ids.Next()
	return session.Session{
		ID: id, Service: "www.example.test.", Client: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(n >> 8), byte(n), 0}), 24).Masked(),
		Datacenter: where, Created: now, LastAccessed: now,
	}
}

func put(t *testing.T, d *dc, sessions ...session.Session) {
	t.Helper()
	if err := d.store.Put(context.Background(), sessions, testTTL); err != nil {
		t.Fatalf("%s: put: %v", d.name, err)
	}
}

// lockedWriter lets a test read what a logger wrote from other
// goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newTestLogger(b *strings.Builder, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu: mu, b: b}, nil))
}
