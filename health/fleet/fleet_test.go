package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// fakeLocal stands in for the health manager: its verdicts are whatever
// the test says, and it records what the fleet hands back.
type fakeLocal struct {
	mu        sync.Mutex
	verdicts  []health.Verdict
	eff       map[health.EndpointRef]health.Effective
	overrides map[string]health.OverrideInfo
}

var ep = health.EndpointRef{Datacenter: "dc-a", Address: netip.MustParseAddr("192.0.2.1")}

func (l *fakeLocal) set(s health.State, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verdicts = []health.Verdict{{EndpointRef: ep, State: s, At: at, Since: at, RTTMS: 10, Load: math.NaN(), LatencyMS: math.NaN()}}
}

func (l *fakeLocal) Verdicts() []health.Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.verdicts)
}

func (l *fakeLocal) SetEffective(e map[health.EndpointRef]health.Effective) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eff = e
}

func (l *fakeLocal) effective() (health.Effective, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.eff[ep]
	return e, ok
}

func (l *fakeLocal) SetProbing(func(health.EndpointRef) bool) {}

func (l *fakeLocal) Overrides() []health.OverrideInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []health.OverrideInfo
	for _, o := range l.overrides {
		out = append(out, o)
	}
	return out
}

func (l *fakeLocal) Override(dc, endpoint, state, reason string) error {
	if dc != ep.Datacenter {
		return fmt.Errorf("health: no datacenter %q", dc)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.overrides == nil {
		l.overrides = map[string]health.OverrideInfo{}
	}
	k := dc + "/" + endpoint
	if state == "auto" {
		delete(l.overrides, k)
		return nil
	}
	s := health.Up
	if state == "down" {
		s = health.Down
	}
	l.overrides[k] = health.OverrideInfo{Datacenter: dc, Endpoint: endpoint, State: s, Reason: reason}
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// member is one fleet instance in this process.
type member struct {
	*Fleet
	local *fakeLocal
	log   *syncBuffer
}

// clock is a settable clock the members share.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func newClock() *clock                   { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func client(t *testing.T, addr string) redis.UniversalClient {
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, DialTimeout: time.Second, ReadTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func newMember(t *testing.T, addr, prefix, name, quorum string, clk *clock, tweak func(*Options)) *member {
	t.Helper()
	m := &member{local: &fakeLocal{}, log: &syncBuffer{}}
	o := Options{Client: client(t, addr), Prefix: prefix, Instance: name, Quorum: quorum, Interval: 100 * time.Millisecond,
		VerdictTTL: time.Second, Grace: time.Second, MaxClockSkew: time.Hour, Health: m.local,
		Registerer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(m.log, nil))}
	if clk != nil {
		o.Now = clk.now
	}
	if tweak != nil {
		tweak(&o)
	}
	m.Fleet = New(o)
	return m
}

// TestQuorumRules: each rule over the same three verdicts.
func TestQuorumRules(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	for i, tc := range []struct {
		quorum string
		states []health.State // a's, b's, c's
		want   string         // a's effective state; "" none (its own probes)
	}{
		{Majority, []health.State{health.Up, health.Up, health.Down}, "up"},
		{Majority, []health.State{health.Up, health.Down, health.Down}, "down"},
		{Majority, []health.State{health.Up, health.Down, health.Unknown}, "up"}, // a tie is no majority for down
		{AnyUp, []health.State{health.Down, health.Down, health.Up}, "up"},
		{AnyUp, []health.State{health.Down, health.Down, health.Down}, "down"},
		{AllUp, []health.State{health.Up, health.Up, health.Down}, "down"},
		{AllUp, []health.State{health.Up, health.Up, health.Up}, "up"},
		{LocalOnly, []health.State{health.Up, health.Down, health.Down}, ""},
	} {
		prefix := fmt.Sprintf("t%d:", i)
		var ms []*member
		for j, s := range tc.states {
			m := newMember(t, rs.Addr(), prefix, string(rune('a'+j)), tc.quorum, nil, nil)
			m.local.set(s, time.Now())
			ms = append(ms, m)
		}
		for j := len(ms) - 1; j >= 0; j-- {
			ms[j].round(ctx)
		}
		e, ok := ms[0].local.effective()
		got := ""
		if ok {
			got = e.State.String()
		}
		if got != tc.want {
			t.Errorf("%s over %v: got %q, want %q; status %+v", tc.quorum, tc.states, got, tc.want, ms[0].Status().Endpoints)
		}
	}
}

// TestStaleVerdictsDoNotCount: an instance that stops publishing stops
// counting once its verdicts are older than the TTL.
func TestStaleVerdictsDoNotCount(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	clk := newClock()
	a := newMember(t, rs.Addr(), "stale:", "a", Majority, clk, nil)
	b := newMember(t, rs.Addr(), "stale:", "b", Majority, clk, nil)
	c := newMember(t, rs.Addr(), "stale:", "c", Majority, clk, nil)
	a.local.set(health.Up, clk.now())
	b.local.set(health.Down, clk.now())
	c.local.set(health.Down, clk.now())
	c.round(ctx)
	b.round(ctx)
	a.round(ctx)
	if e, _ := a.local.effective(); e.State != health.Down {
		t.Fatalf("two of three down: got %s", e.State)
	}
	clk.advance(1500 * time.Millisecond) // past the TTL; only a and b publish again
	b.round(ctx)
	a.round(ctx)
	if e, _ := a.local.effective(); e.State != health.Up {
		t.Errorf("c's verdict is stale, 1 of 2 down: got %s; status %+v", e.State, a.Status())
	}
	if st := a.Status(); len(st.Instances) != 2 {
		t.Errorf("instances: got %v, want a and b", st.Instances)
	}
}

// TestMinVerdicts: fewer fresh verdicts than fleet.min_verdicts leave the
// endpoint to the instance's own probes, and a warning says why.
func TestMinVerdicts(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	min3 := func(o *Options) { o.MinVerdicts = 3 }
	a := newMember(t, rs.Addr(), "min:", "a", Majority, nil, min3)
	b := newMember(t, rs.Addr(), "min:", "b", Majority, nil, min3)
	a.local.set(health.Up, time.Now())
	b.local.set(health.Down, time.Now())
	b.round(ctx)
	a.round(ctx)
	if _, ok := a.local.effective(); ok {
		t.Errorf("2 verdicts, min 3: the fleet decided anyway")
	}
	if !strings.Contains(a.log.String(), "fleet.min_verdicts 3 cannot be met: 2 instances publish verdicts") {
		t.Errorf("no warning naming fleet.min_verdicts:\n%s", a.log.String())
	}
}

// TestOverridesEverywhere: an override through one instance reaches the
// other; the later record wins; the state file brings it back without
// Redis.
func TestOverridesEverywhere(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "fleet-state.json")
	a := newMember(t, rs.Addr(), "ov:", "a", Majority, nil, func(o *Options) { o.StateFile = file })
	b := newMember(t, rs.Addr(), "ov:", "b", Majority, nil, nil)
	if err := a.Override(ctx, "nowhere", "", "down", "x", "t"); err == nil {
		t.Errorf("an override of an unknown datacenter was accepted")
	}
	if err := a.Override(ctx, "dc-a", "", "down", "maintenance", "alice"); err != nil {
		t.Fatal(err)
	}
	b.round(ctx)
	if o := b.local.Overrides(); len(o) != 1 || o[0].State != health.Down || o[0].Reason != "maintenance" {
		t.Fatalf("b's overrides after a's drain: %+v", o)
	}
	if st := b.Status(); len(st.Overrides) != 1 || st.Overrides[0].By != "alice" {
		t.Errorf("b's status overrides: %+v", st.Overrides)
	}
	if err := b.Override(ctx, "dc-a", "", "auto", "", "bob"); err != nil {
		t.Fatal(err)
	}
	a.round(ctx)
	if o := a.local.Overrides(); len(o) != 0 {
		t.Errorf("a's overrides after b's auto: %+v", o)
	}
	if err := a.Override(ctx, "dc-a", "", "down", "again", "alice"); err != nil {
		t.Fatal(err)
	}

	// A restart without Redis: the state file has the drain.
	dead := newMember(t, "127.0.0.1:1", "ov:", "a", Majority, nil, func(o *Options) { o.StateFile = file })
	if err := dead.Register(ctx); err != nil {
		t.Errorf("Register without Redis: %v, want a warning only", err)
	}
	dead.Start(ctx)
	if o := dead.local.Overrides(); len(o) != 1 || o[0].Reason != "again" {
		t.Errorf("overrides after a restart without Redis: %+v", o)
	}
	if s := dead.Source(); s != SourceLocal {
		t.Errorf("source without Redis: %s", s)
	}
}

