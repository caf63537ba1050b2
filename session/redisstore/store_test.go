package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// returnBound is how long a call may take before the test calls it hung.
// It checks that a call returns at all, not how fast: timings on a loaded
// CI machine say nothing.
const returnBound = time.Second

const prefix = redisstore.DefaultKeyPrefix

func newStore(t *testing.T, addr string) *redisstore.Store {
	t.Helper()
	return newStoreOpts(t, redisstore.Options{Addrs: []string{addr}})
}

func newStoreOpts(t *testing.T, o redisstore.Options) *redisstore.Store {
	t.Helper()
	st, err := redisstore.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// rawClient talks to the server behind the store's back, to inspect and
// spoil what it stored.
func rawClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func testSession(client string, id idgen.ID, dc string) session.Session {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return session.Session{
		ID:           id,
		Service:      "www.example.com.",
		Client:       netip.MustParsePrefix(client),
		Datacenter:   dc,
		Created:      now,
		LastAccessed: now,
		Data:         map[string]string{"cart": "7"},
	}
}

// counter is a go-redis hook that counts round trips.
type counter struct {
	dials, cmds, pipelines, pipelinedCmds atomic.Int64

	mu    sync.Mutex
	names []string
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		c.record(cmd.Name())
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		c.pipelinedCmds.Add(int64(len(cmds)))
		for _, cmd := range cmds {
			c.record("pipelined " + cmd.Name())
		}
		return next(ctx, cmds)
	}
}

func (c *counter) record(name string) {
	c.mu.Lock()
	c.names = append(c.names, name)
	c.mu.Unlock()
}

func (c *counter) reset() {
	c.dials.Store(0)
	c.cmds.Store(0)
	c.pipelines.Store(0)
	c.pipelinedCmds.Store(0)
	c.mu.Lock()
	c.names = nil
	c.mu.Unlock()
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("dials=%d cmds=%d pipelines=%d (%d cmds) %v",
		c.dials.Load(), c.cmds.Load(), c.pipelines.Load(), c.pipelinedCmds.Load(), c.names)
}

// within runs f in a goroutine and fails the test if it has not returned
// within returnBound.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(returnBound)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s has not returned after %s", what, returnBound)
	}
}

func sameSession(t *testing.T, got, want session.Session) {
	t.Helper()
	if got.ID != want.ID || got.Key() != want.Key() || got.Datacenter != want.Datacenter ||
		!got.Created.Equal(want.Created) || !got.LastAccessed.Equal(want.LastAccessed) ||
		fmt.Sprint(got.Data) != fmt.Sprint(want.Data) {
		t.Fatalf("got session %+v, want %+v", got, want)
	}
}

func TestGetOrCreateCreatesOnce(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, srv.Addr())
	ctx := ctxFor(t, 5*time.Second)

	first := testSession("192.0.2.0/24", 1, "ams")
	got, created, err := st.GetOrCreate(ctx, first, time.Hour)
	if err != nil || !created {
		t.Fatalf("first GetOrCreate: created=%t err=%v, want created", created, err)
	}
	sameSession(t, got, first)

	second := testSession("192.0.2.0/24", 2, "fra")
	got, created, err = st.GetOrCreate(ctx, second, time.Hour)
	if err != nil || created {
		t.Fatalf("second GetOrCreate: created=%t err=%v, want existing", created, err)
	}
	sameSession(t, got, first)

	got, err = st.Get(ctx, first.Key())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameSession(t, got, first)

	// Another client prefix is another session.
	other := testSession("198.51.100.0/24", 3, "lon")
	if _, created, err := st.GetOrCreate(ctx, other, time.Hour); err != nil || !created {
		t.Fatalf("GetOrCreate for another client: created=%t err=%v, want created", created, err)
	}
}

