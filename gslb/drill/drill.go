package drill

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/idgen"
)

// Request asks for one drill.
type Request struct {
	Service string   `json:"service"`
	Fail    string   `json:"fail"`
	Probes  []string `json:"probes"` // client IPs or subnets
	Mode    string   `json:"mode"`   // "dry-run" (default) or "live"
	// Settle is how long a live drill waits after failing the datacenter
	// before probing, e.g. "2s".
	Settle string `json:"settle,omitempty"`
}

// Report is a drill's outcome.
type Report struct {
	ID           idgen.ID           `json:"id"`
	Service      string             `json:"service"`
	Fail         string             `json:"fail"`
	Mode         string             `json:"mode"`
	Started      time.Time          `json:"started"`
	Finished     time.Time          `json:"finished"`
	DurationMS   float64            `json:"duration_ms"`
	Success      bool               `json:"success"`
	SuccessRate  float64            `json:"success_rate"` // share of probes that moved to a healthy datacenter
	Steps        []Step             `json:"steps"`
	Probes       []Probe            `json:"probes"`
	ExpectedLoad map[string]float64 `json:"expected_load,omitempty"`
}

// Step is one timed step of a drill.
type Step struct {
	Name     string    `json:"name"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   string    `json:"status"` // ok, failed, skipped
	Result   string    `json:"result"`
}

// Probe is one probe client's answers before and during the simulated
// loss.
type Probe struct {
	Client string   `json:"client"`
	Before []string `json:"before"`
	After  []string `json:"after"`
	OK     bool     `json:"ok"`
	Why    string   `json:"why,omitempty"`
}

// Env is what a drill needs of the daemon.
type Env interface {
	Snapshot() *gslb.Snapshot
	// Override and HasOverride reach health checking's overrides (live).
	Override(dc, endpoint, state, reason string) error
	HasOverride(dc string) bool
	// DNSAddr is this instance's DNS listener, queried in live mode.
	DNSAddr() string
}

// Runner runs drills one at a time and keeps a bounded history.
type Runner struct {
	env     Env
	ids     *idgen.Generator
	mu      sync.Mutex // one drill at a time
	histMu  sync.Mutex
	history []Report
	runs    *prometheus.CounterVec
	last    *prometheus.GaugeVec
	dur     prometheus.Histogram
}

// historySize bounds the reports kept.
const historySize = 100

// New returns a Runner.
func New(env Env, ids *idgen.Generator, reg prometheus.Registerer) *Runner {
	f := promauto.With(reg)
	return &Runner{env: env, ids: ids,
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "drill", Name: "runs_total",
			Help: "Drills run, by service, failed datacenter, mode and result (success, failure).",
		}, []string{"service", "datacenter", "mode", "result"}),
		last: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "drill", Name: "last_success",
			Help: "1 if the last drill of a service and failed datacenter succeeded, 0 if it failed.",
		}, []string{"service", "datacenter"}),
		dur: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: "gslb", Subsystem: "drill", Name: "duration_seconds",
			Help: "Drill durations.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
}

// probe is a parsed probe client: the address and the ECS prefix.
type probe struct {
	text   string
	prefix netip.Prefix
}

// Validate checks a request before any step runs; its error is the 400.
func (r *Runner) Validate(req *Request) ([]probe, time.Duration, error) {
	if req.Mode == "" {
		req.Mode = "dry-run"
	}
	if req.Mode != "dry-run" && req.Mode != "live" {
		return nil, 0, fmt.Errorf("mode: %q is not one of dry-run, live", req.Mode)
	}
	req.Service = strings.ToLower(dns.Fqdn(req.Service))
	snap := r.env.Snapshot()
	dcs, ok := snap.ServiceDatacenters(req.Service)
	if !ok {
		return nil, 0, fmt.Errorf("service: %q is not a configured service", req.Service)
	}
	if !slices.Contains(dcs, req.Fail) {
		return nil, 0, fmt.Errorf("fail: %q is not one of the service's datacenters (%s)", req.Fail, strings.Join(dcs, ", "))
	}
	healthy := 0
	for _, d := range snap.Datacenters() {
		if d.ID != req.Fail && d.Up && slices.Contains(dcs, d.ID) {
			healthy++
		}
	}
	if healthy == 0 {
		return nil, 0, fmt.Errorf("fail: losing %s would leave %s no healthy datacenter", req.Fail, req.Service)
	}
	if len(req.Probes) == 0 || len(req.Probes) > 1000 {
		return nil, 0, fmt.Errorf("probes: expected 1 to 1000 client addresses or subnets")
	}
	var probes []probe
	for i, p := range req.Probes {
		pr, err := parseProbe(p)
		if err != nil {
			return nil, 0, fmt.Errorf("probes[%d]: %q is not an IP address or a subnet", i, p)
		}
		probes = append(probes, pr)
	}
	var settle time.Duration
	if req.Settle != "" {
		d, err := time.ParseDuration(req.Settle)
		if err != nil || d < 0 || d > 5*time.Minute {
			return nil, 0, fmt.Errorf("settle: expected a duration up to 5m such as 2s, got %q", req.Settle)
		}
		settle = d
	}
	if req.Mode == "live" && r.env.HasOverride(req.Fail) {
		return nil, 0, fmt.Errorf("fail: %s has an operator override; a live drill would overwrite it", req.Fail)
	}
	return probes, settle, nil
}

func parseProbe(s string) (probe, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return probe{text: s, prefix: p.Masked()}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return probe{}, err
	}
	bits := 24
	if a.Is6() {
		bits = 56
	}
	p, _ := a.Unmap().Prefix(bits)
	return probe{text: s, prefix: p}, nil
}

// ErrBusy is returned when a drill is already running.
var ErrBusy = errors.New("drill: another drill is running")

// Run validates and runs a drill. A validation error returns no report.
func (r *Runner) Run(ctx context.Context, req Request) (*Report, error) {
	probes, settle, err := r.Validate(&req)
	if err != nil {
		return nil, err
	}
	if !r.mu.TryLock() {
		return nil, ErrBusy
	}
	defer r.mu.Unlock()
	rep := &Report{Service: req.Service, Fail: req.Fail, Mode: req.Mode, Started: time.Now().UTC()}
	if r.ids != nil {
		rep.ID, _ = r.ids.Next()
	}
	ok := true
	step := func(name string, fn func() (string, error)) {
		s := Step{Name: name, Started: time.Now().UTC(), Status: "ok"}
		if !ok && name != "restore" {
			s.Status, s.Result = "skipped", "an earlier step failed"
		} else if res, err := fn(); err != nil {
			s.Status, s.Result, ok = "failed", err.Error(), false
		} else {
			s.Result = res
		}
		s.Finished = time.Now().UTC()
		rep.Steps = append(rep.Steps, s)
	}
	base := r.env.Snapshot()
	var during *gslb.Snapshot
	overridden := false
	// Restore runs whatever happened, also on a panic in a step.
	defer func() {
		if overridden {
			_ = r.env.Override(req.Fail, "", "auto", "")
		}
	}()

	step("verify the other datacenters are healthy", func() (string, error) {
		dcs, _ := base.ServiceDatacenters(req.Service)
		var up, down []string
		for _, d := range base.Datacenters() {
			if !slices.Contains(dcs, d.ID) || d.ID == req.Fail {
				continue
			}
			if d.Up {
				up = append(up, d.ID)
			} else {
				down = append(down, d.ID)
			}
		}
		if len(up) == 0 {
			return "", fmt.Errorf("no other datacenter is up (down: %s)", strings.Join(down, ", "))
		}
		res := "up: " + strings.Join(up, ", ")
		if len(down) > 0 {
			res += "; down already: " + strings.Join(down, ", ")
		}
		return res, nil
	})
	step("simulate the loss of "+req.Fail, func() (string, error) {
		if req.Mode == "dry-run" {
			during = base.WithDatacenterDown(req.Fail)
			return "on a private copy of the snapshot; nothing real changed", nil
		}
		if err := r.env.Override(req.Fail, "", "down", fmt.Sprintf("drill %s", rep.ID)); err != nil {
			return "", err
		}
		overridden = true
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "forced down on this instance only, for the drill", nil
	})
	moved := map[string]int{}
	step("resolve the probes and verify they moved", func() (string, error) {
		good := 0
		for _, p := range probes {
			pr := Probe{Client: p.text, Before: r.dcsFor(base, req.Service, p)}
			if req.Mode == "dry-run" {
				pr.After = r.dcsFor(during, req.Service, p)
			} else {
				after, err := r.resolveLive(ctx, req.Service, p)
				if err != nil {
					pr.Why = err.Error()
				}
				pr.After = after
			}
			pr.OK = len(pr.After) > 0 && !slices.Contains(pr.After, req.Fail)
			switch {
			case pr.OK:
				good++
				if slices.Contains(pr.Before, req.Fail) {
					moved[pr.After[0]]++
				}
			case pr.Why == "" && len(pr.After) == 0:
				pr.Why = "no answer"
			case pr.Why == "":
				pr.Why = "still answered with " + req.Fail
			}
			rep.Probes = append(rep.Probes, pr)
		}
		rep.SuccessRate = float64(good) / float64(len(probes))
		if good < len(probes) {
			return "", fmt.Errorf("%d of %d probes moved to a healthy datacenter", good, len(probes))
		}
		return fmt.Sprintf("all %d probes moved to a healthy datacenter", good), nil
	})
	step("verify the receiving datacenters have room", func() (string, error) {
		var failLoad float64
		loads := map[string]gslb.Datacenter{}
		for _, d := range base.Datacenters() {
			loads[d.ID] = d
			if d.ID == req.Fail {
				failLoad = d.Load
			}
		}
		total := 0
		for _, n := range moved {
			total += n
		}
		rep.ExpectedLoad = map[string]float64{}
		var over []string
		for id, n := range moved {
			d := loads[id]
			// The failed datacenter's load, shared as its probe clients
			// moved: the best estimate of who takes what.
			exp := d.Load + failLoad*float64(n)/float64(total)
			rep.ExpectedLoad[id] = exp
			if exp > d.Capacity {
				over = append(over, fmt.Sprintf("%s (%.0f of %.0f)", id, exp, d.Capacity))
			}
		}
		if len(over) > 0 {
			slices.Sort(over)
			return "", fmt.Errorf("over capacity after failover: %s", strings.Join(over, ", "))
		}
		if total == 0 {
			return "no probe was on " + req.Fail + " before; nothing moves", nil
		}
		return "every receiving datacenter stays within capacity", nil
	})
	step("restore", func() (string, error) {
		if !overridden {
			return "nothing to restore", nil
		}
		overridden = false
		if err := r.env.Override(req.Fail, "", "auto", ""); err != nil {
			return "", err
		}
		return req.Fail + " back to its health checks", nil
	})

	rep.Finished = time.Now().UTC()
	rep.DurationMS = float64(rep.Finished.Sub(rep.Started).Microseconds()) / 1000
	rep.Success = ok
	result := "failure"
	if ok {
		result = "success"
	}
	r.runs.WithLabelValues(req.Service, req.Fail, req.Mode, result).Inc()
	r.last.WithLabelValues(req.Service, req.Fail).Set(map[bool]float64{true: 1, false: 0}[ok])
	r.dur.Observe(rep.Finished.Sub(rep.Started).Seconds())
	r.histMu.Lock()
	r.history = append(r.history, *rep)
	if len(r.history) > historySize {
		r.history = r.history[len(r.history)-historySize:]
	}
	r.histMu.Unlock()
	return rep, nil
}

// dcsFor answers the service for a probe client from a snapshot, through
// the same code as DNS, and names the datacenters answered.
func (r *Runner) dcsFor(s *gslb.Snapshot, service string, p probe) []string {
	tr := s.ExplainQuery(service, dns.TypeA, p.prefix.Addr(), false)
	out := tr.Winners
	if out == nil {
		out = []string{}
	}
	return out
}

// resolveLive asks this instance's DNS listener, with the probe's subnet
// in ECS, and maps the addresses back to datacenters.
func (r *Runner) resolveLive(ctx context.Context, service string, p probe) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(service, dns.TypeA)
	m.SetEdns0(1232, false)
	fam := uint16(1)
	if p.prefix.Addr().Is6() {
		fam = 2
	}
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam,
		SourceNetmask: uint8(p.prefix.Bits()), Address: p.prefix.Addr().AsSlice()})
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	resp, _, err := c.ExchangeContext(ctx, m, r.env.DNSAddr())
	if err != nil {
		return []string{}, err
	}
	out := []string{}
	snap := r.env.Snapshot()
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			addr, _ := netip.AddrFromSlice(a.A.To4())
			if dc, ok := snap.DatacenterOf(addr); ok && !slices.Contains(out, dc) {
				out = append(out, dc)
			}
		}
	}
	return out, nil
}

// History returns the reports kept, oldest first.
func (r *Runner) History() []Report {
	r.histMu.Lock()
	defer r.histMu.Unlock()
	return append([]Report(nil), r.history...)
}
