package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// slowStore wraps a store with a delay and an error switch, to play a
// slow or failing Redis.
type slowStore struct {
	Store
	delay atomic.Int64 // nanoseconds
	fail  atomic.Bool
	calls atomic.Int64
}

func (s *slowStore) wait(ctx context.Context) error {
	s.calls.Add(1)
	if s.fail.Load() {
		return errors.New("store down")
	}
	select {
	case <-time.After(time.Duration(s.delay.Load())):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowStore) GetOrCreate(ctx context.Context, sess Session, ttl time.Duration) (Session, bool, error) {
	if err := s.wait(ctx); err != nil {
		return Session{}, false, err
	}
	return s.Store.GetOrCreate(ctx, sess, ttl)
}

func (s *slowStore) Put(ctx context.Context, ss []Session, ttl time.Duration) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Store.Put(ctx, ss, ttl)
}

func newAffinity(t *testing.T, st Store) (*Affinity, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	a := New(Options{
		Store: st, TTL: time.Hour, MaxLifetime: 24 * time.Hour, TouchInterval: time.Minute,
		LookupBudget: 20 * time.Millisecond, LookupTimeout: time.Second, CacheSize: 1000, MaxLookups: 4,
		BreakerFailures: 3, BreakerCooldown: 50 * time.Millisecond,
		Registerer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, reg
}

var client = netip.MustParsePrefix("81.2.69.0/24")

func TestStickyCreatesThenKeeps(t *testing.T) {
	mem := NewMemoryStore()
	a, _ := newAffinity(t, mem)
	dc, from, ok := a.Sticky("www.example.", client, "dc-a")
	if !ok || dc != "dc-a" || from != "" {
		t.Fatalf("first: got %s %q %t, want a new pin to dc-a", dc, from, ok)
	}
	// The policy now prefers dc-b; the pin holds.
	if dc, _, _ := a.Sticky("www.example.", client, "dc-b"); dc != "dc-a" {
		t.Errorf("second: got %s, want dc-a kept", dc)
	}
	if got := testutil.ToFloat64(a.metrics.created); got != 1 {
		t.Errorf("created: %v", got)
	}
	if got := testutil.ToFloat64(a.metrics.hit); got != 1 {
		t.Errorf("hits: %v", got)
	}
	// Another instance sharing the store agrees.
	b, _ := newAffinity(t, mem)
	if dc, _, ok := b.Sticky("www.example.", client, "dc-b"); !ok || dc != "dc-a" {
		t.Errorf("other instance: got %s %t, want dc-a from the store", dc, ok)
	}
	// Repin, then read it back from the store once the write is sent.
	a.Repin("www.example.", client, "dc-b", "dc-a")
	eventually(t, "repin written", func() bool {
		s, err := mem.Get(context.Background(), Key{"www.example.", client})
		return err == nil && s.Datacenter == "dc-b" && s.DisplacedFrom == "dc-a"
	})
}

// TestConcurrentCreateAgrees: many callers placing one new client at once
// with different proposals all get the same answer.
func TestConcurrentCreateAgrees(t *testing.T) {
	mem := NewMemoryStore()
	var affs []*Affinity
	for range 4 {
		a, _ := newAffinity(t, mem)
		affs = append(affs, a)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dc, _, ok := affs[i%4].Sticky("www.example.", client, []string{"dc-a", "dc-b"}[i%2])
			if ok {
				mu.Lock()
				seen[dc] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 1 {
		t.Errorf("placements disagree: %v", seen)
	}
}

// TestSlowStoreIsSkipped: a store slower than the budget costs a query no
// more than the budget; the late answer still fills the cache.
func TestSlowStoreIsSkipped(t *testing.T) {
	st := &slowStore{Store: NewMemoryStore()}
	st.delay.Store(int64(200 * time.Millisecond))
	a, _ := newAffinity(t, st)
	if _, _, ok := a.Sticky("www.example.", client, "dc-a"); ok {
		t.Fatalf("a look-up slower than the budget answered with affinity")
	}
	if got := testutil.ToFloat64(a.metrics.errored); got != 1 {
		t.Errorf("errors: %v", got)
	}
	eventually(t, "the late look-up to fill the cache", func() bool {
		_, ok := a.cache.get(Key{"www.example.", client})
		return ok
	})
	if dc, _, ok := a.Sticky("www.example.", client, "dc-b"); !ok || dc != "dc-a" {
		t.Errorf("after the late look-up: got %s %t, want dc-a from the cache", dc, ok)
	}
}

// TestBreaker: failures open the breaker, queries then skip the store
// entirely, and it closes once the store answers again.
func TestBreaker(t *testing.T) {
	st := &slowStore{Store: NewMemoryStore()}
	st.fail.Store(true)
	a, _ := newAffinity(t, st)
	logs := &lockedBuffer{}
	a.breaker.mu.Lock()
	a.breaker.log = slog.New(slog.NewTextHandler(logs, nil))
	a.breaker.mu.Unlock()
	for i := range 3 {
		a.Sticky("www.example.", netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 0}), 24), "dc-a")
	}
	if !a.breaker.isOpen() {
		t.Fatalf("breaker closed after 3 failures")
	}
	calls := st.calls.Load()
	for i := range 100 {
		if _, _, ok := a.Sticky("www.example.", netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 0}), 24), "dc-a"); ok {
			t.Fatalf("affinity with the breaker open")
		}
	}
	if got := st.calls.Load() - calls; got > 2 {
		t.Errorf("the store was called %d times with the breaker open, want at most a trial", got)
	}
	if got := testutil.ToFloat64(a.metrics.skipped); got < 98 {
		t.Errorf("skipped: got %v", got)
	}
	st.fail.Store(false)
	eventually(t, "the breaker to close", func() bool { return !a.breaker.isOpen() })
	if _, _, ok := a.Sticky("www.example.", client, "dc-a"); !ok {
		t.Errorf("no affinity after the store recovered")
	}
	// Each transition is logged once, not each failure or trial.
	got := logs.String()
	if strings.Count(got, "session store failing") != 1 || strings.Count(got, "session store reachable again") != 1 {
		t.Errorf("breaker log: want one opening and one recovery line, got:\n%s", got)
	}
}

