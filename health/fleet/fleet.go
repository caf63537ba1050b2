package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/health"
)

// Quorum rules, as fleet.quorum names them.
const (
	Majority  = "majority"
	AnyUp     = "any-up"
	AllUp     = "all-up"
	LocalOnly = "local"
)

// Where the effective view comes from.
const (
	SourceFleet = "fleet" // a quorum over fresh verdicts read from Redis
	SourceGrace = "grace" // Redis lost: the last fleet view, until the grace period ends
	SourceLocal = "local" // this instance's own probes
	// SourceFile is a warm start's other origin: the view this instance
	// saved last, when Redis cannot be read at start.
	SourceFile = "state file"
)

// Local is what the fleet needs of the health manager.
type Local interface {
	Verdicts() []health.Verdict
	SetEffective(map[health.EndpointRef]health.Effective)
	SetProbing(func(health.EndpointRef) bool)
	Overrides() []health.OverrideInfo
	Override(dc, endpoint, state, reason string) error
}

// Options configure a Fleet.
type Options struct {
	Client   redis.UniversalClient
	Prefix   string // key prefix, e.g. gslb:fleet:
	Instance string // instance.name
	// WorkerKey is the idgen datacenter/worker pair, "3/7"; two live
	// instances must not share it.
	WorkerKey    string
	Quorum       string
	MinVerdicts  int
	Interval     time.Duration // publish and read period
	VerdictTTL   time.Duration // a verdict older than this does not count
	Grace        time.Duration // how long the last fleet view outlives Redis
	MaxClockSkew time.Duration
	StateFile    string // empty: none
	// Predecessor is the pid of the instance of this name this one takes
	// over from (a hand-over restart); its registration is this one's.
	Predecessor int
	// ProbersPerEndpoint, when above zero, shares probing: each endpoint
	// is probed by that many of the live instances, not by all.
	ProbersPerEndpoint int
	Health             Local
	Registerer         prometheus.Registerer
	Log                *slog.Logger
	Now                func() time.Time
}

// Fleet publishes this instance's verdicts, reads everybody's and applies
// the quorum; it also keeps overrides in step across the fleet.
type Fleet struct {
	o     Options
	token string // this process's registration value
	keys  keys
	kick  chan struct{}
	m     *metrics

	roundMu sync.Mutex // one round at a time, and none after Close
	closed  bool

	ovMu      sync.Mutex
	overrides map[string]overrideRec // what this instance knows, persisted
	foreign   map[string]int64       // overrides of targets this configuration lacks, warned of (by since)

	// saveMu makes taking a snapshot and writing it one step, so a save
	// that snapshotted earlier cannot overwrite a later one's file.
	saveMu sync.Mutex

	mu        sync.Mutex
	source    string
	lastOK    time.Time
	lastErr   string
	effective map[health.EndpointRef]health.Effective
	// assigned is the endpoints this instance probes and since when, when
	// probing is shared; nil: every endpoint.
	assigned   atomic.Pointer[map[health.EndpointRef]time.Time]
	disagree   map[health.EndpointRef]bool
	status     []EndpointStatus
	instances  []string
	warm       string
	lowQuorum  bool
	registered []string // registration keys this process holds
	stateSaved time.Time
}

type keys struct {
	members, overrides, changed string
}

func (k keys) verdicts(instance string) string {
	return strings.TrimSuffix(k.members, "members") + "verdicts:" + instance
}

type metrics struct {
	view          *prometheus.GaugeVec
	disagreements *prometheus.CounterVec
	instances     prometheus.Gauge
	errors        prometheus.Counter
	skew          prometheus.Gauge
}

// overrideRec is an override as the fleet stores it. "auto" records are
// kept (tombstones) so a later read cannot bring back what was lifted.
type overrideRec struct {
	State  string `json:"state"` // up, down, auto
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
	Since  int64  `json:"since"` // Unix ms; the later record wins
}

// wireVerdict is one instance's verdict on one endpoint in Redis.
type wireVerdict struct {
	State     string   `json:"state"`
	Published int64    `json:"published"` // Unix ms
	At        int64    `json:"at,omitempty"`
	Since     int64    `json:"since,omitempty"`
	RTTMS     float64  `json:"rtt_ms"`
	Load      *float64 `json:"load,omitempty"`
	LatencyMS *float64 `json:"latency_ms,omitempty"`
	Reason    string   `json:"reason,omitempty"`
}

