package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/gslb/geo"
)

func geoConfig(cfg *config.Config) geo.Config {
	d := cfg.GeoIP.DefaultLocation
	return geo.Config{
		CityDB: cfg.GeoIP.CityDB, ASNDB: cfg.GeoIP.ASNDB, CacheSize: cfg.GeoIP.CacheSize,
		Default: geo.Location{Lat: d.Lat, Lon: d.Lon, Country: d.Country, Continent: d.Continent, Subdivision: d.Subdivision},
	}
}

// newLocator loads the GeoIP databases; a file that is not a usable
// database is a configuration error naming its key.
func newLocator(cfg *config.Config, m *geo.Metrics, log *slog.Logger) (*geo.Locator, error) {
	l, err := geo.New(geoConfig(cfg), m, log.With("component", "geoip"))
	if err != nil {
		key := "geoip.city_db"
		var dbErr *geo.DBError
		if errors.As(err, &dbErr) && dbErr.Database == "asn" {
			key = "geoip.asn_db"
		}
		return nil, &config.FieldError{File: cfg.File, Path: key, Msg: err.Error()}
	}
	return l, nil
}

// offlineSnapshot builds what serve would serve from cfg, for commands
// that answer without a daemon (check-config, explain): the same checks,
// the same code.
func offlineSnapshot(cfg *config.Config) (*gslb.Snapshot, error) {
	l, err := newLocator(cfg, discardGeoMetrics(), discardLogger())
	if err != nil {
		return nil, err
	}
	return gslb.NewSnapshot(cfg, l)
}

// discardGeoMetrics registers GeoIP series nowhere, for commands that load
// a configuration only to check it.
func discardGeoMetrics() *geo.Metrics { return geo.NewMetrics(prometheus.NewRegistry()) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// watchGeoIP checks the current databases (and services' networks files)
// for replacement every interval, so a geoipupdate run or an edited
// networks file is picked up without a reload. It logs a failure
// when it starts and when it clears, not at every check.
func (d *daemon) watchGeoIP(ctx context.Context) {
	var lastErr string
	for {
		d.reloadMu.Lock()
		interval := d.cfg.GeoIP.ReloadInterval
		d.reloadMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		snap := d.dns.Snapshot()
		for _, ferr := range snap.CheckNetworkFiles(d.log.With("component", "targets")) {
			d.log.Error("networks file refused; the last good copy keeps serving", "component", "targets", "err", ferr)
		}
		err := snap.Locator().Reload()
		switch {
		case err != nil && err.Error() != lastErr:
			d.log.Error("GeoIP database check failed; the last good database keeps serving", "component", "geoip", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			d.log.Info("GeoIP database check succeeded again", "component", "geoip")
			lastErr = ""
		}
	}
}