// TestRegister: a second holder of a name is refused, naming the key; a
// clock off Redis TIME is reported naming fleet.max_clock_skew.
func TestRegister(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	short := func(o *Options) { o.VerdictTTL, o.WorkerKey = 200*time.Millisecond, "0/1" }
	a := newMember(t, rs.Addr(), "reg:", "a", Majority, nil, short)
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	// Running, a refreshes its keys every interval, as a live daemon does.
	actx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(actx); close(done) }()
	again := newMember(t, rs.Addr(), "reg:", "a", Majority, nil, short)
	err := again.Register(ctx)
	if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), `instance.name "a" is already in use by a running instance (Redis key reg:name:a`) {
		t.Errorf("a second a: got %v", err)
	}
	other := newMember(t, rs.Addr(), "reg:", "b", Majority, nil, short)
	if err := other.Register(ctx); err == nil || !strings.Contains(err.Error(), "instance.datacenter_id/instance.worker_id 0/1 is already in use") {
		t.Errorf("a second 0/1: got %v", err)
	}
	stop()
	<-done
	a.Close()
	if err := again.Register(ctx); err != nil {
		t.Errorf("after a closed, its name is free: %v", err)
	}

	clk := newClock()
	clk.advance(5 * time.Second)
	skewed := newMember(t, rs.Addr(), "reg:", "c", Majority, clk, func(o *Options) { o.MaxClockSkew = time.Second })
	if err := skewed.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(skewed.log.String(), "more than fleet.max_clock_skew 1s") {
		t.Errorf("no skew warning:\n%s", skewed.log.String())
	}
}

