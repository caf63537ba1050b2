package admin

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/gslb"
)

// PageOptions feed the status page at GET / beyond what the rest of the
// admin API already has.
type PageOptions struct {
	// Instance and Version head the page; either may be empty.
	Instance string
	Version  string
	// Events returns recent health events (keys as health.Event's JSON:
	// time, kind, datacenter, endpoint, from, to, reason); the page shows
	// the newest 20. Nil: the section is left out.
	Events func() []map[string]any
	// Drills returns recent failover drills (keys as drill.Result's JSON:
	// id, service, fail, mode, success, duration_ms, started, finished);
	// the page shows the newest 10. Nil: the section is left out.
	Drills func() []map[string]any

	// sampler is the page's state, made by New; callers cannot set it.
	sampler *sampler
}

const (
	// sampleEvery and shareSamples make the answer-share window: six
	// ten-second intervals, one minute.
	sampleEvery  = 10 * time.Second
	shareSamples = 6
	// samplerIdle stops a sampler started by a page view when nobody has
	// looked for this long; the next view starts it again.
	samplerIdle = 5 * time.Minute
	pageEvents  = 20
	pageDrills  = 10
	answersName = "gslb_dns_answers_total"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Parse(pageHTML))

func (h *Handler) registerPage() {
	h.opts.Page.sampler = newSampler(gathererSource(h.opts.Gatherer))
	h.mux.HandleFunc("GET /{$}", h.page)
}

// Start samples the answer counters every 10 s until ctx is done, so the
// status page shows the last minute's answer shares from its first view.
// Without Start the first page view starts sampling, which stops again
// after a few idle minutes.
func (h *Handler) Start(ctx context.Context) { h.opts.Page.sampler.start(ctx) }

func (h *Handler) page(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	h.opts.Page.sampler.viewed(now)
	data := h.pageData(now)
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, data); err != nil {
		writeError(w, http.StatusInternalServerError, "rendering the status page: "+err.Error())
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	// The page needs no script, no image and nothing from elsewhere; only
	// its own inline styles.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	_, _ = w.Write(buf.Bytes())
}

// pageData gathers everything the template shows; it holds no lock while
// the template runs, and none the DNS path takes at all.
func (h *Handler) pageData(now time.Time) pageView {
	v := pageView{
		Instance: h.opts.Page.Instance, Version: h.opts.Page.Version,
		Ready: h.ready.Load(), Now: now.UTC().Format(time.RFC3339),
		HasHealth: h.opts.Health != nil,
	}
	var st statusMirror
	if h.opts.Health != nil {
		// admin knows health only through Health: read its JSON form.
		if b, err := json.Marshal(h.opts.Health.StatusJSON()); err != nil || json.Unmarshal(b, &st) != nil {
			v.HealthError = "the health status could not be read"
		}
	}
	var dcs []gslb.Datacenter
	if h.opts.Snapshots != nil {
		if s := h.opts.Snapshots.Snapshot(); s != nil {
			dcs = s.Datacenters()
		}
	}
	v.Datacenters = mergeDatacenters(dcs, st.Datacenters, now)
	v.Shares, v.ShareWindow, v.ShareNote = h.opts.Page.sampler.shares()
	if f := h.opts.Page.Events; f != nil {
		v.HasEvents = true
		v.Events = recentEvents(f(), pageEvents)
	}
	if f := h.opts.Page.Drills; f != nil {
		v.HasDrills = true
		v.Drills = recentDrills(f(), pageDrills)
	}
	return v
}

// statusMirror is the part of health's status JSON the page reads; the
// tags follow health/status.go.
type statusMirror struct {
	Datacenters []dcMirror `json:"datacenters"`
}

type dcMirror struct {
	ID         string           `json:"id"`
	State      string           `json:"state"`
	Since      time.Time        `json:"since"`
	MinHealthy int              `json:"min_healthy"`
	Override   *overrideMirror  `json:"override"`
	Load       *float64         `json:"reported_load"`
	LatencyMS  *float64         `json:"latency_ms"`
	SlowStart  *float64         `json:"slow_start_share"`
	Endpoints  []endpointMirror `json:"endpoints"`
}

