package health

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/semaphore"

	"github.com/gslbd/gslbd/idgen"
)

// DatacenterSpec is a datacenter as health sees it.
type DatacenterSpec struct {
	ID         string
	MinHealthy int
	SlowStart  time.Duration
	Endpoints  []EndpointSpec
}

// EndpointSpec is an endpoint and how to probe it.
type EndpointSpec struct {
	Address netip.Addr     // the answered address: the endpoint's identity
	Check   *Check         // nil: not probed, always up
	Probe   netip.AddrPort // where to probe: check_address, or Address and the check's port
}

// Options wire a Manager.
type Options struct {
	MaxInFlight int
	Jitter      float64 // fraction of the interval
	Damping     Damping
	Instance    string
	IDs         *idgen.Generator
	Registerer  prometheus.Registerer
	Log         *slog.Logger
	// OnChange is called, coalesced, after the View changed; it must not
	// block for long.
	OnChange func()
	// OnEvent receives every transition; it must not block.
	OnEvent func(Event)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager probes every endpoint and keeps their state.
type Manager struct {
	opts    Options
	metrics *metrics
	sem     *semaphore.Weighted
	wake    chan struct{}
	publish chan struct{}

	mu        sync.Mutex
	dcs       []*dcEntry // configured order
	byDC      map[string]*dcEntry
	eps       map[epKey]*endpoint
	queue     probeQueue
	overrides map[epKey]override     // endpoint overrides; Address invalid: the datacenter's
	effective map[epKey]Effective    // an external (fleet) verdict that replaces the probes'; nil: none
	probing   func(EndpointRef) bool // nil: probe every endpoint
	pending   int                    // endpoints not yet probed once
	dirty     atomic.Bool            // a result not yet published
	first     chan struct{}          // closed when pending reaches zero
}

type epKey struct {
	dc   string
	addr netip.Addr
}

type override struct {
	state  State // Up or Down
	reason string
	since  time.Time
}

type endpoint struct {
	key     epKey
	spec    EndpointSpec
	prober  Prober
	st      endpointState
	next    time.Time
	index   int // in the queue; -1 when not queued
	removed bool
	waived  bool // left to other instances before its first probe: not pending
}

type dcEntry struct {
	spec      DatacenterSpec
	eps       []*endpoint
	state     State
	since     time.Time
	rampStart time.Time // slow start began (zero: not ramping)
}

type metrics struct {
	transitions *prometheus.CounterVec
	endpointUp  *prometheus.GaugeVec
	dcUp        *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
}

// New returns a Manager; Configure gives it endpoints and Run probes them.
func New(opts Options) *Manager {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxInFlight < 1 {
		opts.MaxInFlight = 1
	}
	f := promauto.With(opts.Registerer)
	m := &Manager{
		opts: opts,
		metrics: &metrics{
			transitions: f.NewCounterVec(prometheus.CounterOpts{
				Namespace: "gslb", Subsystem: "health", Name: "transitions_total",
				Help: "State changes, by kind (endpoint, datacenter), datacenter and new state.",
			}, []string{"kind", "datacenter", "state"}),
			endpointUp: f.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "gslb", Name: "endpoint_up",
				Help: "1 if the endpoint is up (probed healthy or forced up), 0 if down.",
			}, []string{"datacenter", "endpoint"}),
			dcUp: f.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "gslb", Name: "datacenter_up",
				Help: "1 if the datacenter is up (enough endpoints up, not forced down), 0 if down.",
			}, []string{"datacenter"}),
			duration: f.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: "gslb", Name: "probe_duration_seconds",
				Help:    "Probe duration, by check and result (success, failure).",
				Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
			}, []string{"check", "result"}),
			inFlight: f.NewGauge(prometheus.GaugeOpts{
				Namespace: "gslb", Name: "probes_in_flight",
				Help: "Probes running now; health.max_in_flight bounds it.",
			}),
		},
		sem:       semaphore.NewWeighted(int64(opts.MaxInFlight)),
		wake:      make(chan struct{}, 1),
		publish:   make(chan struct{}, 1),
		byDC:      map[string]*dcEntry{},
		eps:       map[epKey]*endpoint{},
		overrides: map[epKey]override{},
		first:     make(chan struct{}),
	}
	close(m.first) // nothing to wait for until Configure adds endpoints
	return m
}

