package health

import (
	"math"
	"time"
)

// State is an endpoint's or a datacenter's health.
type State int

const (
	// Unknown is an endpoint not yet probed. It answers as up: the cold
	// start waits for a first result before the daemon is ready, so an
	// unknown endpoint only ever serves while that first round runs.
	Unknown State = iota
	Up
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// MarshalText writes the state by name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Damping holds a flapping endpoint down.
type Damping struct {
	Window         time.Duration
	MaxTransitions int // 0 turns damping off
	Hold           time.Duration
}

// lossWindow is how many recent results loss is measured over.
const lossWindow = 20

// ewmaAlpha weighs the newest round trip in the RTT and jitter averages.
const ewmaAlpha = 0.3

// endpointState is the state machine of one probed endpoint.
type endpointState struct {
	state     State
	since     time.Time
	successes int // consecutive
	failures  int // consecutive
	last      Result
	lastAt    time.Time
	probes    uint64

	rttEWMA    float64 // ms
	jitterEWMA float64 // ms
	prevRTT    float64
	window     [lossWindow]bool // true: failed
	windowLen  int
	windowPos  int

	transitions []time.Time // within the damping window
	flapping    bool
	stableSince time.Time // flapping: first success of the current run
}

// observe applies one result and reports whether the state changed, and
// why.
func (e *endpointState) observe(r Result, now time.Time, rise, fall int, d Damping) (bool, string) {
	e.last, e.lastAt = r, now
	e.probes++
	e.window[e.windowPos] = !r.OK
	e.windowPos = (e.windowPos + 1) % lossWindow
	e.windowLen = min(e.windowLen+1, lossWindow)
	if r.OK {
		ms := float64(r.RTT) / float64(time.Millisecond)
		if e.rttEWMA == 0 {
			e.rttEWMA = ms
		} else {
			e.rttEWMA += ewmaAlpha * (ms - e.rttEWMA)
			e.jitterEWMA += ewmaAlpha * (math.Abs(ms-e.prevRTT) - e.jitterEWMA)
		}
		e.prevRTT = ms
		e.successes++
		e.failures = 0
	} else {
		e.failures++
		e.successes = 0
	}

	// The first result decides at once: waiting rise probes before the
	// first answer would only delay readiness.
	if e.state == Unknown {
		e.state, e.since = Down, now
		if r.OK {
			e.state = Up
		}
		return true, reason(r)
	}
	want := e.state
	switch {
	case e.state == Up && e.failures >= fall:
		want = Down
	case e.state == Down && e.successes >= rise:
		want = Up
	}
	if e.flapping {
		if !r.OK {
			e.stableSince = time.Time{}
		} else if e.stableSince.IsZero() {
			e.stableSince = now
		}
		if want == Up && (e.stableSince.IsZero() || now.Sub(e.stableSince) < d.Hold) {
			return false, ""
		}
		if want == Up {
			e.flapping = false
			e.transitions = e.transitions[:0]
		}
	}
	if want == e.state {
		return false, ""
	}
	e.state, e.since = want, now
	why := reason(r)
	if d.MaxTransitions > 0 {
		e.transitions = append(e.transitions, now)
		kept := e.transitions[:0]
		for _, t := range e.transitions {
			if now.Sub(t) <= d.Window {
				kept = append(kept, t)
			}
		}
		e.transitions = kept
		if len(kept) > d.MaxTransitions && want == Down && !e.flapping {
			e.flapping = true
			e.stableSince = time.Time{}
			why += "; flapping: held down until healthy for " + d.Hold.String()
		}
	}
	return true, why
}

func reason(r Result) string {
	if r.OK {
		return "probe succeeded"
	}
	if r.Err != nil {
		return r.Err.Error()
	}
	return "probe failed"
}

// loss is the fraction of failed probes in the window.
func (e *endpointState) loss() float64 {
	if e.windowLen == 0 {
		return 0
	}
	n := 0
	for i := range e.windowLen {
		if e.window[i] {
			n++
		}
	}
	return float64(n) / float64(e.windowLen)
}

// quality combines round trip, loss and jitter into 0..1 the way the
// origin's connection manager weighs a link (latency 0.3, bandwidth 0.3,
// loss 0.2, jitter 0.2). A probe cannot measure bandwidth, so the other
// three keep their proportions (3:2:2). Each term is normalised against
// the check's timeout: a round trip as long as the timeout scores 0, and
// so does jitter of a quarter of it.
func (e *endpointState) quality(timeout time.Duration) float64 {
	if e.windowLen == 0 {
		return 0
	}
	t := float64(timeout) / float64(time.Millisecond)
	latency := 1 - math.Min(e.rttEWMA/t, 1)
	loss := 1 - e.loss()
	jitter := 1 - math.Min(e.jitterEWMA/(t/4), 1)
	return (0.3*latency + 0.2*loss + 0.2*jitter) / 0.7
}
