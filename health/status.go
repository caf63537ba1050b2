package health

import (
	"math"
	"time"
)

// Status is everything the status page shows: every datacenter and
// endpoint, its state and since when, the last probe and what it said.
type Status struct {
	Datacenters []DatacenterStatus `json:"datacenters"`
}

// DatacenterStatus is one datacenter's health.
type DatacenterStatus struct {
	ID         string           `json:"id"`
	State      State            `json:"state"`
	Since      time.Time        `json:"since"`
	MinHealthy int              `json:"min_healthy"`
	Override   *OverrideStatus  `json:"override,omitempty"`
	Load       *float64         `json:"reported_load,omitempty"`
	LatencyMS  *float64         `json:"latency_ms,omitempty"`
	SlowStart  *float64         `json:"slow_start_share,omitempty"` // while ramping
	Endpoints  []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is one endpoint's health.
type EndpointStatus struct {
	Address         string          `json:"address"`
	Check           string          `json:"check,omitempty"`
	Probe           string          `json:"probe,omitempty"`
	State           State           `json:"state"`
	Since           time.Time       `json:"since"`
	LastProbe       *time.Time      `json:"last_probe,omitempty"`
	LastResult      string          `json:"last_result,omitempty"` // "ok" or the error
	RTTMS           float64         `json:"rtt_ms"`
	JitterMS        float64         `json:"jitter_ms"`
	Loss            float64         `json:"loss"`
	Quality         float64         `json:"quality"`
	ReportedLoad    *float64        `json:"reported_load,omitempty"`
	ReportedLatency *float64        `json:"reported_latency_ms,omitempty"`
	Flapping        bool            `json:"flapping,omitempty"`
	Override        *OverrideStatus `json:"override,omitempty"`
}

// OverrideStatus is an operator's override.
type OverrideStatus struct {
	State  State     `json:"state"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

func num(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	r := math.Round(v*1000) / 1000
	return &r
}

// Status returns the current health of everything.
func (m *Manager) Status() Status {
	view := m.View()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Datacenters: []DatacenterStatus{}}
	for _, d := range m.dcs {
		dv := view.Datacenters[d.spec.ID]
		ds := DatacenterStatus{ID: d.spec.ID, State: d.state, Since: d.since.UTC(), MinHealthy: d.spec.MinHealthy,
			Load: num(dv.Load), LatencyMS: num(dv.LatencyMS), Endpoints: []EndpointStatus{}}
		if d.state == Unknown {
			ds.State = Up
		}
		if dv.Ramp < 1 {
			ds.SlowStart = num(dv.Ramp)
		}
		if o, ok := m.overrides[epKey{dc: d.spec.ID}]; ok {
			ds.Override = &OverrideStatus{State: o.state, Reason: o.reason, Since: o.since.UTC()}
		}
		for _, ep := range d.eps {
			s := &ep.st
			es := EndpointStatus{Address: ep.key.addr.String(), State: s.state, Since: s.since.UTC()}
			if c := ep.spec.Check; c != nil {
				es.Check, es.Probe = c.Name, ep.spec.Probe.String()
				es.RTTMS, es.JitterMS = round3(s.rttEWMA), round3(s.jitterEWMA)
				es.Loss, es.Quality = round3(s.loss()), round3(s.quality(c.Timeout))
				es.Flapping = s.flapping
			} else {
				es.State = Up
			}
			if !s.lastAt.IsZero() {
				t := s.lastAt.UTC()
				es.LastProbe = &t
				es.LastResult = "ok"
				if !s.last.OK {
					es.LastResult = reason(s.last)
				}
				es.ReportedLoad, es.ReportedLatency = num(s.last.Load), num(s.last.LatencyMS)
			}
			if o, ok := m.overrides[ep.key]; ok {
				es.Override = &OverrideStatus{State: o.state, Reason: o.reason, Since: o.since.UTC()}
			}
			ds.Endpoints = append(ds.Endpoints, es)
		}
		st.Datacenters = append(st.Datacenters, ds)
	}
	return st
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// StatusJSON is Status for the admin API, which knows health only through
// a small interface.
func (m *Manager) StatusJSON() any { return m.Status() }