// TestProbersOf: every endpoint gets k probers; one leaving moves only
// the endpoints it probed.
func TestProbersOf(t *testing.T) {
	members := []string{"a", "b", "c", "d", "e"}
	for i := range 50 {
		e := fmt.Sprintf("dc/192.0.2.%d", i)
		p := probersOf(e, members, 3)
		if len(p) != 3 {
			t.Fatalf("%s: %v", e, p)
		}
		left := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == "e" })
		q := probersOf(e, left, 3)
		kept := 0
		for _, m := range p {
			if slices.Contains(q, m) {
				kept++
			}
		}
		if want := 3 - btoi(slices.Contains(p, "e")); kept != want {
			t.Errorf("%s: probers %v became %v when e left", e, p, q)
		}
	}
	if p := probersOf("x", []string{"a"}, 3); len(p) != 1 {
		t.Errorf("one member: %v", p)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMedianRTT(t *testing.T) {
	m := measurements{}
	one, two := 1.0, 2.0
	for i, r := range []float64{40, 10, 30, 20} {
		w := wireVerdict{RTTMS: r, At: int64(i)}
		if i == 1 {
			w.Load = &two
		}
		if i == 2 {
			w.Load = &one
		}
		m.add(w)
	}
	e := m.effective(health.Up)
	if e.RTTMS != 25 || e.Load != 1 || !math.IsNaN(e.LatencyMS) {
		t.Errorf("got %+v, want the median 25 ms, the latest load 1, no latency", e)
	}
}

// TestWarmStartFromStateFile: without Redis at start, a state file
// younger than the grace period serves until the instance's own probes
// have run; an older one does not.
func TestWarmStartFromStateFile(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "fleet-state.json")
	withFile := func(o *Options) { o.StateFile, o.Grace = file, time.Minute }
	a := newMember(t, rs.Addr(), "warm:", "a", Majority, nil, withFile)
	b := newMember(t, rs.Addr(), "warm:", "b", Majority, nil, nil)
	a.local.set(health.Down, time.Now())
	b.local.set(health.Down, time.Now())
	b.round(ctx)
	a.round(ctx)

	restarted := newMember(t, "127.0.0.1:1", "warm:", "a", Majority, nil, withFile)
	if warm := restarted.Start(ctx); warm != SourceFile {
		t.Fatalf("warm start: got %q, want the state file", warm)
	}
	if e, ok := restarted.local.effective(); !ok || e.State != health.Down {
		t.Errorf("warm view from the file: got %+v %t, want down", e, ok)
	}
	if s := restarted.Source(); s != SourceGrace {
		t.Errorf("source: got %s, want grace (a saved fleet view)", s)
	}

	clk := newClock()
	clk.advance(2 * time.Minute)
	late := newMember(t, "127.0.0.1:1", "warm:", "a", Majority, clk, withFile)
	if warm := late.Start(ctx); warm != "" {
		t.Errorf("a state file older than the grace: got warm start %q", warm)
	}
}
