package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

func replicatedStore(t *testing.T, addr string, activePassive bool) (*redisstore.Store, *idgen.Generator) {
	t.Helper()
	ids, err := idgen.New(idgen.Config{Datacenter: 3})
	if err != nil {
		t.Fatal(err)
	}
	return newStoreOpts(t, redisstore.Options{Addrs: []string{addr}, ReadTimeout: time.Second,
		Replication: &redisstore.Replication{Datacenter: "ams", IDs: ids, ActivePassive: activePassive}}), ids
}

// TestReplicatedWrites follows one session through the replicated
// scripts: every write is logged with it; a touch keeps the version, a
// move makes a new one; a delete leaves a tombstone that reads as no
// session; a value written before replication, or of another type, is
// replaced.
func TestReplicatedWrites(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	st, ids := replicatedStore(t, srv.Addr(), false)
	raw := rawClient(t, srv.Addr())
	ctx := context.Background()
	logLen := func() int64 { return raw.XLen(ctx, redisstore.DefaultNamespace+"log").Val() }
	id, _ := ids.Next()
	s := testSession("192.0.2.0/24", id, "ams")

	got, created, err := st.GetOrCreate(ctx, s, time.Hour)
	if err != nil || !created || got.Version != id {
		t.Fatalf("create: %+v %t %v, want created with version %s", got, created, err, id)
	}
	if n := logLen(); n != 1 {
		t.Fatalf("log after create: %d entries, want 1", n)
	}
	got.LastAccessed = got.LastAccessed.Add(time.Minute)
	if err := st.Put(ctx, []session.Session{got}, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	touched, err := st.Get(ctx, s.Key())
	if err != nil || touched.Version != id || !touched.LastAccessed.Equal(got.LastAccessed) {
		t.Fatalf("after a touch: %+v %v, want version %s kept and the new last access", touched, err, id)
	}
	if ttl := raw.PTTL(ctx, prefix+s.Key().String()).Val(); ttl <= time.Hour {
		t.Errorf("the touch did not slide the TTL: %s", ttl)
	}
	touched.Datacenter = "fra"
	if err := st.Put(ctx, []session.Session{touched}, time.Hour); err != nil {
		t.Fatal(err)
	}
	moved, _ := st.Get(ctx, s.Key())
	if moved.Datacenter != "fra" || moved.Version <= id {
		t.Fatalf("after a move: %+v, want fra with a newer version than %s", moved, id)
	}
	if err := st.Delete(ctx, s.Key()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, s.Key()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if v := raw.Get(ctx, prefix+s.Key().String()).Val(); !strings.Contains(v, `"deleted":true`) {
		t.Fatalf("no tombstone after Delete: %q", v)
	}
	id2, _ := ids.Next()
	again := testSession("192.0.2.0/24", id2, "ams")
	if _, created, err := st.GetOrCreate(ctx, again, time.Hour); err != nil || !created {
		t.Fatalf("create over a tombstone: %t %v, want created", created, err)
	}
	if n := logLen(); n != 5 {
		t.Errorf("log: %d entries, want 5 (create, touch, move, delete, create)", n)
	}

	// A value from before replication is replaced, and one of another
	// type too.
	legacy := testSession("198.51.100.0/24", 1, "ams")
	if err := newStore(t, srv.Addr()).Put(ctx, []session.Session{legacy}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, prefix+"www.example.com.|203.0.113.0/24", "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	other := testSession("203.0.113.0/24", 2, "ams")
	if err := st.Put(ctx, []session.Session{legacy, other}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, k := range []session.Key{legacy.Key(), other.Key()} {
		if got, err := st.Get(ctx, k); err != nil || got.Version == 0 {
			t.Errorf("%s: %+v %v, want a versioned session", k.String(), got, err)
		}
	}
}

// TestStandbyRefusesWrites: with the role hash saying standby, nothing is
// written or logged; the reader gets its own pick back, unstored.
func TestStandbyRefusesWrites(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	st, ids := replicatedStore(t, srv.Addr(), true)
	ctx := context.Background()
	if err := st.InitRole(ctx, redisstore.RoleStandby, ""); err != nil {
		t.Fatal(err)
	}
	id, _ := ids.Next()
	s := testSession("192.0.2.0/24", id, "ams")
	got, created, err := st.GetOrCreate(ctx, s, time.Hour)
	if err != nil || created || got.Datacenter != "ams" {
		t.Fatalf("GetOrCreate on a standby: %+v %t %v, want the pick back, not created", got, created, err)
	}
	if err := st.Put(ctx, []session.Session{s}, time.Hour); err != nil {
		t.Fatalf("Put on a standby: %v, want no error (the write queue must not trip its breaker)", err)
	}
	if err := st.Delete(ctx, s.Key()); !errors.Is(err, redisstore.ErrStandby) {
		t.Fatalf("Delete on a standby: %v, want ErrStandby", err)
	}
	if _, err := st.Get(ctx, s.Key()); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Get: %v, want nothing stored", err)
	}
	if n := rawClient(t, srv.Addr()).Exists(ctx, redisstore.DefaultNamespace+"log").Val(); n != 0 {
		t.Errorf("a standby logged %d streams", n)
	}
}

func TestReplicationOptionsRejected(t *testing.T) {
	ids, _ := idgen.New(idgen.Config{})
	for _, o := range []redisstore.Options{
		{Addrs: []string{"127.0.0.1:6379"}, Replication: &redisstore.Replication{IDs: ids}},
		{Addrs: []string{"127.0.0.1:6379"}, Replication: &redisstore.Replication{Datacenter: "ams"}},
		{Addrs: []string{"127.0.0.1:6379", "127.0.0.1:6380"}, Replication: &redisstore.Replication{Datacenter: "ams", IDs: ids}},
		{Addrs: []string{"127.0.0.1:6379"}, Replication: &redisstore.Replication{Datacenter: "ams", IDs: ids, Namespace: prefix + "repl:"}},
	} {
		if _, err := redisstore.New(o); err == nil {
			t.Errorf("New(%v) with replication %+v: no error", o.Addrs, *o.Replication)
		}
	}
}