// New returns a Fleet; Start then Run bring it to life.
func New(o Options) *Fleet {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinVerdicts < 1 {
		o.MinVerdicts = 1
	}
	f := promauto.With(o.Registerer)
	fl := &Fleet{
		o:         o,
		token:     fmt.Sprintf("%s pid %d since %s", o.Instance, os.Getpid(), o.Now().UTC().Format(time.RFC3339Nano)),
		keys:      keys{members: o.Prefix + "members", overrides: o.Prefix + "overrides", changed: o.Prefix + "overrides:changed"},
		kick:      make(chan struct{}, 1),
		overrides: map[string]overrideRec{},
		foreign:   map[string]int64{},
		source:    SourceLocal,
		disagree:  map[health.EndpointRef]bool{},
		m: &metrics{
			view: f.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "gslb", Subsystem: "fleet", Name: "view",
				Help: "1 for where the effective health view comes from now (fleet, grace, local), 0 for the others.",
			}, []string{"source"}),
			disagreements: f.NewCounterVec(prometheus.CounterOpts{
				Namespace: "gslb", Subsystem: "fleet", Name: "disagreements_total",
				Help: "Times this instance's own verdict on an endpoint came to differ from the fleet's.",
			}, []string{"datacenter", "endpoint"}),
			instances: f.NewGauge(prometheus.GaugeOpts{
				Namespace: "gslb", Subsystem: "fleet", Name: "instances",
				Help: "Instances heard from within fleet.verdict_ttl, this one included.",
			}),
			errors: f.NewCounter(prometheus.CounterOpts{
				Namespace: "gslb", Subsystem: "fleet", Name: "redis_errors_total",
				Help: "Publish-and-read rounds that failed on Redis.",
			}),
			skew: f.NewGauge(prometheus.GaugeOpts{
				Namespace: "gslb", Subsystem: "fleet", Name: "clock_skew_seconds",
				Help: "This instance's clock minus Redis TIME, measured at start.",
			}),
		},
	}
	fl.setSource(SourceLocal)
	return fl
}

func (f *Fleet) setSource(s string) {
	f.source = s
	for _, v := range []string{SourceFleet, SourceGrace, SourceLocal} {
		f.m.view.WithLabelValues(v).Set(b2f(v == s))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Source says where the effective view comes from now.
func (f *Fleet) Source() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.source
}

// WarmStart says what the instance served from before its own first probe
// round: "fleet", "state file" or "" (a cold start).
func (f *Fleet) WarmStart() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.warm
}

// Kick asks for a publish-and-read round now (a local verdict changed).
func (f *Fleet) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// ErrDuplicate is returned by Register when another live instance holds
// this one's name or idgen pair.
var ErrDuplicate = errors.New("fleet: duplicate instance")

