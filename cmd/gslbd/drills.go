package main

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/drill"
)

// drillEnv gives drills the daemon's snapshot, health overrides and DNS
// listener.
type drillEnv struct{ d *daemon }

func (e drillEnv) Snapshot() *gslb.Snapshot { return e.d.dns.Snapshot() }
func (e drillEnv) Override(dc, ep, state, reason string) error {
	return e.d.health.Override(dc, ep, state, reason)
}
func (e drillEnv) HasOverride(dc string) bool { return e.d.health.HasOverride(dc) }

// DNSAddr is where a live drill asks: the first UDP listener, with a
// wildcard address turned into the loopback of its family.
func (e drillEnv) DNSAddr() string {
	for _, a := range e.d.listen.Addrs() {
		ua, ok := a.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := ua.AddrPort()
		addr := ap.Addr().Unmap()
		if addr.IsUnspecified() {
			addr = netip.MustParseAddr("127.0.0.1")
			if ap.Addr().Is6() && !ap.Addr().Is4In6() {
				addr = netip.IPv6Loopback()
			}
		}
		return netip.AddrPortFrom(addr, ap.Port()).String()
	}
	return ""
}

// runScheduledDrills runs the configured dry-run drills on their
// schedules until ctx is done.
func (d *daemon) runScheduledDrills(ctx context.Context) {
	d.reloadMu.Lock()
	schedules := d.cfg.Drills
	d.reloadMu.Unlock()
	for _, sc := range schedules {
		go func() {
			t := time.NewTicker(sc.Every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				rep, err := d.drills.Run(ctx, drill.Request{Service: sc.Service, Fail: sc.Fail, Probes: sc.Probes, Mode: "dry-run"})
				switch {
				case err != nil:
					d.log.Warn("scheduled drill not run", "service", sc.Service, "fail", sc.Fail, "err", err)
				case !rep.Success:
					d.log.Warn("scheduled drill failed", "drill_id", rep.ID, "service", sc.Service, "fail", sc.Fail, "success_rate", rep.SuccessRate)
				default:
					d.log.Info("scheduled drill succeeded", "drill_id", rep.ID, "service", sc.Service, "fail", sc.Fail)
				}
			}
		}()
	}
}
