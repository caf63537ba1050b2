package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/health"
)

// healthSpecs turns the configuration's checks and endpoints into what
// the health manager probes. Checks are converted once and shared, so
// endpoints of one check share its prober and HTTP transport.
func healthSpecs(cfg *config.Config) []health.DatacenterSpec {
	checks := map[string]*health.Check{}
	for name, hc := range cfg.HealthChecks {
		checks[name] = &health.Check{
			Name: name, Type: hc.Type, Port: hc.Port, Interval: hc.Interval, Timeout: hc.Timeout,
			Rise: hc.Rise, Fall: hc.Fall, Method: hc.Method, Path: hc.Path, Host: hc.Host,
			ExpectStatus: hc.ExpectStatus, BodyContains: hc.BodyContains, BodyLimit: hc.BodyLimit,
			TLS: health.TLSConfig{
				InsecureSkipVerify: hc.TLS.InsecureSkipVerify, ServerName: hc.TLS.ServerName,
				CAFile: hc.TLS.CAFile, CertFile: hc.TLS.CertFile, KeyFile: hc.TLS.KeyFile,
			},
			Send: hc.Send, Expect: hc.Expect, QueryName: hc.QueryName,
			QueryType: dns.StringToType[hc.QueryType], ExpectRcode: dns.StringToRcode[hc.ExpectRcode],
			ExpectAddress: hc.ExpectAddress,
		}
	}
	var specs []health.DatacenterSpec
	for _, dc := range cfg.Datacenters {
		spec := health.DatacenterSpec{ID: dc.ID, MinHealthy: dc.MinHealthy, SlowStart: dc.SlowStart}
		for _, ep := range dc.Endpoints {
			es := health.EndpointSpec{Address: ep.Address}
			if c := checks[ep.Check]; c != nil {
				es.Check = c
				es.Probe = netip.AddrPortFrom(ep.Address, c.Port)
				if ep.CheckAddress != "" {
					es.Probe, _ = config.ParseCheckAddress(ep.CheckAddress, c.Port) // validated at load
				}
			}
			spec.Endpoints = append(spec.Endpoints, es)
		}
		specs = append(specs, spec)
	}
	return specs
}

// applyHealth publishes the manager's current view as a new snapshot on
// top of the configuration's. It runs after every health change (the
// manager coalesces bursts) and during slow starts.
func (d *daemon) applyHealth() {
	d.swapMu.Lock()
	defer d.swapMu.Unlock()
	view := d.health.View()
	states := make(map[string]gslb.DCState, len(view.Datacenters))
	for id, v := range view.Datacenters {
		states[id] = gslb.DCState{Up: v.Up, Load: v.Load, LatencyMS: v.LatencyMS, Ramp: v.Ramp, Unsettled: v.Unsettled, Down: v.Down}
	}
	snap := d.base.WithHealth(states)
	old := d.dns.Snapshot()
	d.dns.Swap(snap)
	d.noteAllDown(old, snap)
	d.ramping.Store(view.Ramping)
}

// rampTicker republishes once a second while a datacenter is in slow
// start, so its share grows with time and not only when probes change.
func (d *daemon) rampTicker(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if d.ramping.Load() {
				d.applyHealth()
			}
		}
	}
}

// waitReady holds readiness until the first probe round is done, bounded
// by health.cold_start_timeout: the first answers are then not guesses.
func (d *daemon) waitReady(ctx context.Context, timeout time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if err := d.health.WaitFirstRound(wctx); err != nil {
		d.log.Warn(fmt.Sprintf("first probe round not finished after %s; ready anyway, unprobed endpoints count as up", timeout), "err", err)
	} else {
		d.log.Debug("first probe round done", "took", time.Since(start).String())
	}
	// Publish the round's results before declaring ready: the publisher
	// runs on its own goroutine and may not have got to them yet.
	d.applyHealth()
}

// notify hands a health event to every webhook (it never blocks) and
// keeps the most recent for the status page.
func (d *daemon) notify(e health.Event) {
	if d.fleet != nil && e.Kind == "endpoint" {
		d.fleet.Kick() // the fleet hears of a changed verdict now, not next round
	}
	for _, w := range d.webhooks {
		w.Notify(e)
	}
	d.evMu.Lock()
	d.events = append(d.events, e)
	if len(d.events) > recentEvents {
		d.events = d.events[len(d.events)-recentEvents:]
	}
	d.evMu.Unlock()
}

// recentEvents bounds the events the status page shows.
const recentEvents = 20

func (d *daemon) recentEvents() []map[string]any {
	d.evMu.Lock()
	defer d.evMu.Unlock()
	return asMaps(d.events)
}

// asMaps turns reports into the generic form the status page reads, so
// the admin package needs no health or drill types.
func asMaps[T any](v []T) []map[string]any {
	b, _ := json.Marshal(v)
	var out []map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
