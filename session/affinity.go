package session

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/gslbd/gslbd/idgen"
)

// Options configure an Affinity.
type Options struct {
	Store Store
	// TTL is how long a session lives after its last use; it slides.
	TTL time.Duration
	// MaxLifetime bounds a session however often it is used, so a
	// resolver that asks every 30 s is still placed afresh eventually.
	MaxLifetime time.Duration
	// TouchInterval throttles the writes that slide the TTL: at most one
	// per session per interval.
	TouchInterval time.Duration
	// LookupBudget is how long a DNS query may wait for the store.
	LookupBudget time.Duration
	// LookupTimeout bounds a look-up that outlives the budget and goes on
	// in the background to fill the cache.
	LookupTimeout time.Duration
	CacheSize     int
	// MaxLookups bounds store look-ups in flight; past it a miss is
	// answered without affinity at once.
	MaxLookups int
	// BreakerFailures consecutive failures open the breaker for
	// BreakerCooldown; then one probe decides whether it closes.
	BreakerFailures int
	BreakerCooldown time.Duration
	// Ping probes the store while the breaker is open; nil: a Get.
	Ping       func(context.Context) error
	IDs        *idgen.Generator
	Registerer prometheus.Registerer
	Log        *slog.Logger
	Now        func() time.Time
}

// Affinity keeps clients on the datacenter they were given. The DNS path
// calls Sticky; it never waits on the store longer than LookupBudget and
// never when the breaker is open.
type Affinity struct {
	o       Options
	cache   *cache
	slots   chan struct{}
	writes  chan Session
	metrics *metrics
	breaker breaker
	corrupt atomic.Bool // logged once
	local   bool        // the store is in this process (MemoryStore)
}

type metrics struct {
	lookups    *prometheus.CounterVec
	hit, miss  prometheus.Counter
	created    prometheus.Counter
	errored    prometheus.Counter
	skipped    prometheus.Counter
	queue      prometheus.GaugeFunc
	dropped    prometheus.Counter
	breakerSt  prometheus.Gauge
	writeBatch prometheus.Histogram
}

// New returns an Affinity; Run must be running for writes to reach the
// store.
func New(o Options) *Affinity {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LookupTimeout < o.LookupBudget {
		o.LookupTimeout = 50 * o.LookupBudget
	}
	a := &Affinity{
		o:      o,
		cache:  newCache(o.CacheSize),
		slots:  make(chan struct{}, max(o.MaxLookups, 1)),
		writes: make(chan Session, 10000),
	}
	a.breaker.failures, a.breaker.cooldown = max(o.BreakerFailures, 1), o.BreakerCooldown
	_, a.local = o.Store.(*MemoryStore)
	f := promauto.With(o.Registerer)
	m := &metrics{
		lookups: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "session", Name: "lookups_total",
			Help: "Session look-ups by the DNS path, by result: hit (local cache), miss (store, found), created (store, new), error (store failed or over budget), skipped (breaker open or look-up pool full).",
		}, []string{"result"}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "session", Name: "writes_dropped_total",
			Help: "Session writes dropped: the queue was full or the store failed.",
		}),
		breakerSt: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "session", Name: "breaker_open",
			Help: "1 while the session store's circuit breaker is open and answers are computed without sessions.",
		}),
		writeBatch: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: "gslb", Subsystem: "session", Name: "write_batch_size",
			Help: "Sessions per store write (one round trip each).", Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
	}
	m.queue = f.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "session", Name: "write_queue_length",
		Help: "Session writes waiting to be sent to the store.",
	}, func() float64 { return float64(len(a.writes)) })
	m.hit, m.miss, m.created = m.lookups.WithLabelValues("hit"), m.lookups.WithLabelValues("miss"), m.lookups.WithLabelValues("created")
	m.errored, m.skipped = m.lookups.WithLabelValues("error"), m.lookups.WithLabelValues("skipped")
	a.metrics = m
	a.breaker.gauge, a.breaker.log = m.breakerSt, a.o.Log
	return a
}

