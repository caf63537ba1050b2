package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/gslbd/gslbd/gslb/admin"
	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/health/fleet"
)

// newFleet joins the fleet the configuration names, or does nothing when
// fleet.enabled is off. It runs after the health manager knows its
// endpoints: the first read of the fleet needs them. Another live
// instance with this one's name or idgen pair is a start-up error, except
// the predecessor this one takes over from.
func (d *daemon) newFleet(cfg *config.Config, pool *socketPool) error {
	if !cfg.Fleet.Enabled {
		return nil
	}
	fc := cfg.Fleet
	var err error
	if d.fleetRedis, err = offPathRedis(cfg.Sessions.Redis); err != nil {
		return err
	}
	opts := fleet.Options{
		Client: d.fleetRedis, Prefix: fc.KeyPrefix, Instance: cfg.Instance.Name,
		WorkerKey: fmt.Sprintf("%d/%d", cfg.Instance.DatacenterID, cfg.Instance.WorkerID),
		Quorum:    fc.Quorum, MinVerdicts: fc.MinVerdicts, Interval: fc.Interval, VerdictTTL: fc.VerdictTTL,
		Grace: fc.Grace, MaxClockSkew: fc.MaxClockSkew, StateFile: cfg.FleetStatePath(),
		Health: d.health, Registerer: d.reg, Log: d.log.With("component", "fleet"),
	}
	if pool != nil {
		opts.Predecessor = pool.pid // a hand-over: the same instance restarting
	}
	if fc.ProbeSharing {
		opts.ProbersPerEndpoint = fc.ProbersPerEndpoint
	}
	d.fleet = fleet.New(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*fc.VerdictTTL+5*time.Second)
	defer cancel()
	if err := d.fleet.Register(ctx); err != nil {
		d.fleetRedis.Close()
		return err
	}
	if warm := d.fleet.Start(ctx); warm != "" {
		d.log.Info("warm start: serving from the "+warm+" view until this instance's own probes have run", "component", "fleet")
	}
	return nil
}

// offPathRedis connects to sessions.redis for work off the query path
// (ACME records, the fleet), which may wait a second for Redis.
func offPathRedis(rc config.SessionRedis) (redis.UniversalClient, error) {
	tlsCfg, err := redisTLS(rc.TLS)
	if err != nil {
		return nil, err
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: rc.Addrs, MasterName: rc.MasterName, Username: rc.Username, Password: rc.Password,
		DB: rc.DB, TLSConfig: tlsCfg,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		ContextTimeoutEnabled:    true,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}), nil
}

// runFleet publishes and reads until ctx is done.
func (d *daemon) runFleet(ctx context.Context) {
	if d.fleet != nil {
		go d.fleet.Run(ctx)
	}
}

func (d *daemon) closeFleet() {
	if d.fleet != nil {
		d.fleet.Close()
		d.fleetRedis.Close()
	}
}

// waitReadyFleet is waitReady, except that a warm start is ready at once:
// the fleet's fresh verdicts (or the state file's view) answer until this
// instance's own probes have run.
func (d *daemon) waitReadyFleet(ctx context.Context, timeout time.Duration) {
	if d.fleet == nil || d.fleet.WarmStart() == "" {
		d.waitReady(ctx, timeout)
		return
	}
	d.applyHealth()
}

// readyDetail tells /readyz where answers come from.
func (d *daemon) readyDetail() map[string]any {
	if d.fleet == nil {
		return nil
	}
	probes := "first round done"
	if !d.health.FirstRoundDone() {
		probes = "first round running"
	}
	warm := d.fleet.WarmStart()
	if warm == "" {
		warm = "none"
	}
	return map[string]any{"view": d.fleet.Source(), "warm_start": warm, "probes": probes}
}

// healthAdmin is what the admin API sees of health: the manager itself,
// or with a fleet, the manager's status plus the fleet's, and overrides
// that go to every instance.
func (d *daemon) healthAdmin() admin.Health {
	if d.fleet == nil {
		return d.health
	}
	return fleetHealth{d: d, instance: d.cfg.Instance.Name}
}

// fleetHealth keeps the instance's name (restart-only): d.cfg is the
// reload's to swap.
type fleetHealth struct {
	d        *daemon
	instance string
}

// fleetStatus keeps the manager's fields where they were (datacenters)
// and adds the fleet's beside them.
type fleetStatus struct {
	health.Status
	Fleet fleet.Status `json:"fleet"`
}

func (h fleetHealth) StatusJSON() any {
	return fleetStatus{Status: h.d.health.Status(), Fleet: h.d.fleet.Status()}
}

func (h fleetHealth) Override(dc, endpoint, state, reason string) error {
	return h.OverrideBy(dc, endpoint, state, reason, "")
}

func (h fleetHealth) OverrideBy(dc, endpoint, state, reason, by string) error {
	by = strings.TrimSpace(by + " via instance " + h.instance)
	return h.d.fleet.Override(context.Background(), dc, endpoint, state, reason, by)
}
