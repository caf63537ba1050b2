package idgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock stands still until Sleep is called, so tests control exactly
// when milliseconds pass and never depend on real timing.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	slept  time.Duration
	sleeps int
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept += d
	c.sleeps++
}

// Set moves the clock to t, in either direction, as an NTP step would.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) stats() (time.Duration, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept, c.sleeps
}

func newFakeGenerator(t *testing.T, cfg Config, now time.Time) (*Generator, *fakeClock) {
	t.Helper()
	clock := newFakeClock(now)
	cfg.Now, cfg.Sleep = clock.Now, clock.Sleep
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return g, clock
}

func mustNext(t *testing.T, g *Generator) ID {
	t.Helper()
	id, err := g.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return id
}

func mustParse(t *testing.T, id ID, epoch time.Time) Parts {
	t.Helper()
	p, err := Parse(id, epoch)
	if err != nil {
		t.Fatalf("Parse(%d): %v", id, err)
	}
	return p
}

func TestNewValidation(t *testing.T) {
	now := DefaultEpoch.Add(24 * time.Hour)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty means success
	}{
		{name: "zero config", cfg: Config{}},
		{name: "max fields", cfg: Config{Datacenter: MaxDatacenter, Worker: MaxWorker}},
		{name: "datacenter too big", cfg: Config{Datacenter: 40}, wantErr: "idgen: datacenter 40 is outside 0..31"},
		{name: "datacenter negative", cfg: Config{Datacenter: -1}, wantErr: "idgen: datacenter -1 is outside 0..31"},
		{name: "worker too big", cfg: Config{Worker: 32}, wantErr: "idgen: worker 32 is outside 0..31"},
		{name: "worker negative", cfg: Config{Worker: -5}, wantErr: "idgen: worker -5 is outside 0..31"},
		{name: "epoch equals now", cfg: Config{Epoch: now}},
		{name: "epoch in future", cfg: Config{Epoch: now.Add(time.Millisecond)}, wantErr: "is in the future"},
		{name: "epoch range nearly used", cfg: Config{Epoch: now.Add(-maxMillis * time.Millisecond)}},
		{name: "epoch range used up", cfg: Config{Epoch: now.Add(-(maxMillis + 1) * time.Millisecond)}, wantErr: "no timestamps are left"},
		{name: "unix epoch far past", cfg: Config{Epoch: time.Unix(0, 0).Add(-100 * 365 * 24 * time.Hour)}, wantErr: "no timestamps are left"},
		{name: "negative max backwards", cfg: Config{MaxBackwards: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Now = func() time.Time { return now }
			g, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %q, want nil", err)
				}
				if g == nil {
					t.Fatal("got nil generator, want one")
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
			if g != nil {
				t.Errorf("got generator %v with error, want nil", g)
			}
		})
	}
}

func TestEpochDefault(t *testing.T) {
	g, _ := newFakeGenerator(t, Config{}, DefaultEpoch.Add(time.Hour))
	if got := g.Epoch(); !got.Equal(DefaultEpoch) {
		t.Errorf("got epoch %v, want %v", got, DefaultEpoch)
	}
}

func TestLayoutRoundTrip(t *testing.T) {
	custom := time.Date(2020, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		epoch      time.Time
		offset     time.Duration
		dc, worker int
		wantID     ID // zero: not checked
	}{
		{name: "all zero", offset: 0, wantID: 0},
		{name: "one ms, dc 1, worker 2", offset: time.Millisecond, dc: 1, worker: 2, wantID: 1<<22 | 1<<17 | 2<<12},
		{name: "max dc and worker", offset: 1500 * time.Millisecond, dc: 31, worker: 31},
		{name: "custom epoch", epoch: custom, offset: 90 * 24 * time.Hour, dc: 7, worker: 19},
		{name: "last millisecond", offset: maxMillis * time.Millisecond, dc: 31, worker: 31, wantID: maxMillis<<22 | 31<<17 | 31<<12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch := tt.epoch
			if epoch.IsZero() {
				epoch = DefaultEpoch
			}
			at := epoch.Add(tt.offset)
			g, _ := newFakeGenerator(t, Config{Epoch: tt.epoch, Datacenter: tt.dc, Worker: tt.worker}, at)
			for seq := range 3 {
				id := mustNext(t, g)
				if id < 0 {
					t.Fatalf("got negative id %d", id)
				}
				if seq == 0 && tt.wantID != 0 && id != tt.wantID {
					t.Errorf("got id %d, want %d", id, tt.wantID)
				}
				want := Parts{Time: at, Datacenter: tt.dc, Worker: tt.worker, Sequence: seq}
				got := mustParse(t, id, tt.epoch)
				if !got.Time.Equal(want.Time) || got.Datacenter != want.Datacenter ||
					got.Worker != want.Worker || got.Sequence != want.Sequence {
					t.Errorf("got Parse(%d) = %+v, want %+v", id, got, want)
				}
			}
		})
	}
}

