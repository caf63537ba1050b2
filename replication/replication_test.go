package replication

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
)

// writeRandomly makes ops random changes at d to sessions 0..keys-1, as
// the DNS path (create, touch, move) and the admin API (delete) do. Keys
// are shared between datacenters, so writes collide.
func writeRandomly(t *testing.T, d *dc, seed uint64, ops, keys int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 7))
	where := []string{"dc-0", "dc-1", "dc-2", "dc-3"}
	for range ops {
		s := testSession(d, rng.IntN(keys), where[rng.IntN(len(where))])
		var err error
		switch r := rng.IntN(10); {
		case r < 5: // a move, based on what this datacenter stores
			if got, gerr := d.store.Get(ctx, s.Key()); gerr == nil {
				got.DisplacedFrom, got.Datacenter, got.LastAccessed = got.Datacenter, s.Datacenter, s.LastAccessed
				s = got
			}
			err = d.store.Put(ctx, []session.Session{s}, testTTL)
		case r < 7: // a touch
			if got, gerr := d.store.Get(ctx, s.Key()); gerr == nil {
				got.LastAccessed = time.Now()
				err = d.store.Put(ctx, []session.Session{got}, testTTL)
			}
		case r < 9:
			_, _, err = d.store.GetOrCreate(ctx, s, testTTL)
		default:
			err = d.store.Delete(ctx, s.Key())
		}
		if err != nil {
			t.Errorf("%s: %v", d.name, err)
			return
		}
	}
}

func testConverge(t *testing.T, n int) {
	dcs := newDCs(t, n, ActiveActive)
	for _, d := range dcs {
		d.start()
	}
	// Two writers per datacenter, all at once, on 40 shared sessions.
	var wg sync.WaitGroup
	for i, d := range dcs {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				writeRandomly(t, d, uint64(10*i+w), 400, 40)
			}()
		}
	}
	wg.Wait()
	ks := converge(t, dcs)
	if len(ks) < 30 {
		t.Errorf("only %d sessions after the writes; the test exercised too little", len(ks))
	}
	conflicts := 0.0
	for _, d := range dcs {
		for _, p := range d.peers {
			conflicts += d.counter("conflicts", p.name)
			if got := d.counter("errors", p.name, "malformed"); got != 0 {
				t.Errorf("%s from %s: %v malformed entries, want 0", d.name, p.name, got)
			}
		}
	}
	// Concurrent writes to 40 keys from every side must collide; that the
	// counter saw some shows detection works, not only resolution.
	if conflicts == 0 {
		t.Error("no conflicts counted, though every datacenter wrote the same keys at once")
	}
	t.Logf("%d sessions converged; %v conflicts counted", len(ks), conflicts)
}

func TestConvergeTwoDatacenters(t *testing.T)   { testConverge(t, 2) }
func TestConvergeThreeDatacenters(t *testing.T) { testConverge(t, 3) }

// TestLateRefreshDoesNotUndoAMove: a move in one datacenter is not undone
// by another that refreshes the session from an older copy.
func TestLateRefreshDoesNotUndoAMove(t *testing.T) {
	dcs := newDCs(t, 2, ActiveActive)
	a, b := dcs[0], dcs[1]
	a.start()
	b.start()
	ctx := context.Background()
	s := testSession(a, 1, "dc-0")
	got, created, err := a.store.GetOrCreate(ctx, s, testTTL)
	if err != nil || !created || got.Version == 0 {
		t.Fatalf("create: %+v %t %v, want created with a version", got, created, err)
	}
	converge(t, dcs)
	old, err := b.store.Get(ctx, s.Key()) // b's instance caches this copy
	if err != nil {
		t.Fatal(err)
	}
	moved := old
	moved.Datacenter, moved.DisplacedFrom = "dc-1", "dc-0"
	put(t, a, moved) // a moves the client
	converge(t, dcs)
	old.LastAccessed = time.Now() // b's late refresh of the old copy
	put(t, b, old)
	converge(t, dcs)
	now, err := b.store.Get(ctx, s.Key())
	if err != nil || now.Datacenter != "dc-1" {
		t.Fatalf("after b's late refresh: %+v %v, want the move to dc-1 kept", now, err)
	}
	// A refresh of the current copy keeps the version: no new version
	// travels back and forth.
	now.LastAccessed = time.Now()
	put(t, b, now)
	again, _ := b.store.Get(ctx, s.Key())
	if again.Version != now.Version {
		t.Errorf("a TTL refresh changed the version from %s to %s", now.Version, again.Version)
	}
}

