package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session/redisstore"
)

// Modes.
const (
	ActivePassive = "active-passive"
	ActiveActive  = "active-active"
)

// Defaults of Options' zero fields.
const (
	DefaultBatch          = 500
	DefaultBlock          = time.Second
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
	DefaultPromoteTimeout = 5 * time.Minute
	// opTimeout bounds one read or apply; a peer that stalls longer is
	// treated as unreachable and retried.
	opTimeout = 10 * time.Second
)

// Peer is another datacenter's Redis.
type Peer struct {
	Datacenter string
	// Addr describes it in status and logs (never credentials).
	Addr  string
	Store *redisstore.Store
}

// Options configure a Manager.
type Options struct {
	Mode       string
	Datacenter string
	// Role is the active-passive role this datacenter starts in when its
	// Redis holds none yet; after a promote the stored role rules.
	Role string
	// Local is this datacenter's Redis, with Replication options set.
	Local *redisstore.Store
	Peers []Peer
	IDs   *idgen.Generator

	Batch          int64         // log entries per read and apply
	Block          time.Duration // how long a caught-up read waits for more
	MinBackoff     time.Duration // after a failure; doubles up to MaxBackoff
	MaxBackoff     time.Duration
	PromoteTimeout time.Duration // when a promote request gives none

	Registerer prometheus.Registerer
	Log        *slog.Logger

	// Changed, if set, is told of the sessions of every batch applied
	// here, so that local caches can drop their copies.
	Changed func(changes []redisstore.Change)

	// applied, if set, is told of every batch applied (benchmarks measure
	// lag with it).
	applied func(peer string, changes []redisstore.Change, at time.Time)
	// beforeApply, if set, runs before each apply with the batch's
	// context's cancel (tests kill a replicator mid-batch with it).
	beforeApply func(peer string, cancel context.CancelFunc)
}

// Manager runs one replicator per peer and handles promote.
type Manager struct {
	o       Options
	m       *metrics
	reps    []*replicator
	promote sync.Mutex // one promote at a time
}

type metrics struct {
	lag       *prometheus.GaugeVec
	applied   *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	stale     *prometheus.CounterVec
	errors    *prometheus.CounterVec
	resyncs   *prometheus.CounterVec
	refused   prometheus.Counter
	stalew    prometheus.Counter
	primary   prometheus.Gauge
	promotes  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "lag_seconds",
			Help: "How far this datacenter's copy of a peer's sessions is behind: the age of the oldest change not yet applied, 0 when caught up, and growing while the peer cannot be read.",
		}, []string{"peer"}),
		applied: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "applied_total",
			Help: "Changes from a peer's log applied here (stored, or a TTL refresh of the stored version).",
		}, []string{"peer"}),
		conflicts: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "conflicts_total",
			Help: "Changes from a peer concurrent with the stored version (neither version vector covers the other), resolved by last writer wins.",
		}, []string{"peer"}),
		stale: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "stale_total",
			Help: "Changes from a peer older than the stored version, and so not applied.",
		}, []string{"peer"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "errors_total",
			Help: "Replication failures by kind: peer (reading the peer), local (this datacenter's Redis), malformed (a log entry skipped).",
		}, []string{"peer", "kind"}),
		resyncs: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "resyncs_total",
			Help: "Full copies of a peer's session keyspace: at the first start, and when its log was trimmed past the checkpoint.",
		}, []string{"peer"}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "writes_refused_total",
			Help: "Session writes refused because this datacenter is an active-passive standby.",
		}),
		stalew: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "writes_superseded_total",
			Help: "Session writes here not stored because another datacenter had changed the session since the writer read it, or a newer version was stored.",
		}),
		primary: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "primary",
			Help: "1 while this datacenter takes session writes (the active-passive primary, or any datacenter in active-active).",
		}),
		promotes: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "replication", Name: "promotions_total",
			Help: "Promote requests by result: promoted, already_primary, failed.",
		}, []string{"result"}),
	}
}