func TestParseTruncatesToMillisecond(t *testing.T) {
	at := DefaultEpoch.Add(2*time.Second + 345*time.Microsecond)
	g, _ := newFakeGenerator(t, Config{}, at)
	got := mustParse(t, mustNext(t, g), time.Time{}).Time
	if want := DefaultEpoch.Add(2 * time.Second); !got.Equal(want) {
		t.Errorf("got time %v, want %v", got, want)
	}
}

func TestParseNegative(t *testing.T) {
	_, err := Parse(-1, time.Time{})
	if err == nil {
		t.Fatal("got nil error, want one")
	}
	if want := "idgen: id -1 is negative"; !strings.Contains(err.Error(), want) {
		t.Errorf("got error %q, want it to contain %q", err, want)
	}
}

func TestNextIncreasing(t *testing.T) {
	g, clock := newFakeGenerator(t, Config{Datacenter: 3, Worker: 4}, DefaultEpoch.Add(time.Minute))
	var prev ID = -1
	for i := range 10000 {
		if i%7 == 0 {
			clock.Sleep(time.Millisecond)
		}
		id := mustNext(t, g)
		if id <= prev {
			t.Fatalf("call %d: got id %d after %d, want greater", i, id, prev)
		}
		prev = id
	}
}

func TestNextIncreasingRealClock(t *testing.T) {
	g, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var prev ID = -1
	for i := range 50000 {
		id := mustNext(t, g)
		if id <= prev {
			t.Fatalf("call %d: got id %d after %d, want greater", i, id, prev)
		}
		prev = id
	}
}

func TestNextConcurrentUnique(t *testing.T) {
	const goroutines, perGoroutine = 8, 20000
	g, err := New(Config{Datacenter: 1, Worker: 1})
	if err != nil {
		t.Fatal(err)
	}
	results := make([][]ID, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			ids := make([]ID, 0, perGoroutine)
			for range perGoroutine {
				id, err := g.Next()
				if err != nil {
					t.Errorf("Next: %v", err)
					return
				}
				ids = append(ids, id)
			}
			results[i] = ids
		})
	}
	wg.Wait()

	seen := make(map[ID]struct{}, goroutines*perGoroutine)
	for i, ids := range results {
		for j, id := range ids {
			// Each goroutine's calls are serialised by the lock, so its
			// own IDs must still increase.
			if j > 0 && id <= ids[j-1] {
				t.Errorf("goroutine %d call %d: got id %d after %d, want greater", i, j, id, ids[j-1])
			}
			if _, dup := seen[id]; dup {
				t.Fatalf("goroutine %d call %d: got duplicate id %d", i, j, id)
			}
			seen[id] = struct{}{}
		}
	}
	if got, want := len(seen), goroutines*perGoroutine; got != want {
		t.Errorf("got %d unique ids, want %d", got, want)
	}
}

func TestGeneratorsWithDifferentWorkersUnique(t *testing.T) {
	// A shared clock that only moves when a generator sleeps makes every
	// generator issue the same millisecond and sequence numbers, so only
	// the node bits keep the IDs apart.
	clock := newFakeClock(DefaultEpoch.Add(time.Hour))
	const workers, perWorker = 4, 10000
	seen := make(map[ID]int, workers*perWorker)
	for w := range workers {
		g, err := New(Config{Datacenter: 2, Worker: w, Now: clock.Now, Sleep: clock.Sleep})
		if err != nil {
			t.Fatal(err)
		}
		for range perWorker {
			id := mustNext(t, g)
			if other, dup := seen[id]; dup {
				t.Fatalf("worker %d: got id %d already issued by worker %d", w, id, other)
			}
			seen[id] = w
			if got := mustParse(t, id, time.Time{}).Worker; got != w {
				t.Fatalf("got worker %d in id %d, want %d", got, id, w)
			}
		}
	}
}