// Register claims this instance's name and idgen pair in Redis and checks
// the clock against Redis TIME. A key held by another process is waited
// on for up to two verdict TTLs (a crashed predecessor's key expires by
// then), then refused with an error naming the key. An unreachable Redis
// is no error: the instance starts on its own view, and its keys are
// written when Redis answers, without the check.
func (f *Fleet) Register(ctx context.Context) error {
	claims := []struct{ key, what string }{
		{f.o.Prefix + "name:" + f.o.Instance, fmt.Sprintf("instance.name %q", f.o.Instance)},
	}
	if f.o.WorkerKey != "" {
		claims = append(claims, struct{ key, what string }{f.o.Prefix + "worker:" + f.o.WorkerKey,
			fmt.Sprintf("instance.datacenter_id/instance.worker_id %s", f.o.WorkerKey)})
	}
	deadline := f.o.Now().Add(2 * f.o.VerdictTTL)
	for _, c := range claims {
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			ok, err := f.o.Client.SetNX(cctx, c.key, f.token, f.o.VerdictTTL).Result()
			var holder string
			if err == nil && !ok {
				holder, err = f.o.Client.Get(cctx, c.key).Result()
				if errors.Is(err, redis.Nil) {
					err = nil
				}
			}
			cancel()
			if err != nil {
				// Written by the rounds once Redis answers, unchecked:
				// refusing to start for want of Redis would make it the
				// single point of failure the fleet is meant to avoid.
				f.mu.Lock()
				f.registered = nil
				for _, c := range claims {
					f.registered = append(f.registered, c.key)
				}
				f.mu.Unlock()
				f.o.Log.Warn("fleet: Redis unreachable at start; serving this instance's own view until it answers, without the duplicate check", "err", err)
				return nil
			}
			if !ok && f.o.Predecessor > 0 && strings.HasPrefix(holder, fmt.Sprintf("%s pid %d since ", f.o.Instance, f.o.Predecessor)) {
				// The same instance, restarting through a hand-over.
				ok = f.o.Client.Set(ctx, c.key, f.token, f.o.VerdictTTL).Err() == nil
			}
			if ok {
				f.mu.Lock()
				f.registered = append(f.registered, c.key)
				f.mu.Unlock()
				break
			}
			if f.o.Now().After(deadline) {
				return fmt.Errorf("%w: %s is already in use by a running instance (Redis key %s holds %q); give each instance its own",
					ErrDuplicate, c.what, c.key, holder)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(f.o.Interval):
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	before := f.o.Now()
	rt, err := f.o.Client.Time(cctx).Result()
	if err == nil {
		after := f.o.Now()
		skew := before.Add(after.Sub(before) / 2).Sub(rt)
		f.m.skew.Set(skew.Seconds())
		if skew.Abs() > f.o.MaxClockSkew {
			f.o.Log.Warn(fmt.Sprintf("fleet: this clock is %s off Redis TIME, more than fleet.max_clock_skew %s; fresh verdicts may count as stale or stale as fresh",
				skew.Round(time.Millisecond), f.o.MaxClockSkew))
		}
	}
	return nil
}

// Start loads the state file (overrides and the last view), then reads
// the fleet once. It returns what the instance can serve from before its
// own probes have run: "fleet", "state file", or "" when it must wait.
func (f *Fleet) Start(ctx context.Context) string {
	if f.o.ProbersPerEndpoint > 0 {
		f.o.Health.SetProbing(f.probes)
	}
	file := f.loadState()
	f.ovMu.Lock()
	for k, r := range file.Overrides {
		f.overrides[k] = r
	}
	f.applyOverrides()
	f.ovMu.Unlock()
	covered := f.round(ctx)
	warm := ""
	switch {
	case covered:
		warm = SourceFleet
	case f.Source() == SourceLocal && file.Effective != nil && f.o.Now().Sub(time.UnixMilli(file.Saved)) <= f.o.Grace:
		eff := map[health.EndpointRef]health.Effective{}
		for k, s := range file.Effective {
			if r, ok := parseRef(k); ok {
				eff[r] = health.Effective{State: map[string]health.State{"up": health.Up, "down": health.Down}[s], Load: math.NaN(), LatencyMS: math.NaN()}
			}
		}
		// Served like a fleet view Redis was lost for: until fleet.grace
		// after the file was written, or the first round that succeeds.
		f.mu.Lock()
		f.effective, f.lastOK = eff, time.UnixMilli(file.Saved)
		f.setSource(SourceGrace)
		f.mu.Unlock()
		f.o.Health.SetEffective(eff)
		warm = SourceFile
	}
	f.mu.Lock()
	f.warm = warm
	f.mu.Unlock()
	return warm
}

// Run publishes and reads every interval, and at once after a Kick or an
// override announced by another instance, until ctx is done.
func (f *Fleet) Run(ctx context.Context) {
	notes := f.watchOverrides(ctx)
	t := time.NewTicker(f.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		case <-notes:
		}
		f.round(ctx)
	}
}

// watchOverrides turns the change channel's messages into rounds. The
// subscription reconnects by itself; the ticker covers what it misses.
func (f *Fleet) watchOverrides(ctx context.Context) <-chan struct{} {
	notes := make(chan struct{}, 1)
	sub := f.o.Client.Subscribe(ctx, f.keys.changed)
	go func() {
		<-ctx.Done()
		sub.Close()
	}()
	go func() {
		for range sub.Channel() {
			select {
			case notes <- struct{}{}:
			default:
			}
		}
	}()
	return notes
}

// Close gives up this instance's registration and withdraws its verdicts,
// so the fleet stops counting it at once rather than after the TTL.
func (f *Fleet) Close() {
	f.roundMu.Lock()
	defer f.roundMu.Unlock()
	f.closed = true // no round after this one: it would announce us again
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	f.mu.Lock()
	regs := f.registered
	f.mu.Unlock()
	p := f.o.Client.Pipeline()
	for i, k := range regs {
		// Only what is still ours: after a hand-over the successor holds
		// the name, the membership and the verdicts under it.
		extra := []string{}
		if i == 0 {
			extra = []string{f.keys.members, f.keys.verdicts(f.o.Instance)}
		}
		p.Eval(ctx, `if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
if KEYS[2] then redis.call("ZREM", KEYS[2], ARGV[2]); redis.call("DEL", KEYS[3]) end
return 1`, append([]string{k}, extra...), f.token, f.o.Instance)
	}
	_, _ = p.Exec(ctx)
	f.saveState(true)
}

// round publishes this instance's verdicts, reads every fresh one and the
// overrides, and applies them. It reports whether every probed endpoint
// has a fresh verdict from another instance (what a warm start needs).
func (f *Fleet) round(ctx context.Context) bool {
	f.roundMu.Lock()
	defer f.roundMu.Unlock()
	if f.closed {
		return false
	}
	now := f.o.Now()
	local := f.o.Health.Verdicts()
	mine := f.counted(local)
	rctx, cancel := context.WithTimeout(ctx, f.o.Interval+time.Second)
	defer cancel()
	all, members, redisOv, err := f.exchange(rctx, now, mine)
	if err != nil {
		f.failed(now, err)
		return false
	}
	f.mergeOverrides(rctx, redisOv)
	covered := f.decide(now, local, mine, all, members)
	f.assign(now, local, members)
	return covered
}

func refKey(r health.EndpointRef) string { return r.Datacenter + "/" + r.Address.String() }

func parseRef(s string) (health.EndpointRef, bool) {
	dc, a, ok := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(a)
	if !ok || err != nil {
		return health.EndpointRef{}, false
	}
	return health.EndpointRef{Datacenter: dc, Address: addr}, true
}

func num(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// exchange is one round trip of writes and one of reads.
func (f *Fleet) exchange(ctx context.Context, now time.Time, mine map[health.EndpointRef]health.Verdict) (map[string]map[string]wireVerdict, []string, map[string]string, error) {
	fields := map[string]any{}
	for _, v := range mine {
		w := wireVerdict{State: v.State.String(), Published: now.UnixMilli(), At: v.At.UnixMilli(), Since: v.Since.UnixMilli(),
			RTTMS: v.RTTMS, Load: num(v.Load), LatencyMS: num(v.LatencyMS), Reason: v.Reason}
		b, _ := json.Marshal(w)
		fields[refKey(v.EndpointRef)] = string(b)
	}
	vk := f.keys.verdicts(f.o.Instance)
	f.mu.Lock()
	regs := f.registered
	f.mu.Unlock()
	_, err := f.o.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, vk)
		if len(fields) > 0 {
			p.HSet(ctx, vk, fields)
			p.PExpire(ctx, vk, f.o.VerdictTTL)
		}
		p.ZAdd(ctx, f.keys.members, redis.Z{Score: float64(now.UnixMilli()), Member: f.o.Instance})
		// Members silent for many TTLs are gone for good.
		p.ZRemRangeByScore(ctx, f.keys.members, "-inf", fmt.Sprint(now.Add(-10*f.o.VerdictTTL).UnixMilli()))
		for _, k := range regs {
			p.Set(ctx, k, f.token, f.o.VerdictTTL)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	members, err := f.o.Client.ZRangeByScore(ctx, f.keys.members, &redis.ZRangeBy{
		Min: fmt.Sprint(now.Add(-f.o.VerdictTTL).UnixMilli()), Max: "+inf"}).Result()
	if err != nil {
		return nil, nil, nil, err
	}
	p := f.o.Client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(members))
	for i, m := range members {
		cmds[i] = p.HGetAll(ctx, f.keys.verdicts(m))
	}
	ov := p.HGetAll(ctx, f.keys.overrides)
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, nil, err
	}
	all := map[string]map[string]wireVerdict{} // instance → endpoint → verdict
	for i, m := range members {
		got := map[string]wireVerdict{}
		for field, val := range cmds[i].Val() {
			var w wireVerdict
			if json.Unmarshal([]byte(val), &w) == nil {
				got[field] = w
			}
		}
		all[m] = got
	}
	return all, members, ov.Val(), nil
}

