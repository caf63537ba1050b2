package main

import (
	"errors"
	"testing"
	"time"

	"github.com/gslbd/gslbd/gslb/acme"
	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// TestRedisACMEStore: updates are transactions (a failed apply stores
// nothing; a write by another instance between read and write is
// retried, not lost), the hash expires with its last record, and every
// write is announced to subscribers.
func TestRedisACMEStore(t *testing.T) {
	rs := redistest.Start(t)
	rc := config.SessionRedis{Addrs: []string{rs.Addr()}, KeyPrefix: "t:"}
	w, err := newRedisACMEStore(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	other, _ := newRedisACMEStore(rc)
	defer other.Close()
	if err := other.subscribe(t.Context()); err != nil {
		t.Fatal(err)
	}
	notes := other.watch(t.Context())

	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	rec := func(s string) acme.Record {
		return acme.Record{Name: "_acme-challenge.x.test.", Txt: []string{s}, TTL: 60, Expires: exp}
	}
	add := func(st *redisACMEStore, s string) error {
		_, err := st.Update(t.Context(), func(cur []acme.Record) ([]acme.Record, error) { return append(cur, rec(s)), nil })
		return err
	}
	if err := add(w, "a"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-notes:
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber got no note of the write")
	}

	refused := errors.New("refused")
	if _, err := w.Update(t.Context(), func([]acme.Record) ([]acme.Record, error) { return nil, refused }); !errors.Is(err, refused) {
		t.Errorf("failed apply: got %v, want its error", err)
	}
	// Another instance writes while this one is between read and write:
	// the transaction is retried on the new contents.
	calls := 0
	_, err = w.Update(t.Context(), func(cur []acme.Record) ([]acme.Record, error) {
		calls++
		if calls == 1 {
			if err := add(other, "b"); err != nil {
				t.Fatal(err)
			}
		}
		return append(cur, rec("c")), nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("conflicting update: err %v after %d calls, want success on the second", err, calls)
	}
	recs, err := other.Load(t.Context())
	if err != nil || len(recs) != 3 {
		t.Fatalf("Load: got %v, %v; want a, b and c", recs, err)
	}
	ttl, err := w.c.PTTL(t.Context(), w.key).Result()
	if left := time.Until(exp); err != nil || ttl > left+time.Second || ttl < left-time.Minute {
		t.Errorf("hash expiry: PTTL %v, %v; want about %v, the last record's", ttl, err, left)
	}
	// Deleting every record removes the hash.
	if _, err := w.Update(t.Context(), func([]acme.Record) ([]acme.Record, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := w.c.Exists(t.Context(), w.key).Result(); err != nil || n != 0 {
		t.Errorf("after deleting all: EXISTS %d, %v; want 0", n, err)
	}
}
