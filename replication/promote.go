package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session/redisstore"
)

// Promote errors; the admin API maps them to status codes.
var (
	// ErrNotActivePassive: promote means nothing in active-active, where
	// every datacenter writes.
	ErrNotActivePassive = errors.New("replication: promote needs mode active-passive")
	// ErrNotDrained: a peer could not be fenced or its log not applied
	// here within the timeout; the role did not change. Peers that were
	// fenced stay standbys: retry, or promote with force.
	ErrNotDrained = errors.New("replication: not every peer's changes were applied within the timeout")
	// ErrBusy: another promote is running.
	ErrBusy = errors.New("replication: a promote is already running")
)

// PromoteRequest is the body of POST /api/v1/replication/promote.
type PromoteRequest struct {
	// Timeout bounds the wait for the peers' changes; 0: the configured
	// promote timeout.
	Timeout time.Duration `json:"-"`
	// Force promotes even if a peer could not be fenced or drained: what
	// it wrote and this datacenter has not applied arrives later and is
	// merged by version, and until it reads this datacenter's log it may
	// still take writes.
	Force bool `json:"force"`
}

// PromoteResult reports a promote.
type PromoteResult struct {
	Promoted bool          `json:"promoted"`
	Role     string        `json:"role"`
	Term     string        `json:"term,omitempty"`
	Waited   string        `json:"waited"`
	Peers    []PromotePeer `json:"peers"`
}

// PromotePeer is what a promote did with one peer.
type PromotePeer struct {
	Datacenter string `json:"datacenter"`
	// Fenced: the peer's Redis now refuses session writes, so its log
	// ends where it is.
	Fenced bool `json:"fenced"`
	// Target is the last ID of the peer's log after fencing: what this
	// datacenter had to apply.
	Target     string `json:"target,omitempty"`
	Checkpoint string `json:"checkpoint,omitempty"`
	Drained    bool   `json:"drained"`
	Error      string `json:"error,omitempty"`
}

// Promote makes this datacenter the primary, as the origin's failover
// does: fence every peer (its Redis refuses session writes from then on),
// wait until this datacenter has applied each peer's log up to its end,
// then take the primary role, which is stored in the local Redis and
// logged, so a peer that could not be fenced learns it when it next reads
// this datacenter's log. Without Force, a peer that cannot be fenced or
// drained within the timeout fails the promote and the role stays.
func (mg *Manager) Promote(ctx context.Context, req PromoteRequest) (PromoteResult, error) {
	if mg.o.Mode != ActivePassive {
		return PromoteResult{}, ErrNotActivePassive
	}
	if !mg.promote.TryLock() {
		return PromoteResult{}, ErrBusy
	}
	defer mg.promote.Unlock()
	start := time.Now()
	timeout := cmp(req.Timeout, mg.o.PromoteTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := PromoteResult{Peers: make([]PromotePeer, len(mg.reps))}
	st, err := mg.o.Local.Role(ctx)
	if err != nil {
		mg.m.promotes.WithLabelValues("failed").Inc()
		return res, fmt.Errorf("replication: promote: reading this datacenter's role: %w", err)
	}
	if st.Role == redisstore.RolePrimary {
		mg.m.promotes.WithLabelValues("already_primary").Inc()
		res.Role, res.Term, res.Waited = st.Role, st.Term, time.Since(start).String()
		for i, r := range mg.reps {
			res.Peers[i] = PromotePeer{Datacenter: r.peer.Datacenter}
		}
		return res, nil
	}
	term, err := mg.o.IDs.Next()
	if err != nil {
		mg.m.promotes.WithLabelValues("failed").Inc()
		return res, fmt.Errorf("replication: promote: term: %w", err)
	}
	mg.o.Log.Warn("promote: fencing peers and waiting for their changes", "term", term.String(), "timeout", timeout.String(), "force", req.Force)
	var wg sync.WaitGroup
	for i, r := range mg.reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Peers[i] = mg.drain(ctx, r, term, req.Force)
		}()
	}
	wg.Wait()
	all := true
	for _, p := range res.Peers {
		all = all && p.Drained
	}
	res.Waited = time.Since(start).String()
	if !all && !req.Force {
		mg.m.promotes.WithLabelValues("failed").Inc()
		res.Role = redisstore.RoleStandby
		mg.o.Log.Error("promote failed: a peer was not fenced or drained in time; the role is unchanged", "peers", res.Peers)
		return res, ErrNotDrained
	}
	// The role change gets its own short deadline: the wait may have used
	// up the request's.
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer pcancel()
	changed, err := mg.o.Local.Promote(pctx, term, mg.o.Datacenter)
	if err != nil {
		mg.m.promotes.WithLabelValues("failed").Inc()
		return res, fmt.Errorf("replication: promote: %w", err)
	}
	res.Promoted, res.Term = changed, term.String()
	res.Role = redisstore.RolePrimary
	if !changed {
		// A newer term was stored meanwhile (another promote): report it.
		if st, err := mg.o.Local.Role(pctx); err == nil {
			res.Role, res.Term = st.Role, st.Term
		}
		mg.m.promotes.WithLabelValues("failed").Inc()
		return res, nil
	}
	mg.m.promotes.WithLabelValues("promoted").Inc()
	mg.m.primary.Set(1)
	mg.o.Log.Warn("promoted: this datacenter is the primary", "term", term.String(), "waited", res.Waited, "peers", res.Peers)
	return res, nil
}

// drain fences one peer and waits until its log is applied here. A peer
// that cannot be reached is retried until ctx ends, unless force, which
// tries it once: the operator has said it is gone.
func (mg *Manager) drain(ctx context.Context, r *replicator, term idgen.ID, force bool) PromotePeer {
	p := PromotePeer{Datacenter: r.peer.Datacenter}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		err := mg.fenceOnce(ctx, r, term, &p)
		if err == nil {
			break
		}
		p.Error = err.Error()
		if force {
			return p
		}
		select {
		case <-ctx.Done():
			return p
		case <-poll.C:
		}
	}
	p.Error = ""
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		cp, _, err := mg.o.Local.Checkpoint(cctx, r.peer.Datacenter)
		cancel()
		if err == nil {
			p.Checkpoint = cp
			if redisstore.CompareIDs(cp, p.Target) >= 0 {
				p.Drained = true
				return p
			}
		}
		select {
		case <-ctx.Done():
			p.Error = "its log was not applied here up to " + p.Target + " in time"
			return p
		case <-poll.C:
		}
	}
}

func (mg *Manager) fenceOnce(ctx context.Context, r *replicator, term idgen.ID, p *PromotePeer) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	changed, err := r.peer.Store.Fence(cctx, term, mg.o.Datacenter)
	if err != nil {
		return err
	}
	if !changed {
		return errors.New("the peer knows a newer term: another promote ran")
	}
	p.Fenced = true
	// Read after fencing: the peer's scripts refuse writes from now on,
	// so nothing can follow this ID.
	last, _, err := r.peer.Store.LastChangeID(cctx)
	if err != nil {
		return err
	}
	p.Target = last
	return nil
}