// Sticky returns the datacenter the client prefix is pinned to for the
// service, creating the pin with proposal when there is none. ok is false
// when affinity cannot be had within the budget (the store is slow or
// down, the breaker open, the look-up pool full): the caller answers by
// its policy, and the DNS answer is never late or failed for it.
func (a *Affinity) Sticky(service string, client netip.Prefix, proposal string) (dc, displacedFrom string, ok bool) {
	key := Key{Service: service, Client: client}
	now := a.o.Now()
	if dc, from, hit := a.cachedSticky(key, now); hit {
		return dc, from, true
	}
	if !a.breaker.allow(now) {
		a.metrics.skipped.Inc()
		return "", "", false
	}
	select {
	case a.slots <- struct{}{}:
	default:
		a.metrics.skipped.Inc()
		return "", "", false
	}
	fresh := a.newSession(key, proposal, now)
	if a.local {
		// An in-process store cannot stall: ask it directly, without the
		// goroutine, timer and channel a network store needs.
		<-a.slots
		got, created, err := a.o.Store.GetOrCreate(context.Background(), fresh, a.o.TTL)
		if err != nil {
			a.metrics.errored.Inc()
			return "", "", false
		}
		if !a.fresh(&got, now) {
			got, created = fresh, true
			a.enqueue(fresh)
		}
		a.cache.put(key, cached{s: got, written: now})
		if created {
			a.metrics.created.Inc()
		} else {
			a.metrics.miss.Inc()
		}
		return got.Datacenter, got.DisplacedFrom, true
	}
	// The look-up runs in its own goroutine: the query waits for it only
	// up to the budget, and a slower answer still lands in the cache for
	// the client's next query.
	done := make(chan lookupResult, 1)
	go func() {
		defer func() { <-a.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), a.o.LookupTimeout)
		defer cancel()
		got, created, err := a.o.Store.GetOrCreate(ctx, fresh, a.o.TTL)
		if errors.Is(err, ErrCorrupt) {
			if !a.corrupt.Swap(true) {
				a.o.Log.Warn("a stored session did not decode; overwriting it", "key", key.String(), "err", err)
			}
			got, created, err = fresh, true, nil
			a.enqueue(fresh)
		}
		if err != nil {
			a.breaker.failure(a.o.Now())
		} else {
			a.breaker.success()
			if !a.fresh(&got, a.o.Now()) {
				// Past its lifetime: place afresh and overwrite.
				got, created = fresh, true
				a.enqueue(fresh)
			}
			a.cache.put(key, cached{s: got, written: a.o.Now()})
		}
		done <- lookupResult{got, created, err}
	}()
	timer := time.NewTimer(a.o.LookupBudget)
	defer timer.Stop()
	select {
	case r := <-done:
		switch {
		case r.err != nil:
			a.metrics.errored.Inc()
			return "", "", false
		case r.created:
			a.metrics.created.Inc()
		default:
			a.metrics.miss.Inc()
		}
		return r.s.Datacenter, r.s.DisplacedFrom, true
	case <-timer.C:
		a.metrics.errored.Inc()
		return "", "", false
	}
}

type lookupResult struct {
	s       Session
	created bool
	err     error
}

// StickyCached is Sticky answered from this instance's cache alone: it
// never waits, and hit is false when the session is not cached here (or
// has lapsed), when Sticky would ask the store. The UDP fast path uses
// it, and hands a miss to the full path, which may wait.
func (a *Affinity) StickyCached(service string, client netip.Prefix) (dc, displacedFrom string, hit bool) {
	return a.cachedSticky(Key{Service: service, Client: client}, a.o.Now())
}

// cachedSticky is Sticky's cache hit: the pin as cached, its
// LastAccessed refreshed in the store at most every TouchInterval.
func (a *Affinity) cachedSticky(key Key, now time.Time) (dc, displacedFrom string, hit bool) {
	e, found := a.cache.get(key)
	if !found || !a.fresh(&e.s, now) {
		return "", "", false
	}
	a.metrics.hit.Inc()
	if now.Sub(e.written) >= a.o.TouchInterval {
		e.s.LastAccessed, e.written = now, now
		a.cache.put(key, e)
		a.enqueue(e.s)
	}
	return e.s.Datacenter, e.s.DisplacedFrom, true
}

func (a *Affinity) fresh(s *Session, now time.Time) bool {
	return now.Sub(s.LastAccessed) < a.o.TTL && (a.o.MaxLifetime <= 0 || now.Sub(s.Created) < a.o.MaxLifetime)
}

func (a *Affinity) newSession(key Key, dc string, now time.Time) Session {
	s := Session{Service: key.Service, Client: key.Client, Datacenter: dc, Created: now, LastAccessed: now}
	if a.o.IDs != nil {
		s.ID, _ = a.o.IDs.Next()
	}
	return s
}

// Repin moves a client to dc, remembering displacedFrom (the datacenter
// it left because it failed) or, with displacedFrom empty, recording that
// it went home. The write is queued; the local cache changes at once.
func (a *Affinity) Repin(service string, client netip.Prefix, dc, displacedFrom string) {
	key := Key{Service: service, Client: client}
	now := a.o.Now()
	e, found := a.cache.get(key)
	if !found {
		e.s = a.newSession(key, dc, now)
	}
	e.s.Datacenter, e.s.DisplacedFrom, e.s.LastAccessed, e.written = dc, displacedFrom, now, now
	a.cache.put(key, e)
	a.enqueue(e.s)
}