// New returns a Manager; Run starts replicating.
func New(o Options) (*Manager, error) {
	if o.Mode != ActivePassive && o.Mode != ActiveActive {
		return nil, fmt.Errorf("replication: mode %q is not %s or %s", o.Mode, ActivePassive, ActiveActive)
	}
	if o.Local == nil || o.IDs == nil || o.Datacenter == "" {
		return nil, errors.New("replication: Local, IDs and Datacenter are required")
	}
	o.Batch = cmp(o.Batch, DefaultBatch)
	o.Block = cmp(o.Block, DefaultBlock)
	o.MinBackoff = cmp(o.MinBackoff, DefaultMinBackoff)
	o.MaxBackoff = cmp(o.MaxBackoff, DefaultMaxBackoff)
	o.PromoteTimeout = cmp(o.PromoteTimeout, DefaultPromoteTimeout)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	mg := &Manager{o: o, m: newMetrics(o.Registerer)}
	seen := map[string]bool{o.Datacenter: true}
	for _, p := range o.Peers {
		if seen[p.Datacenter] {
			return nil, fmt.Errorf("replication: peer %q is listed twice or is this datacenter", p.Datacenter)
		}
		seen[p.Datacenter] = true
		mg.reps = append(mg.reps, newReplicator(mg, p))
	}
	if o.Mode == ActiveActive {
		mg.m.primary.Set(1)
	}
	return mg, nil
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Refused counts writes a standby refused; the local store calls it.
func (mg *Manager) Refused(n int) { mg.m.refused.Add(float64(n)) }

// Superseded counts local writes that lost to a newer version; the local
// store calls it.
func (mg *Manager) Superseded(n int) { mg.m.stalew.Add(float64(n)) }

// Run replicates from every peer until ctx is done.
func (mg *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if mg.o.Mode == ActivePassive {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mg.watchRole(ctx)
		}()
	}
	for _, r := range mg.reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx)
		}()
	}
	wg.Wait()
}

// watchRole stores the configured role once Redis answers, unless one is
// stored, and keeps the primary gauge in step with the stored role (a
// promote elsewhere may fence this datacenter).
func (mg *Manager) watchRole(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	initialised := false
	last := ""
	for {
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		if !initialised {
			primary := ""
			if mg.o.Role == redisstore.RolePrimary {
				primary = mg.o.Datacenter
			}
			initialised = mg.o.Local.InitRole(rctx, mg.o.Role, primary) == nil
		}
		st, err := mg.o.Local.Role(rctx)
		cancel()
		if err == nil && st.Role != last {
			if last != "" {
				mg.o.Log.Warn("replication role changed", "role", st.Role, "term", st.Term, "primary", st.Primary)
			}
			last = st.Role
			mg.m.primary.Set(map[bool]float64{true: 1}[st.Role == redisstore.RolePrimary])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Status is the body of GET /api/v1/replication.
type Status struct {
	Mode       string `json:"mode"`
	Datacenter string `json:"datacenter"`
	// Role is primary or standby in active-passive, active in
	// active-active; unknown when the local Redis does not answer.
	Role    string       `json:"role"`
	Term    string       `json:"term,omitempty"`
	Primary string       `json:"primary,omitempty"`
	Error   string       `json:"error,omitempty"`
	Peers   []PeerStatus `json:"peers"`
}

// PeerStatus is one replicator's state.
type PeerStatus struct {
	Datacenter string `json:"datacenter"`
	Addr       string `json:"addr"`
	// State is starting, streaming, resyncing or unreachable.
	State string `json:"state"`
	// Checkpoint is the ID of the last entry of the peer's log applied
	// here.
	Checkpoint string  `json:"checkpoint"`
	LagSeconds float64 `json:"lag_seconds"`
	// Applied counts changes this process applied since it started.
	Applied    int64      `json:"applied"`
	Resyncs    int64      `json:"resyncs"`
	LastError  string     `json:"last_error,omitempty"`
	LastResync *time.Time `json:"last_resync,omitempty"`
}

// Status reports the mode, role and every peer's replication.
func (mg *Manager) Status(ctx context.Context) Status {
	st := Status{Mode: mg.o.Mode, Datacenter: mg.o.Datacenter, Role: "active", Peers: []PeerStatus{}}
	if mg.o.Mode == ActivePassive {
		rs, err := mg.o.Local.Role(ctx)
		switch {
		case err != nil:
			st.Role, st.Error = "unknown", err.Error()
		case rs.Role == "":
			st.Role = mg.o.Role
		default:
			st.Role, st.Term, st.Primary = rs.Role, rs.Term, rs.Primary
		}
	}
	for _, r := range mg.reps {
		st.Peers = append(st.Peers, r.status())
	}
	return st
}