// failed keeps the last fleet view for the grace period, then falls back
// to this instance's own.
func (f *Fleet) failed(now time.Time, err error) {
	f.m.errors.Inc()
	f.mu.Lock()
	f.lastErr = err.Error()
	prev := f.source
	switch {
	case prev != SourceFleet && prev != SourceGrace:
		f.setSource(SourceLocal)
	case now.Sub(f.lastOK) <= f.o.Grace:
		f.setSource(SourceGrace)
	default:
		f.setSource(SourceLocal)
	}
	cur := f.source
	f.mu.Unlock()
	if cur == prev {
		return
	}
	// Without the others' verdicts this instance needs its own on every
	// endpoint by the time the grace period ends.
	f.stopSharing()
	switch cur {
	case SourceGrace:
		f.o.Log.Warn("fleet: Redis lost; keeping the last fleet view for fleet.grace", "grace", f.o.Grace.String(), "err", err)
	case SourceLocal:
		f.o.Log.Warn("fleet: Redis still lost after fleet.grace; answering from this instance's own probes", "err", err)
		f.mu.Lock()
		f.effective = nil
		f.mu.Unlock()
		f.o.Health.SetEffective(nil)
	}
}

// decide takes the quorum over fresh verdicts and applies it.
func (f *Fleet) decide(now time.Time, local []health.Verdict, mine map[health.EndpointRef]health.Verdict,
	all map[string]map[string]wireVerdict, members []string) bool {
	fresh := func(w wireVerdict) bool { return now.Sub(time.UnixMilli(w.Published)) <= f.o.VerdictTTL }
	eff := map[health.EndpointRef]health.Effective{}
	var status []EndpointStatus
	covered := true
	newDisagree := map[health.EndpointRef]bool{}
	var disagreements []health.EndpointRef
	for _, lv := range local {
		key := refKey(lv.EndpointRef)
		// A series per configured endpoint from the first round, at 0, so
		// a rate over it is 0 rather than absent.
		f.m.disagreements.WithLabelValues(lv.Datacenter, lv.Address.String())
		es := EndpointStatus{Datacenter: lv.Datacenter, Endpoint: lv.Address.String(), Local: lv.State.String()}
		if !f.probes(lv.EndpointRef) {
			es.Local = "not probed here"
		}
		ups, downs, others := 0, 0, 0
		var downBy []string
		meas := measurements{}
		for _, inst := range members {
			w, ok := all[inst][key]
			if inst == f.o.Instance {
				// Our own verdict as it is now, not as last published.
				lv, counts := mine[lv.EndpointRef]
				if !counts {
					continue
				}
				w = wireVerdict{State: lv.State.String(), Published: now.UnixMilli(), At: lv.At.UnixMilli(), RTTMS: lv.RTTMS,
					Load: num(lv.Load), LatencyMS: num(lv.LatencyMS), Reason: lv.Reason}
				ok = true
			}
			if !ok {
				continue
			}
			iv := InstanceVerdict{Instance: inst, State: w.State, Published: time.UnixMilli(w.Published).UTC(), RTTMS: w.RTTMS,
				Load: w.Load, LatencyMS: w.LatencyMS, Reason: w.Reason, Stale: !fresh(w)}
			if w.At > 0 {
				t := time.UnixMilli(w.At).UTC()
				iv.ProbedAt = &t
			}
			es.Verdicts = append(es.Verdicts, iv)
			if iv.Stale {
				continue
			}
			if inst != f.o.Instance {
				others++
			}
			if w.State == "down" {
				downs++
				downBy = append(downBy, inst)
			} else {
				ups++
				meas.add(w)
			}
		}
		if others == 0 {
			covered = false
		}
		n := ups + downs
		switch {
		case f.o.Quorum == LocalOnly:
			es.Result, es.Reason = "local", "fleet.quorum is local: this instance's own probes decide"
		case n == 0:
			es.Result, es.Reason = "local", "no fresh verdict from any instance"
		case n < f.o.MinVerdicts:
			es.Result, es.Reason = "local", fmt.Sprintf("%d fresh verdicts, fleet.min_verdicts is %d", n, f.o.MinVerdicts)
		default:
			up := true
			switch f.o.Quorum {
			case AnyUp:
				up = ups > 0
			case AllUp:
				up = downs == 0
			default:
				up = downs*2 <= n
			}
			st := health.Down
			es.Result = "down"
			if up {
				st, es.Result = health.Up, "up"
			}
			eff[lv.EndpointRef] = meas.effective(st)
			if e := eff[lv.EndpointRef]; e.RTTMS > 0 {
				es.FleetRTTMS = &e.RTTMS
			}
			es.Reason = fmt.Sprintf("%s: %d of %d fresh verdicts down", f.o.Quorum, downs, n)
			if downs > 0 {
				es.Reason += " (" + strings.Join(downBy, ", ") + ")"
			}
			if lv.State != health.Unknown && lv.State != st {
				newDisagree[lv.EndpointRef] = true
				if !f.disagree[lv.EndpointRef] {
					disagreements = append(disagreements, lv.EndpointRef)
				}
			}
		}
		status = append(status, es)
	}
	for _, r := range disagreements {
		f.m.disagreements.WithLabelValues(r.Datacenter, r.Address.String()).Inc()
		f.o.Log.Info("fleet: this instance's verdict differs from the fleet's; the fleet's rules", "datacenter", r.Datacenter, "endpoint", r.Address.String())
	}
	// Members, not instances with verdicts: with probe sharing a live
	// instance may have no endpoint of its own to publish.
	live := len(members)
	f.m.instances.Set(float64(live))
	low := f.o.Quorum != LocalOnly && live < f.o.MinVerdicts
	f.mu.Lock()
	wasSource, wasLow := f.source, f.lowQuorum
	if f.o.Quorum == LocalOnly {
		eff = nil
	}
	changed := !sameEffective(eff, f.effective) || wasSource != SourceFleet
	f.effective, f.disagree, f.status, f.instances, f.lastOK, f.lastErr, f.lowQuorum = eff, newDisagree, status, members, now, "", low
	f.setSource(SourceFleet)
	f.mu.Unlock()
	if low && !wasLow {
		f.o.Log.Warn(fmt.Sprintf("fleet: fleet.min_verdicts %d cannot be met: %d instances publish verdicts; endpoints follow this instance's own probes", f.o.MinVerdicts, live))
	}
	if wasSource != SourceFleet {
		f.o.Log.Info("fleet: answering from the fleet's view", "instances", members, "was", wasSource)
	}
	if changed {
		f.o.Health.SetEffective(eff)
		f.saveState(false)
	} else if f.o.Grace > 0 && now.Sub(f.savedAt()) > f.o.Grace/3 {
		// An unchanged view is written again now and then: a warm start
		// from the file trusts it only while it is younger than the grace.
		f.saveState(true)
	}
	return covered && len(local) > 0
}