func TestSequenceExhaustionWaitsForNextMillisecond(t *testing.T) {
	start := DefaultEpoch.Add(10*time.Second + 250*time.Microsecond)
	g, clock := newFakeGenerator(t, Config{}, start)
	startMillis := DefaultEpoch.Add(10 * time.Second)

	for i := range MaxSequence + 1 {
		p := mustParse(t, mustNext(t, g), time.Time{})
		if !p.Time.Equal(startMillis) || p.Sequence != i {
			t.Fatalf("id %d: got time %v sequence %d, want %v sequence %d", i, p.Time, p.Sequence, startMillis, i)
		}
	}
	if _, sleeps := clock.stats(); sleeps != 0 {
		t.Fatalf("got %d sleeps before the sequence ran out, want 0", sleeps)
	}

	p := mustParse(t, mustNext(t, g), time.Time{})
	if want := startMillis.Add(time.Millisecond); !p.Time.Equal(want) || p.Sequence != 0 {
		t.Errorf("id 4097: got time %v sequence %d, want %v sequence 0", p.Time, p.Sequence, want)
	}
	slept, sleeps := clock.stats()
	if sleeps == 0 {
		t.Error("got no sleep, want Next to wait for the next millisecond")
	}
	// Sleeping only to the millisecond boundary keeps the stall minimal.
	if want := 750 * time.Microsecond; slept != want {
		t.Errorf("got %v slept, want %v", slept, want)
	}
}

func TestClockBackwardsRecovers(t *testing.T) {
	tests := []struct {
		name string
		back time.Duration
		max  time.Duration
	}{
		{name: "1ms within default", back: time.Millisecond},
		{name: "500ms within default", back: 500 * time.Millisecond},
		{name: "exactly the bound", back: 200 * time.Millisecond, max: 200 * time.Millisecond},
		{name: "sub-millisecond step", back: 300 * time.Microsecond, max: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := DefaultEpoch.Add(time.Hour + 500*time.Microsecond)
			g, clock := newFakeGenerator(t, Config{MaxBackwards: tt.max}, start)
			var prev ID
			for range 5 {
				prev = mustNext(t, g)
			}
			clock.Set(start.Add(-tt.back))
			for i := range 5 {
				id, err := g.Next()
				if err != nil {
					t.Fatalf("call %d after step back: got error %v, want nil", i, err)
				}
				if id <= prev {
					t.Fatalf("call %d after step back: got id %d, want greater than %d", i, id, prev)
				}
				prev = id
			}
			if slept, _ := clock.stats(); slept > tt.back {
				t.Errorf("got %v slept, want at most the step of %v", slept, tt.back)
			}
		})
	}
}

func TestClockBackwardsBeyondBound(t *testing.T) {
	tests := []struct {
		name      string
		back      time.Duration
		max       time.Duration
		wantSlept time.Duration
	}{
		{name: "2s past default 1s", back: 2 * time.Second, wantSlept: time.Second},
		{name: "50ms past 10ms", back: 50 * time.Millisecond, max: 10 * time.Millisecond, wantSlept: 10 * time.Millisecond},
		{name: "negative bound fails at once", back: time.Millisecond, max: -1, wantSlept: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := DefaultEpoch.Add(time.Hour)
			g, clock := newFakeGenerator(t, Config{MaxBackwards: tt.max}, start)
			last := mustNext(t, g)
			clock.Set(start.Add(-tt.back))

			id, err := g.Next()
			if !errors.Is(err, ErrClockBackwards) {
				t.Fatalf("got error %v, want one wrapping ErrClockBackwards", err)
			}
			if id != 0 {
				t.Errorf("got id %d with the error, want 0", id)
			}
			if slept, _ := clock.stats(); slept != tt.wantSlept {
				t.Errorf("got %v slept, want %v", slept, tt.wantSlept)
			}
			behind := (tt.back - tt.wantSlept).String()
			if !strings.Contains(err.Error(), behind) {
				t.Errorf("got error %q, want it to say how far behind (%s)", err, behind)
			}

			// Once the clock is back past the last ID, the generator
			// continues without reusing anything.
			clock.Set(start.Add(time.Millisecond))
			next := mustNext(t, g)
			if next <= last {
				t.Errorf("got id %d after recovery, want greater than %d", next, last)
			}
		})
	}
}