func TestGetOrCreateRace(t *testing.T) {
	srv := redistest.Start(t)
	// A connection each, so that all 50 are in flight at once: with the
	// default 32, the rest would wait for one (and, on a slow machine,
	// give up after the 5ms PoolTimeout).
	st := newStoreOpts(t, redisstore.Options{Addrs: []string{srv.Addr()}, PoolSize: 64})
	ctx := ctxFor(t, 10*time.Second)

	const n = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		got     [n]session.Session
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			s := testSession("203.0.113.0/24", idgen.ID(i+1), fmt.Sprintf("dc%02d", i))
			got[i], created[i], errs[i] = st.GetOrCreate(ctx, s, time.Hour)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if created[i] {
			if winner >= 0 {
				t.Fatalf("goroutines %d and %d both created the session", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no goroutine created the session")
	}
	want := got[winner]
	if want.ID != idgen.ID(winner+1) || want.Datacenter != fmt.Sprintf("dc%02d", winner) {
		t.Fatalf("creator %d got %+v, want its own session", winner, want)
	}
	for i := range n {
		sameSession(t, got[i], want)
	}
	stored, err := st.Get(ctx, want.Key())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameSession(t, stored, want)
}

func TestTTL(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, srv.Addr())
	raw := rawClient(t, srv.Addr())
	ctx := ctxFor(t, 5*time.Second)

	// pttl checks the server's remaining TTL: set by this test to ttl, so
	// within (ttl-1m, ttl] however slow the machine.
	pttl := func(t *testing.T, key session.Key, ttl time.Duration) {
		t.Helper()
		got, err := raw.PTTL(ctx, prefix+key.String()).Result()
		if err != nil {
			t.Fatalf("PTTL: %v", err)
		}
		if got <= ttl-time.Minute || got > ttl {
			t.Fatalf("PTTL %s, want within (%s, %s]", got, ttl-time.Minute, ttl)
		}
	}

	s := testSession("192.0.2.0/24", 1, "ams")
	if _, _, err := st.GetOrCreate(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	pttl(t, s.Key(), time.Hour)

	// An existing session keeps its TTL: GetOrCreate reads it, and
	// refreshing is Put's job.
	if _, created, err := st.GetOrCreate(ctx, s, 3*time.Hour); err != nil || created {
		t.Fatalf("GetOrCreate: created=%t err=%v", created, err)
	}
	pttl(t, s.Key(), time.Hour)

	for _, ttl := range []time.Duration{2 * time.Hour, 90*time.Second + 500*time.Millisecond} {
		if err := st.Put(ctx, []session.Session{s}, ttl); err != nil {
			t.Fatal(err)
		}
		pttl(t, s.Key(), ttl)
	}

	// A sub-millisecond TTL is rounded up, not to 0, which SET rejects.
	s2 := testSession("192.0.2.128/25", 2, "ams")
	if _, _, err := st.GetOrCreate(ctx, s2, time.Microsecond); err != nil {
		t.Fatalf("GetOrCreate with 1µs TTL: %v", err)
	}

	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, _, err := st.GetOrCreate(ctx, s, ttl); err == nil {
			t.Errorf("GetOrCreate with TTL %s: no error", ttl)
		}
		if err := st.Put(ctx, []session.Session{s}, ttl); err == nil {
			t.Errorf("Put with TTL %s: no error", ttl)
		}
	}
}

func TestRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, srv.Addr())
	var c counter
	st.AddHook(&c)
	ctx := ctxFor(t, 5*time.Second)

	sessions := make([]session.Session, 10)
	for i := range sessions {
		sessions[i] = testSession(fmt.Sprintf("10.0.%d.0/24", i), idgen.ID(i+1), "ams")
	}

	// Dial and handshake the connections first: those are round trips of
	// their own, counted below only once.
	if err := st.Put(ctx, sessions[:1], time.Hour); err != nil {
		t.Fatal(err)
	}

	t.Run("put", func(t *testing.T) {
		c.reset()
		if err := st.Put(ctx, sessions, time.Hour); err != nil {
			t.Fatal(err)
		}
		if c.pipelines.Load() != 1 || c.pipelinedCmds.Load() != int64(len(sessions)) || c.cmds.Load() != 0 {
			t.Fatalf("Put of %d sessions: %s, want one pipeline of %d SETs and no other command",
				len(sessions), &c, len(sessions))
		}
		for _, s := range sessions {
			got, err := st.Get(ctx, s.Key())
			if err != nil {
				t.Fatalf("Get %s: %v", s.Key(), err)
			}
			sameSession(t, got, s)
		}
	})

	t.Run("put nothing", func(t *testing.T) {
		c.reset()
		if err := st.Put(ctx, nil, time.Hour); err != nil {
			t.Fatal(err)
		}
		if c.pipelines.Load() != 0 || c.cmds.Load() != 0 {
			t.Fatalf("Put of nothing: %s, want no round trip", &c)
		}
	})

	t.Run("get-or-create", func(t *testing.T) {
		s := testSession("10.1.0.0/24", 100, "fra")
		// The first run may find the script uncached (EVALSHA, then EVAL).
		if _, _, err := st.GetOrCreate(ctx, s, time.Hour); err != nil {
			t.Fatal(err)
		}
		for _, s := range []session.Session{s, testSession("10.1.1.0/24", 101, "fra")} {
			c.reset()
			if _, _, err := st.GetOrCreate(ctx, s, time.Hour); err != nil {
				t.Fatal(err)
			}
			if c.cmds.Load() != 1 || c.pipelines.Load() != 0 {
				t.Fatalf("GetOrCreate: %s, want one command", &c)
			}
		}
	})

	t.Run("script cache flushed", func(t *testing.T) {
		if err := rawClient(t, srv.Addr()).ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		c.reset()
		s := testSession("10.2.0.0/24", 200, "fra")
		if _, created, err := st.GetOrCreate(ctx, s, time.Hour); err != nil || !created {
			t.Fatalf("GetOrCreate after SCRIPT FLUSH: created=%t err=%v", created, err)
		}
		if c.cmds.Load() != 2 {
			t.Fatalf("GetOrCreate after SCRIPT FLUSH: %s, want EVALSHA then EVAL", &c)
		}
	})
}