// Configure sets the datacenters and endpoints to watch. Endpoints that
// keep their address, check and probe address keep their state and its
// since; others start unknown. Datacenters keep their state likewise.
func (m *Manager) Configure(specs []DatacenterSpec) error {
	probers := map[*Check]Prober{}
	for _, dc := range specs {
		for _, ep := range dc.Endpoints {
			if ep.Check == nil || probers[ep.Check] != nil {
				continue
			}
			p, err := NewProber(ep.Check)
			if err != nil {
				return err
			}
			probers[ep.Check] = p
		}
	}
	now := m.opts.Now()
	m.mu.Lock()
	oldEps, oldDCs := m.eps, m.byDC
	m.eps, m.byDC, m.dcs = map[epKey]*endpoint{}, map[string]*dcEntry{}, nil
	m.queue = m.queue[:0]
	wasPending := m.pending
	m.pending = 0
	for _, spec := range specs {
		d := &dcEntry{spec: spec, state: Unknown, since: now}
		if old, ok := oldDCs[spec.ID]; ok {
			d.state, d.since, d.rampStart = old.state, old.since, old.rampStart
		}
		for _, es := range spec.Endpoints {
			key := epKey{spec.ID, es.Address}
			ep := &endpoint{key: key, spec: es, index: -1}
			if old, ok := oldEps[key]; ok && sameProbe(old.spec, es) {
				ep.st, ep.next = old.st, old.next
				old.removed = true
			} else if ok {
				// The check changed: measurements start over, but the
				// endpoint keeps its verdict until the new check gives one;
				// restarting unknown would count a down endpoint as up.
				ep.st.state, ep.st.since, ep.st.flapping = old.st.state, old.st.since, old.st.flapping
				ep.st.transitions, ep.st.stableSince = old.st.transitions, old.st.stableSince
				ep.st.probes = 0
				old.removed = true
			} else {
				ep.st.since = now
			}
			if es.Check != nil {
				ep.prober = probers[es.Check]
				if ep.st.probes == 0 {
					m.pending++
					ep.next = now.Add(m.jitter(es.Check.Interval, true))
				}
				heap.Push(&m.queue, ep)
			}
			m.eps[key] = ep
			d.eps = append(d.eps, ep)
		}
		m.dcs = append(m.dcs, d)
		m.byDC[spec.ID] = d
	}
	for id := range oldDCs {
		if _, kept := m.byDC[id]; !kept {
			m.metrics.dcUp.DeleteLabelValues(id)
		}
	}
	for key, old := range oldEps {
		if _, kept := m.eps[key]; !kept || !old.removed {
			old.removed = true
			m.metrics.endpointUp.DeleteLabelValues(key.dc, key.addr.String())
		}
	}
	if m.pending > 0 && wasPending == 0 {
		m.first = make(chan struct{})
	} else if m.pending == 0 && wasPending > 0 {
		close(m.first)
	}
	events := m.rollupAll(now)
	m.mu.Unlock()
	m.emit(events)
	m.signal(m.wake)
	m.signal(m.publish)
	return nil
}

func sameProbe(a, b EndpointSpec) bool {
	return a.Probe == b.Probe && (a.Check == nil) == (b.Check == nil) &&
		(a.Check == nil || reflect.DeepEqual(*a.Check, *b.Check))
}

// jitter spreads probes: the first round over the jitter fraction of
// the interval, later ones by up to ± that fraction around it.
func (m *Manager) jitter(interval time.Duration, first bool) time.Duration {
	j := float64(interval) * m.opts.Jitter
	if first {
		return time.Duration(rand.Float64() * j)
	}
	return interval + time.Duration((rand.Float64()*2-1)*j)
}

func (m *Manager) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// WaitFirstRound blocks until every probed endpoint has one result, or
// ctx is done.
func (m *Manager) WaitFirstRound(ctx context.Context) error {
	m.mu.Lock()
	first := m.first
	m.mu.Unlock()
	select {
	case <-first:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("health: first probe round not finished: %w", ctx.Err())
	}
}