func TestClockBeforeEpochAtFirstCall(t *testing.T) {
	// The first ID may not alias millisecond 0 just because the clock
	// stepped to before the epoch after New.
	start := DefaultEpoch
	g, clock := newFakeGenerator(t, Config{MaxBackwards: -1}, start)
	clock.Set(start.Add(-time.Microsecond))
	if _, err := g.Next(); !errors.Is(err, ErrClockBackwards) {
		t.Errorf("got error %v, want one wrapping ErrClockBackwards", err)
	}
}

func TestNextPastLayoutEnd(t *testing.T) {
	start := DefaultEpoch.Add(maxMillis * time.Millisecond)
	g, clock := newFakeGenerator(t, Config{}, start)
	last := mustNext(t, g)
	clock.Set(start.Add(time.Millisecond))
	id, err := g.Next()
	if err == nil {
		t.Fatalf("got id %d, want an error past the end of the layout", id)
	}
	if want := "past the last timestamp"; !strings.Contains(err.Error(), want) {
		t.Errorf("got error %q, want it to contain %q", err, want)
	}
	// A failed call must not consume state: stepping back into the last
	// millisecond continues the sequence instead of repeating it.
	clock.Set(start)
	next := mustNext(t, g)
	if next <= last {
		t.Errorf("got id %d, want greater than %d", next, last)
	}
}

func TestIDJSONRoundTrip(t *testing.T) {
	tests := []ID{0, 1, 1<<53 + 1, 6291595264, 1<<63 - 1}
	for _, id := range tests {
		t.Run(id.String(), func(t *testing.T) {
			b, err := json.Marshal(map[string]ID{"id": id})
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"id":"%d"}`, int64(id)); string(b) != want {
				t.Errorf("got JSON %s, want %s", b, want)
			}
			var got map[string]ID
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got["id"] != id {
				t.Errorf("got id %d, want %d", got["id"], id)
			}
		})
	}
}

func TestIDUnmarshalTextErrors(t *testing.T) {
	for _, in := range []string{`""`, `"-1"`, `"abc"`, `"1.5"`} {
		var id ID
		if err := json.Unmarshal([]byte(in), &id); err == nil {
			t.Errorf("Unmarshal(%s): got id %d, want an error", in, id)
		}
	}
}

func TestParseString(t *testing.T) {
	id := ID(1500<<22 | 1<<17 | 2<<12 | 7)
	got, err := ParseString(id.String(), time.Time{})
	if err != nil {
		t.Fatalf("ParseString(%q): %v", id.String(), err)
	}
	want := Parts{Time: DefaultEpoch.Add(1500 * time.Millisecond), Datacenter: 1, Worker: 2, Sequence: 7}
	if !got.Time.Equal(want.Time) || got.Datacenter != want.Datacenter || got.Worker != want.Worker || got.Sequence != want.Sequence {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseStringErrors(t *testing.T) {
	const wantRange = "is not a decimal integer in 0..9223372036854775807"
	tests := []struct {
		in      string
		wantErr string
	}{
		{in: "", wantErr: `idgen: id "" ` + wantRange},
		{in: "abc", wantErr: `idgen: id "abc" ` + wantRange},
		{in: "-1", wantErr: `idgen: id "-1" ` + wantRange},
		{in: "12a", wantErr: `idgen: id "12a" ` + wantRange},
		{in: " 12", wantErr: `idgen: id " 12" ` + wantRange},
		{in: "0x10", wantErr: `idgen: id "0x10" ` + wantRange},
		{in: "9223372036854775808", wantErr: `idgen: id "9223372036854775808" ` + wantRange},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParseString(tt.in, time.Time{})
			if err == nil {
				t.Fatalf("got %+v, want error %q", p, tt.wantErr)
			}
			if got := err.Error(); got != tt.wantErr {
				t.Errorf("got error %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func ExampleGenerator_Next() {
	// A fixed clock makes the output reproducible; production code leaves
	// Now and Sleep nil.
	now := DefaultEpoch.Add(1500 * time.Millisecond)
	g, err := New(Config{
		Datacenter: 1,
		Worker:     2,
		Now:        func() time.Time { return now },
		Sleep:      func(d time.Duration) { now = now.Add(d) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		id, err := g.Next()
		if err != nil {
			fmt.Println(err)
			return
		}
		p, _ := Parse(id, g.Epoch())
		fmt.Println(id, p.Time.Format(time.RFC3339Nano), p.Datacenter, p.Worker, p.Sequence)
	}
	// Output:
	// 6291595264 2025-01-01T00:00:01.5Z 1 2 0
	// 6291595265 2025-01-01T00:00:01.5Z 1 2 1
}