// TestPeerPausedAndResumed: a peer that stops answering (SIGSTOP) is
// retried; lag grows while it is away, and replication resumes from the
// checkpoint when it is back.
func TestPeerPausedAndResumed(t *testing.T) {
	dcs := newDCs(t, 2, ActiveActive)
	a, b := dcs[0], dcs[1]
	a.start()
	b.start()
	for i := range 50 {
		put(t, a, testSession(a, i, "dc-0"))
	}
	converge(t, dcs)
	a.srv.Pause()
	eventually(t, "b's replicator to see a as unreachable and its lag to grow", func() bool {
		return b.counter("errors", "dc-0", "peer") > 0 && b.counter("lag", "dc-0") >= 1
	})
	if st := b.mg.Status(context.Background()); st.Peers[0].State != stateUnreachable {
		t.Errorf("status while paused: %+v, want unreachable", st.Peers[0])
	}
	a.srv.Resume()
	for i := 50; i < 100; i++ {
		put(t, a, testSession(a, i, "dc-0"))
	}
	ks := converge(t, dcs)
	if len(ks) != 100 {
		t.Errorf("got %d sessions, want 100", len(ks))
	}
	eventually(t, "lag back to 0", func() bool { return b.counter("lag", "dc-0") == 0 })
	if got := b.counter("resyncs", "dc-0"); got != 1 {
		t.Errorf("resyncs: %v, want 1 (the first start only): the pause must not lose the checkpoint", got)
	}
}

// TestTrimmedLogResyncs: the log trimmed past a paused datacenter's
// checkpoint is detected, and a full resync brings it level, deletes
// included.
func TestTrimmedLogResyncs(t *testing.T) {
	dcs := newDCs(t, 2, ActiveActive)
	a, b := dcs[0], dcs[1]
	a.start()
	b.start()
	ctx := context.Background()
	for i := range 40 {
		put(t, a, testSession(a, i, "dc-0"))
	}
	converge(t, dcs)
	b.srv.Pause()
	for i := 40; i < 120; i++ {
		put(t, a, testSession(a, i, "dc-0"))
	}
	for i := range 10 {
		gone := testSession(a, i, "")
		if err := a.store.Delete(ctx, gone.Key()); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.raw.XTrimMaxLen(ctx, testNS+"log", 5).Err(); err != nil {
		t.Fatal(err)
	}
	b.srv.Resume()
	ks := converge(t, dcs)
	if len(ks) != 120 {
		t.Errorf("got %d keys, want 120 (110 sessions, 10 tombstones)", len(ks))
	}
	for i := range 10 {
		gone := testSession(a, i, "")
		if _, err := b.store.Get(ctx, gone.Key()); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("session %d, deleted at a: %v at b, want not found", i, err)
		}
	}
	if got := b.counter("resyncs", "dc-0"); got != 2 {
		t.Errorf("resyncs: %v, want 2 (first start, then the trimmed log)", got)
	}
}

