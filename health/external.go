package health

import (
	"math"
	"net/netip"
	"time"
)

// The hooks in this file let a layer above health (health/fleet) share
// verdicts between instances: it reads this instance's own verdicts,
// decides an effective state per endpoint from every instance's, and
// hands that back. Overrides still come first; the datacenter rolls up
// from the effective states exactly as it does from probed ones.

// EndpointRef names an endpoint of a datacenter.
type EndpointRef struct {
	Datacenter string
	Address    netip.Addr
}

func (r EndpointRef) String() string { return r.Datacenter + "/" + r.Address.String() }

// Verdict is what this instance's own probes say of one endpoint.
type Verdict struct {
	EndpointRef
	State State // Unknown until the first probe
	Since time.Time
	// At is the last probe's time; zero before the first.
	At        time.Time
	RTTMS     float64
	Load      float64 // NaN: not reported
	LatencyMS float64 // NaN: not reported
	Reason    string  // the last probe's result: "probe succeeded" or the error
}

// Verdicts returns this instance's verdict on every probed endpoint, in
// configured order. Unprobed endpoints (no check) are left out: they are
// up by configuration on every instance alike.
func (m *Manager) Verdicts() []Verdict {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Verdict
	for _, d := range m.dcs {
		for _, ep := range d.eps {
			if ep.spec.Check == nil {
				continue
			}
			st := &ep.st
			v := Verdict{EndpointRef: EndpointRef{ep.key.dc, ep.key.addr}, State: st.state, Since: st.since,
				At: st.lastAt, RTTMS: round3(st.rttEWMA), Load: math.NaN(), LatencyMS: math.NaN()}
			if !st.lastAt.IsZero() {
				v.Load, v.LatencyMS, v.Reason = st.last.Load, st.last.LatencyMS, reason(st.last)
			}
			out = append(out, v)
		}
	}
	return out
}

// Effective is the fleet's verdict on an endpoint: its state, and the
// measurements answers weigh, taken over every instance's.
type Effective struct {
	State State
	// RTTMS is the fleet's median round trip (0: none), so that instances
	// in different places do not each favour the datacenter nearest them.
	RTTMS float64
	// Load and LatencyMS as the endpoint last reported them to any
	// instance; NaN: not reported.
	Load, LatencyMS float64
}

// SetEffective replaces the probes' verdict (and measurements) of the
// endpoints listed; endpoints not listed, or a nil map, follow this
// instance's probes again. Datacenters roll up again at once and the
// change is published like any other.
func (m *Manager) SetEffective(states map[EndpointRef]Effective) {
	now := m.opts.Now()
	m.mu.Lock()
	var eff map[epKey]Effective
	if states != nil {
		eff = make(map[epKey]Effective, len(states))
		for r, s := range states {
			eff[epKey{r.Datacenter, r.Address}] = s
		}
	}
	urgent := len(eff) != len(m.effective)
	for k, e := range eff {
		if old, ok := m.effective[k]; !ok || old.State != e.State {
			urgent = true
		}
	}
	m.effective = eff
	events := m.rollupAll(now)
	m.mu.Unlock()
	m.emit(events)
	// A changed state is published at once; drifting measurements within
	// a second, as the probes' own are.
	m.publishAfter(urgent || len(events) > 0)
}

// SetProbing limits probing to the endpoints probe says yes to; the
// others keep their schedule without being probed, and do not hold up
// the first round. nil probes every endpoint. probe is called with the
// manager's lock held: it must only read.
func (m *Manager) SetProbing(probe func(EndpointRef) bool) {
	m.mu.Lock()
	m.probing = probe
	m.mu.Unlock()
	m.signal(m.wake)
}

// OverrideInfo is an operator override in force.
type OverrideInfo struct {
	Datacenter string
	Endpoint   string // empty: the whole datacenter
	State      State
	Reason     string
	Since      time.Time
}

// Overrides lists the overrides in force.
func (m *Manager) Overrides() []OverrideInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]OverrideInfo, 0, len(m.overrides))
	for k, o := range m.overrides {
		oi := OverrideInfo{Datacenter: k.dc, State: o.state, Reason: o.reason, Since: o.since}
		if k.addr.IsValid() {
			oi.Endpoint = k.addr.String()
		}
		out = append(out, oi)
	}
	return out
}

// FirstRoundDone reports whether every probed endpoint has a result of
// this instance's own.
func (m *Manager) FirstRoundDone() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending == 0
}