func sameEffective(a, b map[health.EndpointRef]health.Effective) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.State != w.State || v.RTTMS != w.RTTMS || !sameNum(v.Load, w.Load) || !sameNum(v.LatencyMS, w.LatencyMS) {
			return false
		}
	}
	return true
}

func sameNum(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

// Override sets an override on every instance: in Redis (announced on the
// change channel), in the state file, and on this instance at once. With
// Redis unreachable it applies here and in the file, and reaches Redis at
// the next round that succeeds, unless a later override did by then.
func (f *Fleet) Override(ctx context.Context, dc, endpoint, state, reason, by string) error {
	f.ovMu.Lock()
	if err := f.o.Health.Override(dc, endpoint, state, reason); err != nil {
		f.ovMu.Unlock()
		return err
	}
	key := dc
	if endpoint != "" {
		a, _ := netip.ParseAddr(endpoint) // Override checked it
		key = dc + "/" + a.Unmap().String()
	}
	rec := overrideRec{State: state, Reason: reason, By: by, Since: f.o.Now().UnixMilli()}
	if old, ok := f.overrides[key]; ok && old.Since >= rec.Since {
		rec.Since = old.Since + 1 // two overrides in one millisecond: the second still wins
	}
	f.overrides[key] = rec
	f.ovMu.Unlock()
	f.saveState(true)
	b, _ := json.Marshal(rec)
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := f.o.Client.TxPipelined(wctx, func(p redis.Pipeliner) error {
		p.HSet(wctx, f.keys.overrides, key, string(b))
		p.Publish(wctx, f.keys.changed, f.o.Instance)
		return nil
	})
	if err != nil {
		f.o.Log.Warn("fleet: override applied on this instance only until Redis answers", "target", key, "state", state, "err", err)
	}
	return nil
}

// mergeOverrides reconciles Redis's overrides with this instance's: the
// later of two records for one target wins on both sides.
func (f *Fleet) mergeOverrides(ctx context.Context, fromRedis map[string]string) {
	f.ovMu.Lock()
	defer f.ovMu.Unlock()
	push := map[string]any{}
	changed := false
	for k, v := range fromRedis {
		var r overrideRec
		if json.Unmarshal([]byte(v), &r) != nil {
			continue
		}
		if cur, ok := f.overrides[k]; !ok || r.Since > cur.Since {
			f.overrides[k] = r
			changed = true
		}
	}
	for k, r := range f.overrides {
		var inRedis overrideRec
		if v, ok := fromRedis[k]; !ok || json.Unmarshal([]byte(v), &inRedis) != nil || inRedis.Since < r.Since {
			b, _ := json.Marshal(r)
			push[k] = string(b)
		}
	}
	if len(push) > 0 {
		if err := f.o.Client.HSet(ctx, f.keys.overrides, push).Err(); err == nil {
			f.o.Client.Publish(ctx, f.keys.changed, f.o.Instance)
		}
	}
	// Applied every round, not only when Redis brought news: an override
	// this instance made while a round ran must not stay half applied.
	f.applyOverrides()
	if changed {
		go f.saveState(true)
	}
}

// applyOverrides makes the manager's overrides what the records say.
// ovMu must be held.
func (f *Fleet) applyOverrides() {
	have := map[string]health.OverrideInfo{}
	for _, o := range f.o.Health.Overrides() {
		k := o.Datacenter
		if o.Endpoint != "" {
			k += "/" + o.Endpoint
		}
		have[k] = o
	}
	for k, r := range f.overrides {
		dc, ep, _ := strings.Cut(k, "/")
		cur, ok := have[k]
		delete(have, k)
		if r.State == "auto" && !ok || ok && cur.State.String() == r.State && cur.Reason == r.Reason {
			continue
		}
		if err := f.o.Health.Override(dc, ep, r.State, r.Reason); err != nil && f.foreign[k] != r.Since {
			// Once per record, not every round: another instance's
			// configuration may simply have more datacenters.
			f.foreign[k] = r.Since
			f.o.Log.Warn("fleet: an override in the fleet names what this configuration does not have", "target", k, "err", err)
		}
	}
	_ = have // overrides set here and not known to the fleet are this instance's, made before it joined
}

// state is the local state file.
type state struct {
	Saved     int64                  `json:"saved"` // Unix ms
	Overrides map[string]overrideRec `json:"overrides"`
	Effective map[string]string      `json:"effective,omitempty"` // endpoint → up/down, the last fleet view
}

func (f *Fleet) loadState() state {
	var s state
	if f.o.StateFile == "" {
		return s
	}
	b, err := os.ReadFile(f.o.StateFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.o.Log.Warn("fleet: cannot read the state file; starting without it", "file", f.o.StateFile, "err", err)
		}
		return s
	}
	if err := json.Unmarshal(b, &s); err != nil {
		f.o.Log.Warn("fleet: the state file is not valid JSON; starting without it", "file", f.o.StateFile, "err", err)
		return state{}
	}
	return s
}