type endpointMirror struct {
	Address    string          `json:"address"`
	Check      string          `json:"check"`
	State      string          `json:"state"`
	Since      time.Time       `json:"since"`
	LastResult string          `json:"last_result"`
	RTTMS      float64         `json:"rtt_ms"`
	Loss       float64         `json:"loss"`
	Quality    float64         `json:"quality"`
	Flapping   bool            `json:"flapping"`
	Override   *overrideMirror `json:"override"`
}

type overrideMirror struct {
	State  string    `json:"state"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// pageView is what the template renders; every string is escaped by
// html/template.
type pageView struct {
	Instance, Version string
	Ready             bool
	Now               string
	HasHealth         bool
	HealthError       string
	Datacenters       []dcRow
	Shares            []serviceShare
	ShareWindow       string
	ShareNote         string
	HasEvents         bool
	Events            []eventRow
	HasDrills         bool
	Drills            []drillRow
}

type dcRow struct {
	ID, Region  string
	State       string // up, down, forced up, forced down
	Class       string // CSS class: up, down, forced
	Note        string // why, when not plain health
	Since       string
	SinceAgo    string
	Load        string // "420 / 1000 (42%)"
	LoadWidth   string // bar width, CSS percentage
	LoadHot     bool
	Latency     string
	EPUp, EPAll int
	Quality     string
	Override    string
	OverrideBy  string
	SlowStart   string
	Endpoints   []epRow
}

type epRow struct {
	Address, State, Class, Check, Quality, RTT, Loss, Result, Override string
	Flapping                                                           bool
}

func mergeDatacenters(snap []gslb.Datacenter, st []dcMirror, now time.Time) []dcRow {
	byID := make(map[string]*dcMirror, len(st))
	for i := range st {
		byID[st[i].ID] = &st[i]
	}
	seen := make(map[string]bool, len(snap))
	var rows []dcRow
	for i := range snap {
		d := &snap[i]
		seen[d.ID] = true
		rows = append(rows, dcRowOf(d, byID[d.ID], now))
	}
	// Health may know a datacenter a reload has just removed from the
	// snapshot, or the other way round: show both.
	for i := range st {
		if !seen[st[i].ID] {
			rows = append(rows, dcRowOf(nil, &st[i], now))
		}
	}
	return rows
}

func dcRowOf(d *gslb.Datacenter, hs *dcMirror, now time.Time) dcRow {
	r := dcRow{State: "up", Class: "up", Latency: "–", Quality: "–", Load: "–"}
	var load, capacity, latency = math.NaN(), math.NaN(), math.NaN()
	if d != nil {
		r.ID, r.Region = d.ID, d.Region
		load, capacity, latency = d.Load, d.Capacity, d.LatencyMS
		if !d.Up {
			r.State, r.Class = "down", "down"
		}
	}
	if hs != nil {
		r.ID = hs.ID
		if d == nil {
			r.Note = "not in the serving configuration"
			if hs.Load != nil {
				load = *hs.Load
			}
			if hs.LatencyMS != nil {
				latency = *hs.LatencyMS
			}
		}
		if !hs.Since.IsZero() {
			r.Since = hs.Since.UTC().Format(time.RFC3339)
			r.SinceAgo = ago(now.Sub(hs.Since))
		}
		switch {
		case hs.Override != nil:
			r.State, r.Class = "forced "+hs.Override.State, "forced"
			r.Override = hs.Override.State + ": " + hs.Override.Reason
			if !hs.Override.Since.IsZero() {
				r.OverrideBy = "since " + hs.Override.Since.UTC().Format(time.RFC3339)
			}
		case hs.State == "down":
			r.State, r.Class = "down", "down"
			if hs.MinHealthy > 0 {
				r.Note = fmt.Sprintf("fewer than %d endpoints up", hs.MinHealthy)
			}
		case d != nil && !d.Up:
			r.Note = "drained by configuration"
		}
		if hs.SlowStart != nil {
			r.SlowStart = pct(*hs.SlowStart)
		}
		best := math.Inf(-1)
		for _, e := range hs.Endpoints {
			r.EPAll++
			if e.State == "up" {
				r.EPUp++
			}
			er := epRow{Address: e.Address, State: e.State, Class: e.State, Check: e.Check, Result: e.LastResult, Flapping: e.Flapping,
				Quality: "–", RTT: "–", Loss: "–"}
			if e.Check != "" {
				best = max(best, e.Quality)
				er.Quality = strconv.FormatFloat(e.Quality, 'f', 2, 64)
				er.RTT = strconv.FormatFloat(e.RTTMS, 'f', 1, 64) + " ms"
				er.Loss = pct(e.Loss)
			}
			if e.Override != nil {
				er.Override = e.Override.State + ": " + e.Override.Reason
				er.State, er.Class = "forced "+e.Override.State, "forced"
			}
			r.Endpoints = append(r.Endpoints, er)
		}
		if !math.IsInf(best, -1) {
			r.Quality = strconv.FormatFloat(best, 'f', 2, 64)
		}
	} else if d != nil {
		r.Note = "no health checking"
	}
	if !math.IsNaN(load) && capacity > 0 {
		share := load / capacity
		r.Load = fmt.Sprintf("%s / %s (%s)", num(load), num(capacity), pct(share))
		r.LoadWidth = strconv.FormatFloat(math.Round(min(max(share, 0), 1)*1000)/10, 'f', -1, 64) + "%"
		r.LoadHot = share >= 0.9
	} else if !math.IsNaN(load) {
		r.Load = num(load)
	}
	if !math.IsNaN(latency) {
		r.Latency = strconv.FormatFloat(latency, 'f', 1, 64)
	}
	return r
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func pct(share float64) string {
	p := share * 100
	if p != math.Trunc(p) && p < 10 {
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(math.Round(p), 'f', 0, 64) + "%"
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// The answer-share sampler.

type answerKey struct{ service, datacenter string }

// answerSource reads the cumulative answer counters.
type answerSource func() (map[answerKey]float64, error)

// gathererSource reads gslb_dns_answers_total from a Prometheus gatherer.
func gathererSource(g prometheus.Gatherer) answerSource {
	if g == nil {
		return nil
	}
	return func() (map[answerKey]float64, error) {
		mfs, err := g.Gather()
		if err != nil && len(mfs) == 0 {
			return nil, err
		}
		out := map[answerKey]float64{}
		for _, mf := range mfs {
			if mf.GetName() != answersName {
				continue
			}
			for _, m := range mf.GetMetric() {
				var k answerKey
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "service":
						k.service = l.GetValue()
					case "datacenter":
						k.datacenter = l.GetValue()
					}
				}
				out[k] += m.GetCounter().GetValue()
			}
		}
		return out, nil
	}
}

// interval is what was answered between two samples.
type interval struct {
	from, to time.Time
	counts   map[answerKey]float64
}

// sampler keeps the last shareSamples intervals of answer counts: memory
// is bounded by that and the configured services and datacenters. Its
// lock is its own; the DNS path never takes it.
type sampler struct {
	source answerSource
	now    func() time.Time

	mu       sync.Mutex
	last     map[answerKey]float64 // cumulative, at lastAt
	lastAt   time.Time
	ring     [shareSamples]interval
	n, next  int
	err      string
	running  bool
	managed  bool // Start was called: sampling follows its ctx
	gen      int  // bumped when a loop is superseded
	lastView time.Time
}

func newSampler(src answerSource) *sampler { return &sampler{source: src, now: time.Now} }

func (s *sampler) start(ctx context.Context) {
	if s.source == nil {
		return
	}
	s.mu.Lock()
	if s.managed {
		s.mu.Unlock()
		return
	}
	s.managed, s.running = true, true
	s.gen++
	gen := s.gen
	fresh := s.lastAt.IsZero()
	s.mu.Unlock()
	if fresh {
		s.sample(gen)
	}
	go s.loop(ctx, gen)
}

// viewed notes a page view and starts sampling if nothing is.
func (s *sampler) viewed(now time.Time) {
	if s.source == nil {
		return
	}
	s.mu.Lock()
	s.lastView = now
	if s.running || s.managed {
		s.mu.Unlock()
		return
	}
	s.running = true
	s.gen++
	gen := s.gen
	// Counts from before an idle spell are not the last minute's.
	s.last, s.lastAt, s.n, s.next, s.err = nil, time.Time{}, 0, 0, ""
	s.ring = [shareSamples]interval{}
	s.mu.Unlock()
	s.sample(gen)
	go s.loop(context.Background(), gen)
}

func (s *sampler) loop(ctx context.Context, gen int) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			if s.gen == gen {
				s.running = false
			}
			s.mu.Unlock()
			return
		case <-t.C:
		}
		s.mu.Lock()
		stop := s.gen != gen
		if !stop && !s.managed && s.now().Sub(s.lastView) > samplerIdle {
			s.running, stop = false, true
		}
		s.mu.Unlock()
		if stop {
			return
		}
		s.sample(gen)
	}
}

// sample reads the counters and records what was answered since the
// previous sample; gen 0 always records (tests).
func (s *sampler) sample(gen int) {
	cur, err := s.source()
	at := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != 0 && gen != s.gen {
		return
	}
	if err != nil {
		s.err = "reading the answer counters: " + err.Error()
		return
	}
	s.err = ""
	if s.last != nil {
		d := make(map[answerKey]float64, len(cur))
		for k, v := range cur {
			delta := v - s.last[k]
			if delta < 0 { // a counter reset: count from zero
				delta = v
			}
			if delta > 0 {
				d[k] = delta
			}
		}
		s.ring[s.next] = interval{from: s.lastAt, to: at, counts: d}
		s.next = (s.next + 1) % shareSamples
		s.n = min(s.n+1, shareSamples)
	}
	s.last, s.lastAt = cur, at
}

type serviceShare struct {
	Service string
	Total   string
	Rows    []shareRow
}

type shareRow struct {
	Datacenter string
	Count      string
	Share      string
	Width      string
}

// shares sums the intervals in the window: per service, each
// datacenter's share of the answers.
func (s *sampler) shares() (out []serviceShare, window, note string) {
	if s.source == nil {
		return nil, "", "no metrics to read answers from"
	}
	totals := map[answerKey]float64{}
	s.mu.Lock()
	var from, to time.Time
	for i := range s.n {
		iv := &s.ring[i]
		if from.IsZero() || iv.from.Before(from) {
			from = iv.from
		}
		if iv.to.After(to) {
			to = iv.to
		}
		for k, v := range iv.counts {
			totals[k] += v
		}
	}
	n, errText := s.n, s.err
	s.mu.Unlock()
	if errText != "" {
		note = errText
	}
	if n == 0 {
		if note == "" {
			note = "no answers yet: sampling every 10 s has just started"
		}
		return nil, "", note
	}
	window = fmt.Sprintf("last %d s", int(to.Sub(from).Round(time.Second).Seconds()))
	by := map[string]map[string]float64{}
	for k, v := range totals {
		if by[k.service] == nil {
			by[k.service] = map[string]float64{}
		}
		by[k.service][k.datacenter] += v
	}
	for svc, dcs := range by {
		var total float64
		for _, v := range dcs {
			total += v
		}
		ss := serviceShare{Service: svc, Total: num(total)}
		for dc, v := range dcs {
			ss.Rows = append(ss.Rows, shareRow{Datacenter: dc, Count: num(v), Share: pct(v / total),
				Width: strconv.FormatFloat(math.Round(v/total*1000)/10, 'f', -1, 64) + "%"})
		}
		slices.SortFunc(ss.Rows, func(a, b shareRow) int { return cmp.Compare(a.Datacenter, b.Datacenter) })
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b serviceShare) int { return cmp.Compare(a.Service, b.Service) })
	if len(out) == 0 && note == "" {
		note = "no answers yet in the " + window
	}
	return out, window, note
}

// Recent events and drills. Their providers hand over JSON-shaped maps, so
// values may be typed (time.Time, time.Duration, bool) or as decoded from
// JSON (strings, float64); both render the same.

type eventRow struct {
	Time, Kind, Datacenter, Endpoint, From, To, Reason string
	ToClass                                            string
}

type drillRow struct {
	ID, Time, Service, Fail, Mode, Success, Duration string
	OK                                               bool
}

func recentEvents(in []map[string]any, n int) []eventRow {
	in = newest(in, n, "time")
	out := make([]eventRow, 0, len(in))
	for _, m := range in {
		to := text(m["to"])
		out = append(out, eventRow{
			Time: when(m["time"]), Kind: text(m["kind"]), Datacenter: text(m["datacenter"]), Endpoint: text(m["endpoint"]),
			From: text(m["from"]), To: to, ToClass: stateClass(to), Reason: text(m["reason"]),
		})
	}
	return out
}

func recentDrills(in []map[string]any, n int) []drillRow {
	in = newest(in, n, "finished", "started", "time")
	out := make([]drillRow, 0, len(in))
	for _, m := range in {
		r := drillRow{ID: text(m["id"]), Service: text(m["service"]), Fail: text(m["fail"]), Mode: text(m["mode"])}
		r.Time = when(first(m, "finished", "started", "time"))
		switch ok := m["success"].(type) {
		case bool:
			r.OK, r.Success = ok, "no"
			if ok {
				r.Success = "yes"
			}
		default:
			r.Success = text(ok)
		}
		if rate, ok := m["success_rate"].(float64); ok {
			r.Success += " (" + pct(rate) + ")"
		}
		switch d := first(m, "duration", "duration_ms").(type) {
		case time.Duration:
			r.Duration = d.Round(time.Millisecond).String()
		case float64:
			if _, isMS := m["duration_ms"]; isMS {
				r.Duration = (time.Duration(d * float64(time.Millisecond))).Round(time.Millisecond).String()
			} else {
				r.Duration = text(d)
			}
		default:
			r.Duration = text(d)
		}
		out = append(out, r)
	}
	return out
}

func first(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			return v
		}
	}
	return nil
}

// newest returns up to n items, newest first: by their time when every
// item has one, else taking the slice as oldest first.
func newest(in []map[string]any, n int, keys ...string) []map[string]any {
	type timed struct {
		t time.Time
		m map[string]any
	}
	all := make([]timed, 0, len(in))
	sortable := true
	for _, m := range in {
		t, ok := timeOf(first(m, keys...))
		sortable = sortable && ok
		all = append(all, timed{t, m})
	}
	if sortable {
		slices.SortStableFunc(all, func(a, b timed) int { return b.t.Compare(a.t) })
	} else {
		slices.Reverse(all)
	}
	out := make([]map[string]any, 0, min(n, len(all)))
	for _, x := range all[:min(n, len(all))] {
		out = append(out, x.m)
	}
	return out
}

func timeOf(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t != nil {
			return *t, !t.IsZero()
		}
	case string:
		if p, err := time.Parse(time.RFC3339Nano, t); err == nil {
			return p, true
		}
	}
	return time.Time{}, false
}

func when(v any) string {
	if t, ok := timeOf(v); ok {
		return t.UTC().Format(time.RFC3339)
	}
	return text(v)
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

func stateClass(s string) string {
	switch s {
	case "up", "down":
		return s
	}
	return ""
}