// TestKilledMidBatch kills b's replicator over and over while a writes:
// before an apply, and while one is in flight (its script may or may not
// have run). After a last run has caught up, b has taken every entry of
// a's log exactly once: the count the apply script keeps in b's Redis
// equals the log's length, and the keyspaces match.
func TestKilledMidBatch(t *testing.T) {
	dcs := newDCs(t, 2, ActiveActive)
	a, b := dcs[0], dcs[1]
	const writes = 3000
	ctx := context.Background()
	// A first run copies a's (empty) keyspace and stores a checkpoint, so
	// that every write below travels by the log.
	b.start()
	eventually(t, "b's first checkpoint", func() bool { cp, _, _ := b.store.Checkpoint(ctx, "dc-0"); return cp != "" })
	b.halt()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range writes {
			// Every write a new version of one of 200 sessions.
			if err := a.store.Put(context.Background(), []session.Session{testSession(a, i%200, fmt.Sprint("dc-", i))}, testTTL); err != nil {
				t.Errorf("put: %v", err)
				return
			}
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 30 {
		var once sync.Once
		killed := make(chan struct{})
		b.start(func(o *Options) {
			o.Batch = int64(5 + rng.IntN(50))
			o.beforeApply = func(_ string, _ context.CancelFunc) {
				if rng.IntN(4) != 0 {
					return
				}
				once.Do(func() {
					stop := b.stop
					if round%2 == 0 {
						stop() // before the apply is sent
					} else {
						// while it is in flight
						d := time.Duration(rng.IntN(300)) * time.Microsecond
						go func() { time.Sleep(d); stop() }()
					}
					close(killed)
				})
			}
		})
		select {
		case <-killed:
		case <-time.After(2 * time.Second):
		}
		b.halt()
	}
	wg.Wait()
	b.start()
	converge(t, dcs)
	eventually(t, "b to have taken a's whole log", func() bool {
		n, err := b.store.Processed(ctx, "dc-0")
		return err == nil && n >= writes
	})
	n, _ := b.store.Processed(ctx, "dc-0")
	l := a.raw.XLen(ctx, testNS+"log").Val()
	if n != writes || l != writes {
		t.Errorf("b took %d entries of a log of %d (%d writes): each must be taken exactly once", n, l, writes)
	}
}

// TestMalformedEntrySkipped: an entry that is not a change is skipped,
// counted and logged by ID, and the entries around it are applied.
func TestMalformedEntrySkipped(t *testing.T) {
	dcs := newDCs(t, 2, ActiveActive)
	a, b := dcs[0], dcs[1]
	var logs strings.Builder
	var mu sync.Mutex
	b.start(func(o *Options) { o.Log = newTestLogger(&logs, &mu) })
	a.start()
	ctx := context.Background()
	// Written after b's first copy of a's keyspace, so that every entry
	// reaches b through the log.
	eventually(t, "b's first checkpoint", func() bool { cp, _, _ := b.store.Checkpoint(ctx, "dc-0"); return cp != "" })
	put(t, a, testSession(a, 1, "dc-0"))
	bad := []map[string]any{
		{"op": "put", "key": "x", "v": "12", "o": "dc-0", "d": "ab", "vv": "dc-0=12", "body": `"id":`, "ttl": "1000"}, // body not JSON
		{"op": "frobnicate", "v": "1", "o": "dc-0"},
		{"garbage": "yes"},
		{"op": "put", "key": "x", "v": "12", "o": `dc"0`, "d": "ab", "vv": "dc-0=12", "body": `"id":"1"}`, "ttl": "1000"},
	}
	var ids []string
	for _, v := range bad {
		id, err := a.raw.XAdd(ctx, &redis.XAddArgs{Stream: testNS + "log", Values: v}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	put(t, a, testSession(a, 2, "dc-0"))
	ks := converge(t, dcs)
	if len(ks) != 2 {
		t.Errorf("got %d sessions, want the 2 good ones", len(ks))
	}
	if got := b.counter("errors", "dc-0", "malformed"); got != float64(len(bad)) {
		t.Errorf("malformed: %v, want %d", got, len(bad))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if !strings.Contains(logs.String(), id) {
			t.Errorf("no log line names malformed entry %s:\n%s", id, logs.String())
		}
	}
}

// TestActivePassivePromote: a standby refuses session writes (it answers
// with its own pick, unstored); promote fences the primary, waits until
// its log is applied, and flips the roles, which survive a restart.
func TestActivePassivePromote(t *testing.T) {
	dcs := newDCs(t, 2, ActivePassive)
	a, b := dcs[0], dcs[1]
	a.start()
	b.start()
	ctx := context.Background()
	for i := range 100 {
		put(t, a, testSession(a, i, "dc-0"))
	}
	// The standby computes but does not write.
	s := testSession(b, 500, "dc-1")
	got, created, err := b.store.GetOrCreate(ctx, s, testTTL)
	if err != nil || created || got.Datacenter != "dc-1" {
		t.Fatalf("GetOrCreate on the standby: %+v %t %v, want its own pick, not created", got, created, err)
	}
	put(t, b, testSession(b, 501, "dc-1"))
	one := testSession(b, 1, "")
	if err := b.store.Delete(ctx, one.Key()); !errors.Is(err, redisstore.ErrStandby) {
		t.Errorf("Delete on the standby: %v, want ErrStandby", err)
	}
	if got := b.counter("refused", ""); got != 3 {
		t.Errorf("refused writes: %v, want 3", got)
	}
	// Writes keep coming at a while b promotes: the promote must wait for
	// every one a took before it was fenced.
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1000; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			_ = a.store.Put(ctx, []session.Session{testSession(a, i, "dc-0")}, testTTL)
		}
	}()
	time.Sleep(20 * time.Millisecond) // let some writes in before the promote (not a wait on state)
	res, err := b.mg.Promote(ctx, PromoteRequest{Timeout: 10 * time.Second})
	close(stopWriting)
	wg.Wait()
	if err != nil || !res.Promoted || !res.Peers[0].Fenced || !res.Peers[0].Drained {
		t.Fatalf("promote: %+v %v", res, err)
	}
	// Everything a wrote was applied at b by the time promote returned.
	if ak, bk := a.keyspace(), b.keyspace(); len(ak) != len(bk) {
		t.Errorf("at promote: a has %d sessions, b %d", len(ak), len(bk))
	}
	if st := b.mg.Status(ctx); st.Role != redisstore.RolePrimary {
		t.Errorf("b's role: %+v", st)
	}
	if st := a.mg.Status(ctx); st.Role != redisstore.RoleStandby || st.Primary != "dc-1" {
		t.Errorf("a's role after fencing: %+v", st)
	}
	// a refuses writes now; b takes them and they reach a.
	before := len(a.keyspace())
	put(t, a, testSession(a, 9000, "dc-0"))
	put(t, b, testSession(b, 9001, "dc-1"))
	ks := converge(t, dcs)
	if len(ks) != before+1 {
		t.Errorf("after promote: %d sessions, want %d (b's write only)", len(ks), before+1)
	}
	// The role is stored: a restarted b, configured as standby, is primary.
	b.halt()
	b.start()
	if st := b.mg.Status(ctx); st.Role != redisstore.RolePrimary {
		t.Errorf("b's role after restart: %+v", st)
	}
	res, err = b.mg.Promote(ctx, PromoteRequest{})
	if err != nil || res.Promoted || res.Role != redisstore.RolePrimary {
		t.Errorf("promote of the primary: %+v %v, want a no-op", res, err)
	}
}

// TestPromoteUnreachablePrimary: without force, a promote that cannot
// fence the primary fails and changes nothing; with force it promotes,
// and the old primary learns it from the new primary's log once it is
// back, and steps down.
func TestPromoteUnreachablePrimary(t *testing.T) {
	dcs := newDCs(t, 2, ActivePassive)
	a, b := dcs[0], dcs[1]
	a.start()
	b.start()
	ctx := context.Background()
	put(t, a, testSession(a, 1, "dc-0"))
	converge(t, dcs)
	a.halt() // a's gslbd is gone; its Redis too:
	a.srv.Pause()
	res, err := b.mg.Promote(ctx, PromoteRequest{Timeout: 1500 * time.Millisecond})
	if !errors.Is(err, ErrNotDrained) || res.Peers[0].Fenced {
		t.Fatalf("promote with the primary unreachable: %+v %v, want ErrNotDrained", res, err)
	}
	if st := b.mg.Status(ctx); st.Role != redisstore.RoleStandby {
		t.Fatalf("role after a failed promote: %+v", st)
	}
	res, err = b.mg.Promote(ctx, PromoteRequest{Timeout: 1500 * time.Millisecond, Force: true})
	if err != nil || !res.Promoted {
		t.Fatalf("forced promote: %+v %v", res, err)
	}
	put(t, b, testSession(b, 2, "dc-1"))
	a.srv.Resume()
	a.start()
	eventually(t, "a to learn of the promote from b's log", func() bool {
		st := a.mg.Status(ctx)
		return st.Role == redisstore.RoleStandby && st.Primary == "dc-1"
	})
	converge(t, dcs)
}

func TestNewRejects(t *testing.T) {
	dcs := newDCs(t, 1, ActiveActive)
	d := dcs[0]
	for _, o := range []Options{
		{Mode: "active-standby", Datacenter: "dc-0", Local: d.store, IDs: d.ids},
		{Mode: ActiveActive, Datacenter: "dc-0", Local: d.store, IDs: d.ids, Peers: []Peer{{Datacenter: "dc-0"}}},
		{Mode: ActiveActive, Datacenter: "dc-0", Local: d.store, IDs: d.ids, Peers: []Peer{{Datacenter: "dc-1"}, {Datacenter: "dc-1"}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

// eventually polls cond every 20ms for up to 20s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeerNeedsPassword: a peer's Redis that requires a password is read
// with the configured one.
func TestPeerNeedsPassword(t *testing.T) {
	dcs := newDCs(t, 2, ActiveActive)
	a, b := dcs[0], dcs[1]
	ctx := context.Background()
	s := testSession(a, 1, "dc-0")
	put(t, a, s)
	if err := a.raw.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
	authed, err := redisstore.New(redisstore.Options{Addrs: []string{a.srv.Addr()}, KeyPrefix: testPrefix, Password: "s3cret",
		ReadTimeout: time.Second, Replication: &redisstore.Replication{Datacenter: a.name, IDs: b.ids, Namespace: testNS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authed.Close() })
	b.start(func(o *Options) { o.Peers[0].Store = authed })
	eventually(t, "a's session at b, read with the password", func() bool {
		_, err := b.store.Get(ctx, s.Key())
		return err == nil
	})
	if got := b.counter("errors", "dc-0", "peer"); got != 0 {
		t.Errorf("peer errors: %v, want 0", got)
	}
}