func (a *Affinity) enqueue(s Session) {
	select {
	case a.writes <- s:
	default:
		a.metrics.dropped.Inc()
	}
}

// Run sends queued writes in batches, one round trip each, and probes the
// store while the breaker is open. It returns when ctx is done.
func (a *Affinity) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.probeLoop(ctx)
	}()
	batch := make([]Session, 0, 256)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case s := <-a.writes:
			batch = append(batch, s)
			if len(batch) < cap(batch) {
				continue
			}
		case <-tick.C:
			if len(batch) == 0 {
				continue
			}
		}
		if !a.breaker.allow(a.o.Now()) {
			a.metrics.dropped.Add(float64(len(batch)))
			batch = batch[:0]
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, a.o.LookupTimeout)
		err := a.o.Store.Put(wctx, batch, a.o.TTL)
		cancel()
		a.metrics.writeBatch.Observe(float64(len(batch)))
		if err != nil {
			a.breaker.failure(a.o.Now())
			a.metrics.dropped.Add(float64(len(batch)))
		} else {
			a.breaker.success()
		}
		batch = batch[:0]
	}
}

func (a *Affinity) probeLoop(ctx context.Context) {
	t := time.NewTicker(a.breaker.cooldown)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		open := a.breaker.isOpen()
		a.metrics.breakerSt.Set(map[bool]float64{true: 1, false: 0}[open])
		if !open {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, a.o.LookupTimeout)
		var err error
		if a.o.Ping != nil {
			err = a.o.Ping(pctx)
		} else {
			_, err = a.o.Store.Get(pctx, Key{Service: "ping."})
			if errors.Is(err, ErrNotFound) {
				err = nil
			}
		}
		cancel()
		if err == nil {
			a.breaker.success() // logs the recovery
			a.metrics.breakerSt.Set(0)
		}
	}
}

// Get returns the stored session, for the admin API.
func (a *Affinity) Get(ctx context.Context, service string, client netip.Prefix) (Session, error) {
	return a.o.Store.Get(ctx, Key{Service: service, Client: client})
}

// Delete removes a session from the store and the local cache.
func (a *Affinity) Delete(ctx context.Context, service string, client netip.Prefix) error {
	key := Key{Service: service, Client: client}
	a.cache.del(key)
	return a.o.Store.Delete(ctx, key)
}

// Forget drops the locally cached session of the client unless the cache
// holds version already (0: drop whatever it holds). Replication calls it
// when another datacenter's change reaches the store, so that the next
// query reads the change instead of answering from the old copy.
func (a *Affinity) Forget(service string, client netip.Prefix, version idgen.ID) {
	key := Key{Service: service, Client: client}
	if e, ok := a.cache.get(key); ok && (version == 0 || e.s.Version != version) {
		a.cache.del(key)
	}
}

// breaker opens after consecutive failures and lets one trial through
// after the cooldown; while open, the DNS path skips the store entirely.
type breaker struct {
	gauge       prometheus.Gauge // follows open, set on every transition
	log         *slog.Logger     // opening and closing are logged: operators grep for them
	mu          sync.Mutex
	failures    int
	cooldown    time.Duration
	consecutive int
	openUntil   time.Time
	open        bool
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if now.After(b.openUntil) {
		// Half-open: one trial; a failure re-opens for another cooldown.
		b.openUntil = now.Add(b.cooldown)
		return true
	}
	return false
}

func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.consecutive++
	if b.consecutive >= b.failures {
		if !b.open && b.log != nil {
			b.log.Warn("session store failing; answering without sessions until it recovers",
				"consecutive_failures", b.consecutive, "retry_every", b.cooldown.String())
		}
		b.open, b.openUntil = true, now.Add(b.cooldown)
		if b.gauge != nil {
			b.gauge.Set(1)
		}
	}
}

func (b *breaker) success() {
	b.mu.Lock()
	if b.open && b.gauge != nil {
		b.gauge.Set(0)
	}
	if b.open && b.log != nil {
		b.log.Info("session store reachable again; affinity resumes")
	}
	b.consecutive, b.open = 0, false
	b.mu.Unlock()
}

func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// SessionJSON is Get for the admin API.
func (a *Affinity) SessionJSON(ctx context.Context, service string, client netip.Prefix) (any, bool, error) {
	s, err := a.Get(ctx, service, client)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return s, true, nil
}

// DeleteSession is Delete for the admin API.
func (a *Affinity) DeleteSession(ctx context.Context, service string, client netip.Prefix) error {
	return a.Delete(ctx, service, client)
}
