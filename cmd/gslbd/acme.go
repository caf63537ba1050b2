package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/acme"
	"github.com/gslbd/gslbd/gslb/config"
)

// acmeResync is how often the records are read again from their store:
// the backstop for a missed Redis notification, and what drops expired
// records from the answers.
const acmeResync = 5 * time.Second

// acmeState is the daemon's ACME side: the update handler, where its
// records live, and what is served.
type acmeState struct {
	handler *acme.Handler
	store   acme.Store
	redis   *redisACMEStore // nil: the file store
	// mu orders publications, so an older read of the store never
	// replaces a newer one.
	mu sync.Mutex
	// plain is the configuration's snapshot before the records are
	// added, and rrs what is served; both guarded by daemon.swapMu.
	plain *gslb.Snapshot
	rrs   []dns.RR
	// served is the last published set, for telling a re-read that
	// changed nothing; guarded by mu.
	served []string
}

// newACME sets up the store and loads the records, so the first snapshot
// already serves them. An unreachable Redis or damaged file is logged and
// retried by watchACME; the DNS side starts regardless.
func (d *daemon) newACME(cfg *config.Config) error {
	if !cfg.ACME.Enabled {
		return nil
	}
	a := &acmeState{}
	if cfg.Sessions.Store == "redis" {
		st, err := newRedisACMEStore(cfg.Sessions.Redis)
		if err != nil {
			return err
		}
		a.store, a.redis = st, st
	} else {
		a.store = acme.NewFileStore(cfg.Instance.StateDir)
	}
	a.handler = acme.New(acme.Options{
		Store: a.store, Registerer: d.reg, Log: d.log.With("component", "acme"),
		OnChange: func(recs []acme.Record) {
			a.mu.Lock()
			defer a.mu.Unlock()
			d.publishACME(recs)
		},
	})
	d.acme = a
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if a.redis != nil {
		// Subscribed before the first read and before the instance says
		// it is ready, so no change announced after the read is missed.
		if err := a.redis.subscribe(ctx); err != nil {
			d.log.Warn("ACME change notifications not subscribed yet; retrying in the background", "component", "acme", "err", err)
		}
	}
	recs, err := a.store.Load(ctx)
	if err != nil {
		a.handler.StoreError()
		d.log.Error("ACME records could not be read; serving none until they can", "component", "acme", "err", err)
		return nil
	}
	live := acme.Live(recs, time.Now())
	a.rrs, a.served = acme.RRs(live), describe(live)
	a.handler.Served(live)
	return nil
}

// withACME returns snap with the ACME records added, remembering snap for
// later changes of the records. Callers hold swapMu (or run before any
// other goroutine does).
func (d *daemon) withACME(snap *gslb.Snapshot) *gslb.Snapshot {
	if d.acme == nil {
		return snap
	}
	d.acme.plain = snap
	return snap.WithACME(d.acme.rrs)
}

// configureACME gives the DNS server the keys and the handler its rules;
// it runs at start and on every reload.
func (d *daemon) configureACME(cfg *config.Config) {
	if d.acme == nil {
		return
	}
	keys := map[string]gslb.TSIGKey{}
	keyZones := map[string][]string{}
	for _, k := range cfg.ACME.TSIGKeys {
		keys[k.Name] = gslb.TSIGKey{Algorithm: dns.Fqdn(k.Algorithm), Secret: k.Key}
		keyZones[k.Name] = k.Zones
	}
	var zones []string
	for _, z := range cfg.Zones {
		zones = append(zones, z.Origin)
	}
	d.acme.handler.Configure(acme.Settings{
		Zones: zones, KeyZones: keyZones, MaxTTL: cfg.ACME.MaxTTL, Lifetime: cfg.ACME.RecordLifetime,
		MaxPerName: cfg.ACME.MaxRecordsPerName, MaxTotal: cfg.ACME.MaxRecords,
		Static: func(name string) bool { return d.dns.Snapshot().StaticName(name) },
	})
	d.dns.SetUpdates(keys, d.acme.handler)
}

// publishACME serves recs from now on; callers hold acme.mu.
func (d *daemon) publishACME(recs []acme.Record) {
	a := d.acme
	a.served = describe(recs)
	d.swapMu.Lock()
	a.rrs = acme.RRs(recs)
	d.base = a.plain.WithACME(a.rrs)
	d.swapMu.Unlock()
	d.applyHealth()
	a.handler.Served(recs)
}

// watchACME re-reads the records when another instance announces a
// change through Redis, and every acmeResync in any case.
func (d *daemon) watchACME(ctx context.Context) {
	a := d.acme
	if a == nil {
		return
	}
	var notes <-chan struct{}
	if a.redis != nil {
		notes = a.redis.watch(ctx)
	}
	t := time.NewTicker(acmeResync)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-notes:
		case <-t.C:
		}
		err := d.resyncACME(ctx)
		switch {
		case err != nil && !failing:
			d.log.Warn("ACME records could not be read; the last ones read keep being served", "component", "acme", "err", err)
		case err == nil && failing:
			d.log.Info("ACME records can be read again", "component", "acme")
		}
		failing = err != nil
	}
}

func (d *daemon) resyncACME(ctx context.Context) error {
	a := d.acme
	a.mu.Lock()
	defer a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	recs, err := a.store.Load(ctx)
	if err != nil {
		a.handler.StoreError()
		return err
	}
	live := acme.Live(recs, time.Now())
	if !slices.Equal(describe(live), a.served) {
		d.publishACME(live)
	}
	return nil
}

func (d *daemon) closeACME() {
	if d.acme != nil && d.acme.redis != nil {
		if err := d.acme.redis.Close(); err != nil {
			d.log.Warn("closing the ACME Redis client", "err", err)
		}
	}
}

// describe is a set of records in comparable form.
func describe(recs []acme.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.RR().String())
	}
	slices.Sort(out)
	return out
}