// saveState writes the file whole through a rename, so a crash leaves the
// old file or the new, never half of one. Views are written at most once
// a second; overrides (force) at once.
func (f *Fleet) saveState(force bool) {
	if f.o.StateFile == "" {
		return
	}
	f.saveMu.Lock()
	defer f.saveMu.Unlock()
	f.ovMu.Lock()
	s := state{Saved: f.o.Now().UnixMilli(), Overrides: make(map[string]overrideRec, len(f.overrides))}
	for k, r := range f.overrides {
		s.Overrides[k] = r
	}
	f.ovMu.Unlock()
	f.mu.Lock()
	if !force && f.o.Now().Sub(f.stateSaved) < time.Second {
		f.mu.Unlock()
		return
	}
	f.stateSaved = f.o.Now()
	if f.effective != nil {
		s.Effective = map[string]string{}
		for r, st := range f.effective {
			s.Effective[refKey(r)] = st.State.String()
		}
	}
	f.mu.Unlock()
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := f.o.StateFile + ".tmp"
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, f.o.StateFile)
	}
	if err != nil {
		f.o.Log.Warn("fleet: cannot write the state file", "file", f.o.StateFile, "err", err)
	}
}

func (f *Fleet) savedAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stateSaved
}

// Status is the fleet's part of GET /api/v1/status.
type Status struct {
	Source    string           `json:"source"`
	Quorum    string           `json:"quorum"`
	WarmStart string           `json:"warm_start,omitempty"`
	Instances []string         `json:"instances"`
	LastSync  *time.Time       `json:"last_sync,omitempty"`
	LastError string           `json:"last_error,omitempty"`
	Endpoints []EndpointStatus `json:"endpoints"`
	Overrides []OverrideStatus `json:"overrides,omitempty"`
}