// Run probes until ctx is done. The goroutine count stays flat: one
// scheduler, one publisher, and at most max_in_flight probes.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Changes that matter to answers publish at once; round-trip
		// drift is published at most once a second, which keeps a
		// snapshot rebuild from following every one of thousands of
		// probes a second.
		refresh := time.NewTicker(time.Second)
		defer refresh.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.publish:
			case <-refresh.C:
				if !m.dirty.Swap(false) {
					continue
				}
			}
			if m.opts.OnChange != nil {
				m.opts.OnChange()
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.mu.Lock()
		var ep *endpoint
		wait := time.Hour
		if len(m.queue) > 0 {
			if d := m.queue[0].next.Sub(m.opts.Now()); d > 0 {
				wait = d
			} else {
				ep = heap.Pop(&m.queue).(*endpoint)
			}
		}
		if ep != nil && m.probing != nil && !m.probing(EndpointRef{ep.key.dc, ep.key.addr}) {
			// Another instance probes it this interval; ask again next.
			ep.next = m.opts.Now().Add(m.jitter(ep.spec.Check.Interval, false))
			heap.Push(&m.queue, ep)
			if ep.st.probes == 0 && !ep.waived {
				ep.waived = true
				m.pendingDone()
			}
			ep = nil
			m.mu.Unlock()
			continue
		}
		m.mu.Unlock()
		if ep == nil {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				wg.Wait()
				return
			case <-m.wake:
			case <-timer.C:
			}
			continue
		}
		if err := m.sem.Acquire(ctx, 1); err != nil {
			wg.Wait()
			return
		}
		m.metrics.inFlight.Inc()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.probe(ctx, ep)
		}()
	}
}

func (m *Manager) probe(ctx context.Context, ep *endpoint) {
	c := ep.spec.Check
	start := m.opts.Now()
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	r := ep.prober.Probe(pctx, ep.spec.Probe)
	cancel()
	m.sem.Release(1)
	m.metrics.inFlight.Dec()
	if ctx.Err() != nil {
		return // shutting down: the result says nothing about the endpoint
	}
	result := "success"
	if !r.OK {
		result = "failure"
	}
	m.metrics.duration.WithLabelValues(c.Name, result).Observe(r.RTT.Seconds())

	now := m.opts.Now()
	m.mu.Lock()
	if ep.removed {
		m.mu.Unlock()
		return
	}
	first := ep.st.probes == 0
	prev := ep.st.last
	wasPending := ep.st.failures > 0 || (ep.st.state == Down && ep.st.successes > 0)
	changed, why := ep.st.observe(r, now, c.Rise, c.Fall, m.opts.Damping)
	// What answers depend on right away: state, the reported load and
	// latency, and whether an endpoint is on its way to changing (which
	// shortens TTLs). The round-trip averages move with every probe and
	// reach the snapshot within a second instead.
	isPending := ep.st.failures > 0 || (ep.st.state == Down && ep.st.successes > 0)
	urgent := changed || first || wasPending != isPending || !sameReport(prev.Load, r.Load) || !sameReport(prev.LatencyMS, r.LatencyMS)
	ep.next = start.Add(m.jitter(c.Interval, false))
	heap.Push(&m.queue, ep)
	var events []Event
	if changed {
		from := "unknown"
		if !first {
			from = map[State]string{Up: "down", Down: "up"}[ep.st.state]
		}
		events = append(events, m.event("endpoint", ep.key.dc, ep.key.addr.String(), from, ep.st.state.String(), why, now))
		m.metrics.transitions.WithLabelValues("endpoint", ep.key.dc, ep.st.state.String()).Inc()
	}
	m.metrics.endpointUp.WithLabelValues(ep.key.dc, ep.key.addr.String()).Set(b2f(m.endpointIsUp(ep)))
	if first && !ep.waived {
		m.pendingDone()
	}
	events = append(events, m.rollup(m.byDC[ep.key.dc], now)...)
	m.mu.Unlock()
	m.emit(events)
	m.publishAfter(urgent || len(events) > 0)
	m.signal(m.wake)
}

// publishAfter hands a change to the publisher: at once when answers
// depend on it, else with the next once-a-second refresh.
func (m *Manager) publishAfter(urgent bool) {
	if urgent {
		m.signal(m.publish)
	} else {
		m.dirty.Store(true)
	}
}

// pendingDone counts one endpoint of the first round done; m.mu held.
func (m *Manager) pendingDone() {
	m.pending--
	if m.pending == 0 {
		close(m.first)
	}
}

