package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gslbd/gslbd/gslb/admin"
	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/replication"
	"github.com/gslbd/gslbd/session/redisstore"
)

// Replication's own connections wait longer than the DNS path's: they
// cross a WAN and carry batches, and nothing waits on them but a
// replicator.
const (
	replTimeout  = 5 * time.Second
	replPoolSize = 4
)

// replicationRunner is the daemon's replication: a Manager, the stores
// it opened and the goroutine it runs in.
type replicationRunner struct {
	cfg    config.Replication
	mg     *replication.Manager
	stores []*redisstore.Store
	stop   context.CancelFunc
	done   chan struct{}
}

// newReplication builds replication when configured, or returns nil. It
// does not connect: like sessions, it starts while peers are unreachable.
func (d *daemon) newReplication(cfg *config.Config) (*replicationRunner, error) {
	rc := cfg.Replication
	if !rc.Enabled() {
		return nil, nil
	}
	r := &replicationRunner{cfg: rc}
	sr := cfg.Sessions.Redis
	tlsCfg, err := redisTLS(sr.TLS)
	if err != nil {
		return nil, err
	}
	local, err := redisstore.New(redisstore.Options{
		Addrs: sr.Addrs, MasterName: sr.MasterName, Username: sr.Username, Password: sr.Password,
		DB: sr.DB, TLS: tlsCfg, KeyPrefix: sr.KeyPrefix,
		DialTimeout: replTimeout, ReadTimeout: replTimeout, WriteTimeout: replTimeout, PoolTimeout: replTimeout,
		PoolSize:    replPoolSize,
		Replication: r.storeOptions(cfg, d, cfg.Instance.Datacenter),
	})
	if err != nil {
		return nil, fmt.Errorf("replication: local redis: %w", err)
	}
	r.stores = append(r.stores, local)
	o := replication.Options{
		Mode: rc.Mode, Datacenter: cfg.Instance.Datacenter, Role: rc.Role, Local: local, IDs: d.ids,
		Batch: int64(rc.Batch), PromoteTimeout: rc.PromoteTimeout,
		Registerer: d.reg, Log: d.log.With("component", "replication"),
		Changed: d.forgetSessions,
	}
	for i, p := range rc.Peers {
		tlsCfg, err := redisTLS(p.TLS)
		if err != nil {
			_ = r.close()
			return nil, fmt.Errorf("replication.peers[%d].tls: %w", i, err)
		}
		st, err := redisstore.New(redisstore.Options{
			Addrs: p.Addrs, MasterName: p.MasterName, Username: p.Username, Password: p.Password,
			DB: p.DB, TLS: tlsCfg, KeyPrefix: sr.KeyPrefix,
			DialTimeout: replTimeout, ReadTimeout: replTimeout, WriteTimeout: replTimeout, PoolTimeout: replTimeout,
			PoolSize:    replPoolSize,
			Replication: r.storeOptions(cfg, d, p.Datacenter),
		})
		if err != nil {
			_ = r.close()
			return nil, fmt.Errorf("replication.peers[%d]: %w", i, err)
		}
		r.stores = append(r.stores, st)
		o.Peers = append(o.Peers, replication.Peer{Datacenter: p.Datacenter, Addr: strings.Join(p.Addrs, ","), Store: st})
	}
	if r.mg, err = replication.New(o); err != nil {
		_ = r.close()
		return nil, err
	}
	return r, nil
}

// storeOptions are the replication options of a store of datacenter dc:
// the sessions' store (which logs every write), the replicator's own
// connection to the local Redis, or a peer's.
func (r *replicationRunner) storeOptions(cfg *config.Config, d *daemon, dc string) *redisstore.Replication {
	o := &redisstore.Replication{
		Datacenter: dc, IDs: d.ids, Namespace: r.cfg.Namespace, MaxLen: r.cfg.MaxLen,
		ActivePassive: r.cfg.Mode == replication.ActivePassive, TombstoneTTL: r.cfg.TombstoneTTL,
	}
	if dc == cfg.Instance.Datacenter {
		o.Refused = func(n int) {
			if r.mg != nil {
				r.mg.Refused(n)
			}
		}
		o.Stale = func(n int) {
			if r.mg != nil {
				r.mg.Superseded(n)
			}
		}
	}
	return o
}

// sessionStore is what the session store needs to log its writes: nil
// when replication is off.
func (r *replicationRunner) sessionStore(cfg *config.Config, d *daemon) *redisstore.Replication {
	if r == nil {
		return nil
	}
	return r.storeOptions(cfg, d, cfg.Instance.Datacenter)
}

func (r *replicationRunner) start(ctx context.Context) {
	if r == nil {
		return
	}
	ctx, r.stop = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.mg.Run(ctx)
	}()
}

// close stops the replicators, then closes their connections, so none
// logs a failure for a connection closed under it.
func (r *replicationRunner) close() error {
	if r == nil {
		return nil
	}
	if r.stop != nil {
		r.stop()
		<-r.done
	}
	var errs []error
	for _, s := range r.stores {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// admin adapts the Manager to the admin API; nil when replication is off.
func (r *replicationRunner) admin() admin.Replication {
	if r == nil {
		return nil
	}
	return replicationAdmin{r.mg}
}

type replicationAdmin struct{ mg *replication.Manager }

func (a replicationAdmin) ReplicationStatus(ctx context.Context) any { return a.mg.Status(ctx) }

func (a replicationAdmin) Promote(ctx context.Context, timeout time.Duration, force bool) (any, error) {
	res, err := a.mg.Promote(ctx, replication.PromoteRequest{Timeout: timeout, Force: force})
	switch {
	case errors.Is(err, replication.ErrNotDrained):
		err = fmt.Errorf("%w: %w", admin.ErrPromoteTimeout, err)
	case errors.Is(err, replication.ErrBusy), errors.Is(err, replication.ErrNotActivePassive):
		err = fmt.Errorf("%w: %w", admin.ErrPromoteConflict, err)
	}
	return res, err
}

// forgetSessions drops this instance's cached copies of sessions another
// datacenter changed, unless already at that version: without it, a
// client this instance has answered before would keep the old datacenter
// for as long as it keeps asking.
func (d *daemon) forgetSessions(changes []redisstore.Change) {
	if d.affinity == nil {
		return
	}
	for _, c := range changes {
		service, client, ok := strings.Cut(c.Key, "|")
		p, err := netip.ParsePrefix(client)
		if !ok || err != nil {
			continue
		}
		v, _ := strconv.ParseInt(c.Version, 10, 64)
		d.affinity.Forget(service, p, idgen.ID(v))
	}
}