// lockedBuffer is a log sink the breaker and the test may touch at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestMaxLifetime(t *testing.T) {
	mem := NewMemoryStore()
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	mem.now = clock
	reg := prometheus.NewRegistry()
	a := New(Options{Store: mem, TTL: time.Hour, MaxLifetime: 2 * time.Hour, TouchInterval: time.Minute,
		LookupBudget: time.Second, CacheSize: 100, MaxLookups: 2, BreakerFailures: 3, BreakerCooldown: time.Second,
		Registerer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clock})
	if dc, _, _ := a.Sticky("s.", client, "dc-a"); dc != "dc-a" {
		t.Fatal(dc)
	}
	// Used every 30 minutes: the TTL slides, but the lifetime ends it.
	for range 3 {
		mu.Lock()
		now = now.Add(30 * time.Minute)
		mu.Unlock()
		if dc, _, _ := a.Sticky("s.", client, "dc-b"); dc != "dc-a" {
			t.Fatalf("within the lifetime: got %s", dc)
		}
	}
	mu.Lock()
	now = now.Add(31 * time.Minute) // 2h01m after creation
	mu.Unlock()
	if dc, _, _ := a.Sticky("s.", client, "dc-b"); dc != "dc-b" {
		t.Errorf("past the lifetime: got %s, want a fresh placement on dc-b", dc)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStickyCachedNeverAsksTheStore: the fast path's look-up answers
// from the cache or not at all, whatever the store is doing.
func TestStickyCachedNeverAsksTheStore(t *testing.T) {
	st := &slowStore{Store: NewMemoryStore()}
	a, _ := newAffinity(t, st)
	if _, _, hit := a.StickyCached("s.", client); hit {
		t.Fatal("a session never created was a cache hit")
	}
	if n := st.calls.Load(); n != 0 {
		t.Fatalf("a cache-only look-up asked the store %d times", n)
	}
	if dc, _, ok := a.Sticky("s.", client, "dc-a"); !ok || dc != "dc-a" {
		t.Fatalf("placement: %s %v", dc, ok)
	}
	// The store stalls; the cached pin is still answered at once.
	st.delay.Store(int64(time.Hour))
	calls := st.calls.Load()
	if dc, _, hit := a.StickyCached("s.", client); !hit || dc != "dc-a" {
		t.Fatalf("cached pin: %s %v, want dc-a", dc, hit)
	}
	if n := st.calls.Load(); n != calls {
		t.Fatalf("a cached look-up asked the stalled store %d times", n-calls)
	}
	a.Repin("s.", client, "dc-b", "dc-a")
	if dc, from, hit := a.StickyCached("s.", client); !hit || dc != "dc-b" || from != "dc-a" {
		t.Fatalf("after a repin: %s from %s (%v), want dc-b from dc-a", dc, from, hit)
	}
	if _, _, hit := a.StickyCached("s.", netip.MustParsePrefix("81.2.70.0/24")); hit {
		t.Fatal("another client's look-up hit")
	}
}
