package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/session/redisstore"
)

// Replicator states, as status reports them.
const (
	stateStarting    = "starting"
	stateStreaming   = "streaming"
	stateResyncing   = "resyncing"
	stateUnreachable = "unreachable"
)

// maxConflictLogs bounds the conflict lines logged per batch: a burst of
// conflicts is counted in full, and a sample is enough to investigate.
const maxConflictLogs = 5

// replicator copies one peer's changes here.
type replicator struct {
	mg   *Manager
	peer Peer
	log  *slog.Logger

	lagG                                   prometheus.Gauge
	appliedC, conflictsC, staleC, resyncsC prometheus.Counter
	malformed, peerErr, localErr           prometheus.Counter

	mu         sync.Mutex
	state      string
	checkpoint string
	cpN        int64 // the checkpoint's sequence number
	lagSeconds float64
	caughtUp   time.Time // last time a read found nothing newer
	nApplied   int64
	nResyncs   int64
	lastErr    string
	lastResync time.Time
}

func newReplicator(mg *Manager, p Peer) *replicator {
	m := mg.m
	r := &replicator{
		mg: mg, peer: p, state: stateStarting, caughtUp: time.Now(),
		log:        mg.o.Log.With("peer", p.Datacenter),
		lagG:       m.lag.WithLabelValues(p.Datacenter),
		appliedC:   m.applied.WithLabelValues(p.Datacenter),
		conflictsC: m.conflicts.WithLabelValues(p.Datacenter),
		staleC:     m.stale.WithLabelValues(p.Datacenter),
		resyncsC:   m.resyncs.WithLabelValues(p.Datacenter),
		malformed:  m.errors.WithLabelValues(p.Datacenter, "malformed"),
		peerErr:    m.errors.WithLabelValues(p.Datacenter, "peer"),
		localErr:   m.errors.WithLabelValues(p.Datacenter, "local"),
	}
	return r
}

// errLocal marks a failure of this datacenter's Redis, counted apart from
// the peer's.
type errLocal struct{ err error }

func (e errLocal) Error() string { return e.err.Error() }
func (e errLocal) Unwrap() error { return e.err }

func (r *replicator) run(ctx context.Context) {
	done := make(chan struct{})
	defer close(done)
	go r.tickLag(ctx, done)
	backoff := r.mg.o.MinBackoff
	for {
		progressed, err := r.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = r.mg.o.MinBackoff
		}
		var le errLocal
		if errors.As(err, &le) {
			r.localErr.Inc()
		} else {
			r.peerErr.Inc()
		}
		r.mu.Lock()
		was := r.state
		r.state, r.lastErr = stateUnreachable, err.Error()
		r.mu.Unlock()
		if was != stateUnreachable {
			r.log.Warn("replication from the peer failed; retrying with backoff from the checkpoint", "err", err)
		} else {
			r.log.Debug("replication from the peer failed again", "err", err)
		}
		// Half the backoff plus up to half again, so replicators of several
		// instances do not retry in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, r.mg.o.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// tickLag keeps the lag growing while the peer cannot be read: the loop
// sets it only when a read succeeds.
func (r *replicator) tickLag(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
		}
		r.mu.Lock()
		if r.state != stateStreaming {
			r.setLagLocked(time.Since(r.caughtUp))
		}
		r.mu.Unlock()
	}
}

func (r *replicator) setLagLocked(d time.Duration) {
	r.lagSeconds = max(d.Seconds(), 0)
	r.lagG.Set(r.lagSeconds)
}

// stream replicates until an error. progressed reports whether any read
// succeeded, which resets the backoff.
func (r *replicator) stream(ctx context.Context) (progressed bool, err error) {
	local, peer := r.mg.o.Local, r.peer.Store
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	cp, cpN, err := local.Checkpoint(cctx, r.peer.Datacenter)
	cancel()
	if err != nil {
		return false, errLocal{err}
	}
	r.mu.Lock()
	r.checkpoint, r.cpN = cp, cpN
	r.mu.Unlock()
	if cp == "" {
		if cp, cpN, err = r.resync(ctx, "no checkpoint yet: first replication from this peer"); err != nil {
			return false, err
		}
	}
	// One read is in flight at most. When caught up it is a blocking read
	// that the peer answers the moment a change arrives, so a change
	// waits about one trip across the link; when behind, a plain read,
	// sent while the previous batch is applied.
	reads := make(chan readResult, 1)
	read := func(after string, afterN int64, wait bool) {
		go func() {
			var b redisstore.Batch
			var err error
			if wait {
				rctx, cancel := context.WithTimeout(ctx, r.mg.o.Block+opTimeout)
				defer cancel()
				b, err = peer.WaitChanges(rctx, after, afterN, r.mg.o.Batch, r.mg.o.Block)
			} else {
				rctx, cancel := context.WithTimeout(ctx, opTimeout)
				defer cancel()
				b, err = peer.ReadChanges(rctx, after, afterN, r.mg.o.Batch)
			}
			reads <- readResult{b, wait, err}
		}()
	}
	read(cp, cpN, false)
	for {
		var res readResult
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case res = <-reads:
		}
		if res.err != nil {
			return progressed, res.err
		}
		progressed = true
		b := res.b
		if b.Gap {
			if cp, cpN, err = r.resync(ctx, "the peer's log was trimmed past the checkpoint, or started over"); err != nil {
				return progressed, err
			}
			read(cp, cpN, false)
			continue
		}
		if b.Last == "" {
			r.mu.Lock()
			r.state, r.caughtUp = stateStreaming, time.Now()
			r.setLagLocked(0)
			r.mu.Unlock()
			// A wait that found nothing cannot tell an idle log from one
			// trimmed to nothing; a plain read checks its counter.
			read(cp, cpN, !res.waited)
			continue
		}
		r.mu.Lock()
		r.state = stateStreaming
		r.setLagLocked(time.Since(redisstore.IDTime(first(b))))
		r.mu.Unlock()
		full := int64(len(b.Changes)+len(b.Malformed)) >= r.mg.o.Batch
		read(b.Last, b.LastN, !full)
		for _, m := range b.Malformed {
			r.malformed.Inc()
			r.log.Warn("skipping a malformed change log entry", "id", m.ID, "err", m.Err)
		}
		if err := r.apply(ctx, b.Last, b.LastN, b.Changes, false); err != nil {
			return progressed, err
		}
		cp, cpN = b.Last, b.LastN
	}
}