// sameReport compares reported values, NaN (not reported) equal to NaN.
func sameReport(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// endpointIsUp is the endpoint's effective state: an override, else the
// probes' verdict; unknown and unprobed endpoints count as up.
func (m *Manager) endpointIsUp(ep *endpoint) bool {
	if o, ok := m.overrides[ep.key]; ok {
		return o.state == Up
	}
	if e, ok := m.effective[ep.key]; ok {
		return e.State != Down
	}
	return ep.st.state != Down
}

func (m *Manager) rollupAll(now time.Time) []Event {
	var events []Event
	for _, d := range m.dcs {
		for _, ep := range d.eps {
			m.metrics.endpointUp.WithLabelValues(ep.key.dc, ep.key.addr.String()).Set(b2f(m.endpointIsUp(ep)))
		}
		events = append(events, m.rollup(d, now)...)
	}
	return events
}

// rollup recomputes a datacenter's state from its endpoints and override.
func (m *Manager) rollup(d *dcEntry, now time.Time) []Event {
	up := 0
	for _, ep := range d.eps {
		if m.endpointIsUp(ep) {
			up++
		}
	}
	want := Down
	why := fmt.Sprintf("%d of %d endpoints up, %d needed", up, len(d.eps), d.spec.MinHealthy)
	if up >= d.spec.MinHealthy {
		want = Up
	}
	if o, ok := m.overrides[epKey{dc: d.spec.ID}]; ok {
		want, why = o.state, "override by operator: "+o.reason
	}
	m.metrics.dcUp.WithLabelValues(d.spec.ID).Set(b2f(want == Up))
	if want == d.state {
		return nil
	}
	from := d.state
	d.state, d.since = want, now
	if want == Up && from == Down && d.spec.SlowStart > 0 {
		d.rampStart = now
	}
	if want == Down {
		d.rampStart = time.Time{}
	}
	m.metrics.transitions.WithLabelValues("datacenter", d.spec.ID, want.String()).Inc()
	return []Event{m.event("datacenter", d.spec.ID, "", from.String(), want.String(), why, now)}
}

func (m *Manager) event(kind, dc, ep, from, to, why string, now time.Time) Event {
	e := Event{Time: now.UTC(), Kind: kind, Datacenter: dc, Endpoint: ep, From: from, To: to, Reason: why, Instance: m.opts.Instance}
	if m.opts.IDs != nil {
		e.ID, _ = m.opts.IDs.Next()
	}
	return e
}

func (m *Manager) emit(events []Event) {
	for _, e := range events {
		lvl := slog.LevelInfo
		if e.To == "down" {
			lvl = slog.LevelWarn
		}
		if m.opts.Log != nil && !(e.Kind == "endpoint" && e.From == "unknown" && e.To == "up") {
			m.opts.Log.Log(context.Background(), lvl, e.Kind+" "+e.To, "event_id", e.ID, "datacenter", e.Datacenter,
				"endpoint", e.Endpoint, "from", e.From, "reason", e.Reason)
		}
		if m.opts.OnEvent != nil {
			m.opts.OnEvent(e)
		}
	}
}

// Override forces a datacenter (endpoint "") or an endpoint up or down,
// or returns it to automatic ("auto"). Overrides outlive reloads, not
// restarts.
func (m *Manager) Override(dc, endpoint, state, reason string) error {
	key := epKey{dc: dc}
	m.mu.Lock()
	d, ok := m.byDC[dc]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("health: no datacenter %q", dc)
	}
	if endpoint != "" {
		a, err := netip.ParseAddr(endpoint)
		if err != nil {
			m.mu.Unlock()
			return fmt.Errorf("health: endpoint %q is not an IP address", endpoint)
		}
		key.addr = a.Unmap()
		if _, ok := m.eps[key]; !ok {
			m.mu.Unlock()
			return fmt.Errorf("health: datacenter %s has no endpoint %s", dc, endpoint)
		}
	}
	now := m.opts.Now()
	switch state {
	case "up", "down":
		s := Up
		if state == "down" {
			s = Down
		}
		m.overrides[key] = override{state: s, reason: reason, since: now}
	case "auto":
		delete(m.overrides, key)
	default:
		m.mu.Unlock()
		return fmt.Errorf("health: state %q is not one of up, down, auto", state)
	}
	what := dc
	if endpoint != "" {
		what = dc + "/" + endpoint
	}
	events := []Event{m.event("override", dc, endpoint, "", state, reason, now)}
	if endpoint != "" {
		m.metrics.endpointUp.WithLabelValues(dc, key.addr.String()).Set(b2f(m.endpointIsUp(m.eps[key])))
	}
	events = append(events, m.rollup(d, now)...)
	m.mu.Unlock()
	if m.opts.Log != nil {
		m.opts.Log.Info("override set", "target", what, "state", state, "reason", reason, "event_id", events[0].ID)
	}
	m.emit(events[1:])
	if m.opts.OnEvent != nil {
		m.opts.OnEvent(events[0])
	}
	// Published before returning, not through the publisher goroutine: an
	// operator's override must be in the very next answer.
	if m.opts.OnChange != nil {
		m.opts.OnChange()
	}
	return nil
}

