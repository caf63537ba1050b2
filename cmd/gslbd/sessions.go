package main

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
)

// sessionsAdmin adapts the Affinity to the admin API.
type sessionsAdmin struct{ d *daemon }

func (a sessionsAdmin) SessionJSON(ctx context.Context, service string, client netip.Prefix) (any, bool, error) {
	return a.d.affinity.SessionJSON(ctx, service, client)
}

func (a sessionsAdmin) DeleteSession(ctx context.Context, service string, client netip.Prefix) error {
	return a.d.affinity.DeleteSession(ctx, service, client)
}

// KeyPrefix is the prefix sessions are keyed on: the same as the DNS path's.
func (a sessionsAdmin) KeyPrefix(addr netip.Addr) netip.Prefix {
	return a.d.dns.Snapshot().SessionPrefix(addr)
}

func anySticky(cfg *config.Config) bool {
	for _, z := range cfg.Zones {
		for _, s := range z.Services {
			if s.Sticky {
				return true
			}
		}
	}
	return false
}

// newAffinity builds the session store the configuration asks for, or
// nothing when no service is sticky. An unreachable Redis is no error:
// gslbd starts, answers without affinity, and uses Redis when it appears.
func (d *daemon) newAffinity(cfg *config.Config) (*session.Affinity, func() error, error) {
	if !anySticky(cfg) {
		return nil, func() error { return nil }, nil
	}
	sc := cfg.Sessions
	opts := session.Options{
		TTL: sc.TTL, MaxLifetime: sc.MaxLifetime, TouchInterval: sc.TouchInterval, CacheSize: sc.CacheSize,
		LookupBudget: sc.Redis.LookupBudget, MaxLookups: 64, BreakerFailures: 5, BreakerCooldown: time.Second,
		IDs: d.ids, Registerer: d.reg, Log: d.log.With("component", "sessions"),
	}
	closer := func() error { return nil }
	switch sc.Store {
	case "redis":
		tlsCfg, err := redisTLS(sc.Redis.TLS)
		if err != nil {
			return nil, nil, err
		}
		st, err := redisstore.New(redisstore.Options{
			Addrs: sc.Redis.Addrs, MasterName: sc.Redis.MasterName, Username: sc.Redis.Username,
			Password: sc.Redis.Password, DB: sc.Redis.DB, TLS: tlsCfg, KeyPrefix: sc.Redis.KeyPrefix,
			// At least as many connections as look-ups in flight, or the
			// pool, not Redis, becomes what times out (measured).
			PoolSize:    2 * opts.MaxLookups,
			Replication: d.repl.sessionStore(cfg, d),
		})
		if err != nil {
			return nil, nil, err
		}
		st.AddHook(newRoundTrips(d.reg))
		opts.Store, opts.Ping, closer = st, st.Ping, st.Close
	default:
		opts.Store = session.NewMemoryStore()
	}
	return session.New(opts), closer, nil
}

// roundTrips counts Redis round trips (a pipeline is one), so operators
// can see what sessions cost per query: the DNS path should make at most
// one, and only for clients the local cache does not hold.
type roundTrips struct {
	single, pipeline prometheus.Counter
	errors           prometheus.Counter
}

func newRoundTrips(reg prometheus.Registerer) *roundTrips {
	f := promauto.With(reg)
	c := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gslb", Subsystem: "session", Name: "redis_roundtrips_total",
		Help: "Round trips to Redis, by kind (command, pipeline).",
	}, []string{"kind"})
	return &roundTrips{
		single: c.WithLabelValues("command"), pipeline: c.WithLabelValues("pipeline"),
		errors: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "session", Name: "redis_errors_total",
			Help: "Redis round trips that failed (timeouts included).",
		}),
	}
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.single.Inc()
		err := next(ctx, cmd)
		if err != nil && !errors.Is(err, redis.Nil) {
			r.errors.Inc()
		}
		return err
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.pipeline.Inc()
		err := next(ctx, cmds)
		if err != nil {
			r.errors.Inc()
		}
		return err
	}
}