func TestGetMissing(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, srv.Addr())
	s := testSession("192.0.2.0/24", 1, "ams")
	_, err := st.Get(ctxFor(t, 5*time.Second), s.Key())
	if !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
}

func TestCorrupt(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, srv.Addr())
	raw := rawClient(t, srv.Addr())
	ctx := ctxFor(t, 10*time.Second)

	s := testSession("192.0.2.0/24", 1, "ams")
	key := prefix + s.Key().String()
	noDC := s
	noDC.Datacenter = ""
	for _, tc := range []struct {
		name, value string
	}{
		{"garbage", "garbage\x00\xff"},
		{"empty", ""},
		{"truncated", `{"id":"1","service":"www.example.com.",`},
		{"empty object", "{}"},
		{"null", "null"},
		{"string", `"ams"`},
		{"array", `[1,2]`},
		{"wrong type", `{"id":"1","service":"www.example.com.","client":"192.0.2.0/24","datacenter":7}`},
		{"other key", `{"id":"1","service":"other.example.com.","client":"192.0.2.0/24","datacenter":"ams"}`},
		{"no datacenter", `{"id":"1","service":"www.example.com.","client":"192.0.2.0/24"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := raw.Set(ctx, key, tc.value, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, s.Key()); !errors.Is(err, session.ErrCorrupt) {
				t.Errorf("Get: %v, want ErrCorrupt", err)
			}
			_, created, err := st.GetOrCreate(ctx, s, time.Hour)
			if !errors.Is(err, session.ErrCorrupt) || created {
				t.Errorf("GetOrCreate: created=%t err=%v, want ErrCorrupt", created, err)
			}
			if got, err := raw.Get(ctx, key).Result(); err != nil || got != tc.value {
				t.Errorf("after GetOrCreate the value is %q (%v), want it untouched", got, err)
			}
			// What the caller does next: overwrite.
			if err := st.Put(ctx, []session.Session{s}, time.Hour); err != nil {
				t.Fatal(err)
			}
			got, err := st.Get(ctx, s.Key())
			if err != nil {
				t.Fatalf("Get after Put: %v", err)
			}
			sameSession(t, got, s)
		})
	}

	// A key of another type is no session either.
	t.Run("hash", func(t *testing.T) {
		if err := raw.Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		if err := raw.HSet(ctx, key, "datacenter", "ams").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, s.Key()); !errors.Is(err, session.ErrCorrupt) {
			t.Errorf("Get: %v, want ErrCorrupt", err)
		}
		if _, created, err := st.GetOrCreate(ctx, s, time.Hour); !errors.Is(err, session.ErrCorrupt) || created {
			t.Errorf("GetOrCreate: created=%t err=%v, want ErrCorrupt", created, err)
		}
		if err := st.Put(ctx, []session.Session{s}, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, s.Key())
		if err != nil {
			t.Fatalf("Get after Put: %v", err)
		}
		sameSession(t, got, s)
	})

	// Unknown fields are a newer version's, not corruption.
	if err := raw.Set(ctx, key, `{"id":"1","service":"www.example.com.","client":"192.0.2.0/24","datacenter":"ams","weight":3}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, s.Key()); err != nil || got.Datacenter != "ams" {
		t.Errorf("Get of a session with an unknown field: %+v, %v", got, err)
	}

	// And a session that would read back as corrupt is not written.
	if err := st.Put(ctx, []session.Session{s, noDC}, time.Hour); err == nil {
		t.Error("Put of a session without a datacenter: no error")
	}
	if _, _, err := st.GetOrCreate(ctx, noDC, time.Hour); err == nil {
		t.Error("GetOrCreate of a session without a datacenter: no error")
	}
}