// HasOverride reports whether a datacenter has an operator override.
func (m *Manager) HasOverride(dc string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.overrides[epKey{dc: dc}]
	return ok
}

// View is the health of every datacenter at one moment, for the DNS
// snapshot.
type View struct {
	Datacenters map[string]DatacenterView
	// Ramping is true while a datacenter's slow start runs: the view must
	// be taken again as time passes, not only on changes.
	Ramping bool
}

// DatacenterView is what answering needs of one datacenter.
type DatacenterView struct {
	Up bool
	// Load and LatencyMS as the endpoints reported them; NaN when none
	// did (LatencyMS falls back to the probes' round trip).
	Load      float64
	LatencyMS float64
	// Ramp is the share of new clients a recovering datacenter may take,
	// 0..1; 1 when not in slow start.
	Ramp float64
	// Unsettled: down, ramping, or an endpoint on its way to changing;
	// answers then carry shorter TTLs.
	Unsettled bool
	// Down lists the endpoints that are down (probed or forced), to be
	// left out of answers.
	Down []netip.Addr
}

// View returns the current health.
func (m *Manager) View() View {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	v := View{Datacenters: make(map[string]DatacenterView, len(m.dcs))}
	for _, d := range m.dcs {
		dv := DatacenterView{Up: d.state != Down, Load: math.NaN(), LatencyMS: math.NaN(), Ramp: 1}
		var load, lat, rtt float64
		var nLoad, nLat, nRTT int
		for _, ep := range d.eps {
			st := &ep.st
			if ep.spec.Check != nil && (st.state == Up && st.failures > 0 || st.state == Down && st.successes > 0) {
				dv.Unsettled = true
			}
			if !m.endpointIsUp(ep) {
				// A datacenter an operator forced up answers with its
				// endpoints whatever their probes say, except those forced
				// down one by one: forcing up means "send traffic there".
				if o, forcedUp := m.overrides[epKey{dc: d.spec.ID}]; !forcedUp || o.state != Up || m.overrides[ep.key].state == Down {
					dv.Down = append(dv.Down, ep.key.addr)
				}
				continue
			}
			l, lt, r, ok := st.last.Load, st.last.LatencyMS, st.rttEWMA, st.last.OK
			if e, fleet := m.effective[ep.key]; fleet {
				l, lt, r, ok = e.Load, e.LatencyMS, e.RTTMS, true
			}
			if !ok {
				continue
			}
			if !math.IsNaN(l) {
				load += l
				nLoad++
			}
			if !math.IsNaN(lt) {
				lat += lt
				nLat++
			}
			if r > 0 {
				rtt += r
				nRTT++
			}
		}
		if nLoad > 0 {
			dv.Load = load / float64(nLoad)
		}
		switch {
		case nLat > 0:
			dv.LatencyMS = lat / float64(nLat)
		case nRTT > 0:
			// The probe's round trip stands in: a view from this instance
			// only, which is why a reported latency is preferred.
			dv.LatencyMS = rtt / float64(nRTT)
		}
		if !d.rampStart.IsZero() && d.spec.SlowStart > 0 {
			if el := now.Sub(d.rampStart); el < d.spec.SlowStart {
				dv.Ramp = float64(el) / float64(d.spec.SlowStart)
				v.Ramping = true
			}
		}
		dv.Unsettled = dv.Unsettled || !dv.Up || dv.Ramp < 1
		v.Datacenters[d.spec.ID] = dv
	}
	return v
}

// probeQueue is a min-heap of endpoints by next probe time.
type probeQueue []*endpoint

func (q probeQueue) Len() int           { return len(q) }
func (q probeQueue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q probeQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *probeQueue) Push(x any) {
	ep := x.(*endpoint)
	ep.index = len(*q)
	*q = append(*q, ep)
}
func (q *probeQueue) Pop() any {
	old := *q
	ep := old[len(old)-1]
	old[len(old)-1] = nil
	ep.index = -1
	*q = old[:len(old)-1]
	return ep
}
