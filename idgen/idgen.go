package idgen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
)

// ID is a Snowflake ID. It is an int64 rather than a uint64 so it fits
// signed database columns and languages without unsigned integers.
type ID int64

// String returns the ID in decimal.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// MarshalText encodes the ID in decimal, which makes encoding/json emit a
// string: JSON numbers above 2^53 are rounded by JavaScript clients.
func (id ID) MarshalText() ([]byte, error) {
	return strconv.AppendInt(nil, int64(id), 10), nil
}

// UnmarshalText accepts the decimal form written by MarshalText and rejects
// negative values, which no generator can issue.
func (id *ID) UnmarshalText(text []byte) error {
	v, err := parseDecimal(string(text))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// DefaultEpoch is the epoch used when none is configured. A Unix epoch would
// spend most of the 41-bit range on the past and run out in 2039; starting
// the count recently gives the full ~69 years, until 2094.
var DefaultEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Field limits of the bit layout.
const (
	MaxDatacenter = 1<<datacenterBits - 1
	MaxWorker     = 1<<workerBits - 1
	MaxSequence   = 1<<sequenceBits - 1
)

const (
	timeBits       = 41
	datacenterBits = 5
	workerBits     = 5
	sequenceBits   = 12

	workerShift     = sequenceBits
	datacenterShift = workerShift + workerBits
	timeShift       = datacenterShift + datacenterBits

	maxMillis = 1<<timeBits - 1

	defaultMaxBackwards = time.Second
)

// ErrClockBackwards is returned, wrapped with how far the clock is behind,
// when the clock stays behind the last issued ID for longer than
// Config.MaxBackwards. Issuing an ID then could duplicate or reorder IDs.
var ErrClockBackwards = errors.New("idgen: clock moved backwards")

// Config configures a Generator.
type Config struct {
	// Epoch is the instant that timestamp 0 stands for. Zero means
	// DefaultEpoch. Every generator and parser of one deployment must agree
	// on it, and it cannot change once IDs exist.
	Epoch time.Time

	// Datacenter and Worker, each 0..31, tell generators apart; each
	// running generator needs a distinct pair.
	Datacenter int
	Worker     int

	// MaxBackwards bounds how long Next waits for a clock that stepped back
	// to catch up with the last issued ID before it fails with
	// ErrClockBackwards. Zero means the default of one second, which rides
	// out typical NTP step corrections; a negative value fails at once.
	// Next holds the generator's lock while it waits, so callers queue.
	MaxBackwards time.Duration

	// Now and Sleep default to time.Now and time.Sleep; tests inject a fake
	// clock through them.
	Now   func() time.Time
	Sleep func(time.Duration)
}

// Generator issues IDs. It is safe for concurrent use.
type Generator struct {
	epoch        time.Time
	node         int64 // datacenter and worker bits, already shifted
	maxBackwards time.Duration
	now          func() time.Time
	sleep        func(time.Duration)

	mu sync.Mutex
	// lastMillis and sequence describe the last issued ID. sequence starts
	// at -1 so that the first ID, even at millisecond 0, gets sequence 0.
	lastMillis int64
	sequence   int64
}

// New validates cfg and returns a Generator.
func New(cfg Config) (*Generator, error) {
	if cfg.Datacenter < 0 || cfg.Datacenter > MaxDatacenter {
		return nil, fmt.Errorf("idgen: datacenter %d is outside 0..%d", cfg.Datacenter, MaxDatacenter)
	}
	if cfg.Worker < 0 || cfg.Worker > MaxWorker {
		return nil, fmt.Errorf("idgen: worker %d is outside 0..%d", cfg.Worker, MaxWorker)
	}
	g := &Generator{
		epoch:        normaliseEpoch(cfg.Epoch),
		node:         int64(cfg.Datacenter)<<datacenterShift | int64(cfg.Worker)<<workerShift,
		maxBackwards: cfg.MaxBackwards,
		now:          cfg.Now,
		sleep:        cfg.Sleep,
		sequence:     -1,
	}
	if g.maxBackwards == 0 {
		g.maxBackwards = defaultMaxBackwards
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.sleep == nil {
		g.sleep = time.Sleep
	}
	now := g.now()
	if now.Before(g.epoch) {
		return nil, fmt.Errorf("idgen: epoch %s is in the future (now %s)",
			g.epoch.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	}
	if g.millis(now) > maxMillis {
		return nil, fmt.Errorf("idgen: epoch %s is more than 2^41 ms (about 69 years) before now %s, so no timestamps are left",
			g.epoch.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	}
	return g, nil
}

// normaliseEpoch applies the default and strips any monotonic clock
// reading. With the reading stripped, Now().Sub(epoch) is always computed
// from wall clocks, even if the caller built the epoch from time.Now. That
// is deliberate: an ID's timestamp must be wall time so that IDs from
// different hosts and from before a restart order against each other and
// Parse returns a real instant. The price is that a wall clock step reaches
// the generator; Next detects a step backwards instead of hiding it, which
// the monotonic clock would do only until the process restarts and
// re-reads the (earlier) wall time.
func normaliseEpoch(epoch time.Time) time.Time {
	if epoch.IsZero() {
		return DefaultEpoch
	}
	return epoch.Round(0)
}

// Epoch returns the epoch IDs are counted from.
func (g *Generator) Epoch() time.Time { return g.epoch }

// Next returns a new ID, greater than every ID this generator returned
// before. When the millisecond's 4096 sequence numbers are used up it waits
// for the next millisecond. When the clock reads earlier than the last
// issued ID it waits up to Config.MaxBackwards for the clock to catch up and
// otherwise returns an error wrapping ErrClockBackwards; it never returns a
// duplicate.
func (g *Generator) Next() (ID, error) {
	g.mu.Lock()
	defer g.mu.Unlock()

	ms, err := g.waitUntil(g.lastMillis)
	if err != nil {
		return 0, err
	}
	var seq int64
	if ms == g.lastMillis {
		if g.sequence < MaxSequence {
			seq = g.sequence + 1
		} else if ms, err = g.waitUntil(g.lastMillis + 1); err != nil {
			return 0, err
		}
	}
	if ms > maxMillis {
		// Wrapping into the sign bit would produce negative, non-increasing
		// IDs, so the generator stops for good here.
		return 0, fmt.Errorf("idgen: clock reads %s, past the last timestamp the layout can hold (%s)",
			g.epoch.Add(time.Duration(ms)*time.Millisecond).Format(time.RFC3339Nano),
			g.epoch.Add(maxMillis*time.Millisecond).Format(time.RFC3339Nano))
	}
	// State changes only once an ID is certain, so a failed call cannot
	// leave a sequence behind that a later call would reuse.
	g.lastMillis, g.sequence = ms, seq
	return ID(ms<<timeShift | g.node | seq), nil
}

// waitUntil returns the clock's millisecond once it is at least target.
// Sleeping while the clock merely has not reached the next millisecond is
// unbounded, since that takes under a millisecond on a sane clock; only time
// spent with the clock behind the last issued ID counts against
// MaxBackwards. Sleep durations, not Now, measure that budget because Now is
// the clock that cannot be trusted.
func (g *Generator) waitUntil(target int64) (int64, error) {
	var waited time.Duration
	for {
		now := g.now()
		ms := g.millis(now)
		if ms >= target {
			return ms, nil
		}
		d := g.epoch.Add(time.Duration(target) * time.Millisecond).Sub(now)
		if ms < g.lastMillis {
			if waited >= g.maxBackwards {
				behind := g.epoch.Add(time.Duration(g.lastMillis) * time.Millisecond).Sub(now)
				return 0, fmt.Errorf("%w: %v behind the last issued id after waiting %v",
					ErrClockBackwards, behind, waited)
			}
			d = min(d, g.maxBackwards-waited)
			waited += d
		}
		g.sleep(d)
	}
}

// millis floors rather than truncates so that an instant just before the
// epoch counts as millisecond -1 and is handled as a clock behind the
// last ID instead of aliasing millisecond 0.
func (g *Generator) millis(t time.Time) int64 {
	d := t.Sub(g.epoch)
	ms := int64(d / time.Millisecond)
	if d < 0 && d%time.Millisecond != 0 {
		ms--
	}
	return ms
}

// Parts are the fields of an ID.
type Parts struct {
	Time       time.Time
	Datacenter int
	Worker     int
	Sequence   int
}

// Parse splits id into its fields. epoch must be the one the ID was
// generated with; zero means DefaultEpoch.
func Parse(id ID, epoch time.Time) (Parts, error) {
	if id < 0 {
		return Parts{}, fmt.Errorf("idgen: id %d is negative; ids are in 0..%d", int64(id), int64(math.MaxInt64))
	}
	v := int64(id)
	return Parts{
		Time:       normaliseEpoch(epoch).Add(time.Duration(v>>timeShift) * time.Millisecond),
		Datacenter: int((v >> datacenterShift) & MaxDatacenter),
		Worker:     int((v >> workerShift) & MaxWorker),
		Sequence:   int(v & MaxSequence),
	}, nil
}

// ParseString parses a decimal ID, as produced by ID.String, and splits it
// like Parse.
func ParseString(s string, epoch time.Time) (Parts, error) {
	id, err := parseDecimal(s)
	if err != nil {
		return Parts{}, err
	}
	return Parse(id, epoch)
}

func parseDecimal(s string) (ID, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("idgen: id %q is not a decimal integer in 0..%d", s, int64(math.MaxInt64))
	}
	return ID(v), nil
}