// EndpointStatus is every instance's verdict on one endpoint and what the
// quorum made of them.
type EndpointStatus struct {
	Datacenter string            `json:"datacenter"`
	Endpoint   string            `json:"endpoint"`
	Local      string            `json:"local"`  // this instance's own verdict
	Result     string            `json:"result"` // up, down, or local (no fleet decision)
	Reason     string            `json:"reason"`
	FleetRTTMS *float64          `json:"fleet_rtt_ms,omitempty"` // the median over the fleet
	Verdicts   []InstanceVerdict `json:"verdicts"`
}

// InstanceVerdict is one instance's verdict.
type InstanceVerdict struct {
	Instance  string     `json:"instance"`
	State     string     `json:"state"`
	Published time.Time  `json:"published"`
	ProbedAt  *time.Time `json:"probed_at,omitempty"`
	RTTMS     float64    `json:"rtt_ms"`
	Load      *float64   `json:"reported_load,omitempty"`
	LatencyMS *float64   `json:"reported_latency_ms,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Stale     bool       `json:"stale,omitempty"`
}

// OverrideStatus is an override as the fleet knows it.
type OverrideStatus struct {
	Target string    `json:"target"`
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
	Since  time.Time `json:"since"`
}

// Status returns the last round's view.
func (f *Fleet) Status() Status {
	f.mu.Lock()
	s := Status{Source: f.source, Quorum: f.o.Quorum, WarmStart: f.warm, Instances: append([]string{}, f.instances...),
		LastError: f.lastErr, Endpoints: append([]EndpointStatus{}, f.status...)}
	if !f.lastOK.IsZero() {
		t := f.lastOK.UTC()
		s.LastSync = &t
	}
	f.mu.Unlock()
	f.ovMu.Lock()
	for k, r := range f.overrides {
		if r.State != "auto" {
			s.Overrides = append(s.Overrides, OverrideStatus{Target: k, State: r.State, Reason: r.Reason, By: r.By, Since: time.UnixMilli(r.Since).UTC()})
		}
	}
	f.ovMu.Unlock()
	sort.Slice(s.Overrides, func(i, j int) bool { return s.Overrides[i].Target < s.Overrides[j].Target })
	return s
}
