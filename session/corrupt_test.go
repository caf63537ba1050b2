package session_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// TestCorruptValueIsOverwritten: a foreign value under a session key is a
// miss for the DNS path, which places the client and overwrites it.
func TestCorruptValueIsOverwritten(t *testing.T) {
	rs := redistest.Start(t)
	st, err := redisstore.New(redisstore.Options{Addrs: []string{rs.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	client := netip.MustParsePrefix("81.2.69.0/24")
	key := session.Key{Service: "www.example.", Client: client}
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer raw.Close()
	if err := raw.Set(context.Background(), redisstore.DefaultKeyPrefix+key.String(), "not json at all", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	a := session.New(session.Options{
		Store: st, TTL: time.Hour, TouchInterval: time.Minute, LookupBudget: time.Second, CacheSize: 10,
		MaxLookups: 2, BreakerFailures: 5, BreakerCooldown: time.Second,
		Registerer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if dc, _, ok := a.Sticky("www.example.", client, "dc-a"); !ok || dc != "dc-a" {
		t.Fatalf("corrupt value: got %q %t, want a fresh placement on dc-a", dc, ok)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := st.Get(context.Background(), key)
		if err == nil && s.Datacenter == "dc-a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the corrupt value was not overwritten: %v %v", s, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