type readResult struct {
	b      redisstore.Batch
	waited bool // from WaitChanges
	err    error
}

// first is the ID of a batch's first entry, malformed or not.
func first(b redisstore.Batch) string {
	id := b.Last
	if len(b.Changes) > 0 && redisstore.CompareIDs(b.Changes[0].ID, id) < 0 {
		id = b.Changes[0].ID
	}
	if len(b.Malformed) > 0 && redisstore.CompareIDs(b.Malformed[0].ID, id) < 0 {
		id = b.Malformed[0].ID
	}
	return id
}

// apply applies changes and moves the checkpoint to last (numbered
// lastN; "": leave it), in one script.
func (r *replicator) apply(ctx context.Context, last string, lastN int64, changes []redisstore.Change, resync bool) error {
	actx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if r.mg.o.beforeApply != nil {
		r.mg.o.beforeApply(r.peer.Datacenter, cancel)
	}
	res, err := r.mg.o.Local.Apply(actx, r.peer.Datacenter, last, lastN, changes, resync)
	if err != nil {
		return errLocal{err}
	}
	at := time.Now()
	if r.mg.o.Changed != nil && len(changes) > 0 {
		r.mg.o.Changed(changes)
	}
	if r.mg.o.applied != nil {
		r.mg.o.applied(r.peer.Datacenter, changes, at)
	}
	r.appliedC.Add(float64(res.Applied + res.Refreshed))
	r.staleC.Add(float64(res.Stale))
	r.conflictsC.Add(float64(len(res.Conflicts)))
	for i, k := range res.Conflicts {
		if i == maxConflictLogs {
			r.log.Warn("more concurrent writes in this batch", "count", len(res.Conflicts)-i)
			break
		}
		r.log.Warn("concurrent writes to a session in two datacenters; the newer version wins everywhere", "key", k)
	}
	if res.Demoted > 0 {
		r.log.Warn("the peer was promoted to primary; this datacenter is now a standby")
	}
	r.mu.Lock()
	r.nApplied += int64(res.Applied + res.Refreshed)
	if last != "" && (r.checkpoint == "" || redisstore.CompareIDs(last, r.checkpoint) > 0) {
		r.checkpoint, r.cpN = last, lastN
	}
	r.mu.Unlock()
	return nil
}

// resync copies the peer's whole session keyspace, then continues from
// the log's end as it was before the copy began: changes made during the
// copy are in the log after that point, and applying one twice is
// harmless because versions decide.
func (r *replicator) resync(ctx context.Context, why string) (string, int64, error) {
	start := time.Now()
	r.mu.Lock()
	r.state = stateResyncing
	cp := r.checkpoint
	r.mu.Unlock()
	r.log.Warn("resynchronising the whole session keyspace from the peer", "reason", why, "checkpoint", cp)
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	last, lastN, err := r.peer.Store.LastChangeID(cctx)
	cancel()
	if err != nil {
		return "", 0, err
	}
	var cursor uint64
	keys := 0
	for {
		sctx, cancel := context.WithTimeout(ctx, opTimeout)
		changes, next, err := r.peer.Store.ScanChanges(sctx, cursor, r.mg.o.Batch)
		cancel()
		if err != nil {
			return "", 0, fmt.Errorf("resync: %w", err)
		}
		if len(changes) > 0 {
			if err := r.apply(ctx, "", 0, changes, true); err != nil {
				return "", 0, err
			}
			keys += len(changes)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	// A promote is in the log, not in the keyspace: the peer's role,
	// read after the log's end was noted, stands for the entries skipped.
	var role []redisstore.Change
	cctx, cancel = context.WithTimeout(ctx, opTimeout)
	st, err := r.peer.Store.Role(cctx)
	cancel()
	if err != nil {
		return "", 0, fmt.Errorf("resync: %w", err)
	}
	if st.Role == redisstore.RolePrimary && st.Term != "0" {
		role = append(role, redisstore.Change{Op: "promote", Version: st.Term, Origin: st.Primary})
	}
	// The checkpoint is set even if it is older than the one stored: a
	// log that started over (the peer's Redis lost its data) has IDs and
	// numbers of its own.
	if err := r.apply(ctx, last, lastN, role, true); err != nil {
		return "", 0, err
	}
	r.resyncsC.Inc()
	r.mu.Lock()
	r.nResyncs++
	r.lastResync = time.Now()
	r.checkpoint, r.cpN = last, lastN
	r.mu.Unlock()
	r.log.Info("resync done", "keys", keys, "checkpoint", last, "took", time.Since(start).String())
	return last, lastN, nil
}

func (r *replicator) status() PeerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := PeerStatus{
		Datacenter: r.peer.Datacenter, Addr: r.peer.Addr, State: r.state, Checkpoint: r.checkpoint,
		LagSeconds: r.lagSeconds, Applied: r.nApplied, Resyncs: r.nResyncs, LastError: r.lastErr,
	}
	if !r.lastResync.IsZero() {
		t := r.lastResync
		ps.LastResync = &t
	}
	return ps
}