func TestDelete(t *testing.T) {
	srv := redistest.Start(t)
	st := newStore(t, srv.Addr())
	ctx := ctxFor(t, 5*time.Second)

	s := testSession("192.0.2.0/24", 1, "ams")
	if _, _, err := st.GetOrCreate(ctx, s, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, s.Key()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := st.Get(ctx, s.Key()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, s.Key()); err != nil {
		t.Fatalf("Delete of nothing: %v", err)
	}
	// The next GetOrCreate creates afresh.
	s2 := testSession("192.0.2.0/24", 2, "fra")
	if got, created, err := st.GetOrCreate(ctx, s2, time.Hour); err != nil || !created || got.ID != 2 {
		t.Fatalf("GetOrCreate after Delete: %+v created=%t err=%v", got, created, err)
	}
}

// TestDeadlinePausedServer stalls Redis and checks that a call with the
// DNS path's 2ms budget comes back, with a deadline error, both on a
// pooled connection and on one it has to dial.
func TestDeadlinePausedServer(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxFor(t, 5*time.Second)
	warm := testSession("192.0.2.0/24", 1, "ams")

	type op struct {
		name string
		call func(ctx context.Context, st *redisstore.Store) error
	}
	ops := []op{
		{"get-or-create", func(ctx context.Context, st *redisstore.Store) error {
			_, _, err := st.GetOrCreate(ctx, testSession("198.51.100.0/24", 2, "fra"), time.Hour)
			return err
		}},
		{"get", func(ctx context.Context, st *redisstore.Store) error {
			_, err := st.Get(ctx, warm.Key())
			return err
		}},
		{"put", func(ctx context.Context, st *redisstore.Store) error {
			return st.Put(ctx, []session.Session{testSession("198.51.100.0/24", 3, "lon")}, time.Hour)
		}},
		{"delete", func(ctx context.Context, st *redisstore.Store) error {
			s := testSession("203.0.113.0/24", 4, "lon")
			return st.Delete(ctx, s.Key())
		}},
		{"ping", func(ctx context.Context, st *redisstore.Store) error { return st.Ping(ctx) }},
	}

	// A timed-out call discards its connection, so each case gets stores
	// of its own: one with connections in both pools (commands' and
	// Put's) and the script cached, and one that has never connected,
	// whose dial the kernel accepts and whose handshake (HELLO) gets no
	// answer.
	type stores struct{ pooled, dialling *redisstore.Store }
	all := make([]stores, len(ops))
	for i := range ops {
		all[i] = stores{newStore(t, srv.Addr()), newStore(t, srv.Addr())}
		if _, _, err := all[i].pooled.GetOrCreate(ctx, warm, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := all[i].pooled.Put(ctx, []session.Session{warm}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	srv.Pause()
	t.Cleanup(srv.Resume)

	for i, tc := range ops {
		for _, store := range []struct {
			name string
			st   *redisstore.Store
		}{{"pooled", all[i].pooled}, {"dialling", all[i].dialling}} {
			t.Run(tc.name+"/"+store.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Millisecond)
				defer cancel()
				var err error
				start := time.Now()
				within(t, tc.name, func() { err = tc.call(ctx, store.st) })
				t.Logf("returned after %s: %v", time.Since(start).Round(10*time.Microsecond), err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("got %v, want a deadline error", err)
				}
				if !strings.HasPrefix(err.Error(), "redisstore: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
			})
		}
	}

	// Once Redis answers again, the stores work, and the replies that
	// queued up while it was stopped are not taken for the answers to new
	// commands: a timed-out connection must have been discarded.
	srv.Resume()
	for i := range all {
		for _, st := range []*redisstore.Store{all[i].pooled, all[i].dialling} {
			got, err := st.Get(ctx, warm.Key())
			if err != nil {
				t.Fatalf("Get after Resume: %v", err)
			}
			sameSession(t, got, warm)
			next := testSession(fmt.Sprintf("10.9.%d.0/24", i), idgen.ID(100+i), "par")
			got, _, err = st.GetOrCreate(ctx, next, time.Hour)
			if err != nil {
				t.Fatalf("GetOrCreate after Resume: %v", err)
			}
			sameSession(t, got, next)
		}
	}
}

// TestNewWithoutServer: gslbd starts while Redis is down.
func TestNewWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	st, err := redisstore.New(redisstore.Options{Addrs: []string{addr}})
	if err != nil {
		t.Fatalf("New with no server: %v", err)
	}
	defer st.Close()
	var c counter
	st.AddHook(&c)

	// A long deadline, so that failing fast means failing for a reason
	// other than running out of time.
	ctx := ctxFor(t, 10*time.Second)
	within(t, "GetOrCreate", func() {
		_, _, err = st.GetOrCreate(ctx, testSession("192.0.2.0/24", 1, "ams"), time.Hour)
	})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetOrCreate with no server: %v, want a connection error", err)
	}
	if !strings.HasPrefix(err.Error(), "redisstore: get-or-create ") {
		t.Errorf("error %q lacks its context", err)
	}
	if c.dials.Load() != 1 {
		t.Errorf("GetOrCreate with no server dialled %d times, want once", c.dials.Load())
	}
}

// TestRecovery: calls fail while Redis is down, even for long past
// PoolSize dials, and succeed once it is back.
func TestRecovery(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	st := newStore(t, srv.Addr())
	ctx := ctxFor(t, 20*time.Second)
	s := testSession("192.0.2.0/24", 1, "ams")

	for i := range 2 * redisstore.DefaultPoolSize {
		if _, _, err := st.GetOrCreate(ctx, s, time.Hour); err == nil {
			t.Fatalf("call %d with the server down: no error", i)
		}
	}

	srv.Restart()
	// go-redis stops dialling on the caller's path after PoolSize failures
	// and redials in the background about once a second; wait for it,
	// boundedly.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, created, err := st.GetOrCreate(ctx, s, time.Hour)
		if err == nil {
			if !created {
				t.Fatal("GetOrCreate after Restart found a session the restarted server cannot have")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 10s after Restart: %v", err)
		}
		<-tick.C
	}
}

// TestAuth checks that a password works, and that a wrong one is not
// echoed in the error.
func TestAuth(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t) // miniredis has no CONFIG SET requirepass
	ctx := ctxFor(t, 5*time.Second)
	const pw = "correct-horse-battery"
	if err := rawClient(t, srv.Addr()).ConfigSet(ctx, "requirepass", pw).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}

	const wrong = "wrong-staple-9f3a"
	bad, err := redisstore.New(redisstore.Options{Addrs: []string{srv.Addr()}, Password: wrong})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	err = bad.Ping(ctx)
	if err == nil {
		t.Fatal("Ping with a wrong password: no error")
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error %q contains the password", err)
	}

	good, err := redisstore.New(redisstore.Options{Addrs: []string{srv.Addr()}, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := good.Ping(ctx); err != nil {
		t.Fatalf("Ping with the password: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	const pw = "s3cret-do-not-log"
	for _, tc := range []struct {
		name string
		o    redisstore.Options
		want string
	}{
		{"no addrs", redisstore.Options{}, "addrs: at least one address is required"},
		{"no port", redisstore.Options{Addrs: []string{"redis.example.com"}}, `addrs[0]: "redis.example.com" is not host:port`},
		{"bad port", redisstore.Options{Addrs: []string{"a:1", "b:http"}}, `addrs[1]: "b:http" has no valid port`},
		{"port 0", redisstore.Options{Addrs: []string{"a:0"}}, `addrs[0]: "a:0" has no valid port`},
		{"no host", redisstore.Options{Addrs: []string{":6379"}}, `addrs[0]: ":6379" has no host`},
		{"negative db", redisstore.Options{Addrs: []string{"a:6379"}, DB: -1}, "db: -1 is negative"},
		{"cluster db", redisstore.Options{Addrs: []string{"a:6379", "b:6379"}, DB: 2}, "db: 2 with 2 addrs: a Cluster has only database 0"},
		{"negative timeout", redisstore.Options{Addrs: []string{"a:6379"}, ReadTimeout: -time.Second}, "read_timeout: -1s is negative"},
		{"negative pool", redisstore.Options{Addrs: []string{"a:6379"}, PoolSize: -1}, "pool_size: -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Password = pw
			_, err := redisstore.New(tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "redisstore: ") {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}

	// Sentinel with a DB, and several problems at once.
	if _, err := redisstore.New(redisstore.Options{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "m", DB: 3}); err != nil {
		t.Errorf("Sentinel with DB 3: %v", err)
	}
	_, err := redisstore.New(redisstore.Options{Addrs: []string{"x"}, DB: -1})
	if err == nil || !strings.Contains(err.Error(), "addrs[0]") || !strings.Contains(err.Error(), "db: -1") {
		t.Errorf("two problems: got %v, want both reported", err)
	}
}

func TestOptionsDoNotPrintPassword(t *testing.T) {
	const pw = "s3cret-do-not-log"
	o := redisstore.Options{Addrs: []string{"a:6379"}, Username: "gslbd", Password: pw}
	var logged strings.Builder
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	logger.Info("redis", "options", o)
	for _, s := range []string{
		fmt.Sprint(o), fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o),
		fmt.Sprintf("%s", &o), logged.String(),
	} {
		if strings.Contains(s, pw) {
			t.Errorf("%q contains the password", s)
		}
		if !strings.Contains(s, "a:6379") {
			t.Errorf("%q lacks the address", s)
		}
	}
}
