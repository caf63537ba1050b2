package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/admin"
	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/gslb/drill"
	"github.com/gslbd/gslbd/gslb/geo"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/health/fleet"
	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
)

// shutdownGrace bounds how long in-flight queries and HTTP requests may
// take to finish once SIGTERM arrives; systemd's TimeoutStopSec is longer.
const shutdownGrace = 10 * time.Second

func serve(args []string, stderr io.Writer) int {
	cf := newConfigFlags("serve")
	cf.fs.SetOutput(stderr)
	if code, ok := parseFlags(cf.fs, args, stderr); !ok {
		return code
	}
	// Register for signals before the slow part of start-up, so a SIGTERM
	// during it is not lost to the default action mid-bind.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	reg := prometheus.NewRegistry()
	geoMetrics := geo.NewMetrics(reg)
	cfg, err := cf.load()
	var locator *geo.Locator
	var snap *gslb.Snapshot
	if err == nil {
		locator, err = newLocator(cfg, geoMetrics, discardLogger())
	}
	if err == nil {
		snap, err = gslb.NewSnapshot(cfg, locator)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gslbd: configuration refused, nothing started:\n%s", joinLines(config.Errors(err)))
		return exitFail
	}
	// Sockets someone else bound come first: systemd's (socket
	// activation), else a running instance's (hand-over). Either way the
	// queries that arrive during the restart wait in those sockets.
	pool, err := activatedSockets()
	var pred *predecessor
	if err == nil && pool == nil && cfg.DNS.HandoverSocket != "" {
		pred, pool, err = takeOver(cfg.DNS.HandoverSocket)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gslbd: %v\n", err)
		return exitFatal
	}
	d, err := newDaemon(cfg, cf.options(), snap, reg, geoMetrics, stderr, pool)
	if err != nil {
		pred.abandon()
		fmt.Fprintf(stderr, "gslbd: %v\n", err)
		return exitFatal
	}
	d.pred = pred
	return d.run(sigs)
}

// daemon holds what serve wires together and what a reload may change.
type daemon struct {
	opts     config.Options
	level    *slog.LevelVar
	log      *slog.Logger
	ids      *idgen.Generator
	reg      *prometheus.Registry
	dns      *gslb.Server
	admin    *admin.Handler
	listen   *gslb.Listeners
	httpLn   net.Listener
	httpSrv  *http.Server
	reloadMu sync.Mutex
	cfg      *config.Config // guarded by reloadMu
	geo      *geo.Metrics

	repl *replicationRunner // nil: replication is off

	health   *health.Manager
	webhooks []*health.Notifier
	affinity *session.Affinity // nil: no sticky service
	evMu     sync.Mutex
	events   []health.Event // the most recent, for the status page
	drills   *drill.Runner
	closeAff func() error
	swapMu   sync.Mutex     // orders snapshot swaps from reloads and health
	base     *gslb.Snapshot // the configuration's snapshot, before health; guarded by swapMu
	ramping  atomic.Bool
	acme     *acmeState // nil: ACME off (acme.go)

	fleet      *fleet.Fleet          // nil: fleet off (fleet.go)
	fleetRedis redis.UniversalClient // the fleet's connection

	allDown         *prometheus.GaugeVec
	reloads         *prometheus.CounterVec
	lastReloadOK    prometheus.Gauge
	lastReloadOKSec prometheus.Gauge

	pred       *predecessor       // the instance this one takes over from, until ready
	handedOver chan *net.UnixConn // a successor is ready: stop, then answer DONE
	handover   atomic.Pointer[handoverListener]
}

func newDaemon(cfg *config.Config, opts config.Options, snap *gslb.Snapshot, reg *prometheus.Registry, geoMetrics *geo.Metrics, stderr io.Writer, pool *socketPool) (*daemon, error) {
	d := &daemon{opts: opts, cfg: cfg, level: new(slog.LevelVar), reg: reg, geo: geoMetrics,
		handedOver: make(chan *net.UnixConn, 1)}
	d.level.Set(parseLevel(cfg.Log.Level))
	d.log = newLogger(cfg.Log.Format, d.level, stderr).With("instance", cfg.Instance.Name)

	backwards := cfg.IDGen.MaxClockBackwards
	if backwards == 0 {
		backwards = -1 // config's 0 means "fail at once"; idgen's zero means its default
	}
	ids, err := idgen.New(idgen.Config{
		Epoch: cfg.IDGen.Epoch, Datacenter: cfg.Instance.DatacenterID,
		Worker: cfg.Instance.WorkerID, MaxBackwards: backwards,
	})
	if err != nil {
		return nil, err
	}
	d.ids = ids

	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(d.reg)
	f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gslb", Name: "build_info",
		Help: "Always 1; the labels say which build is running.",
	}, []string{"version", "revision", "goversion"}).WithLabelValues(version, revision, runtime.Version()).Set(1)
	d.allDown = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "service", Name: "all_down",
		Help: "1 while none of a service's datacenters is up and it answers by its when_all_down rule.",
	}, []string{"service"})
	d.reloads = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gslb", Subsystem: "config", Name: "reloads_total",
		Help: "Configuration reloads, by result (success or failure).",
	}, []string{"result"})
	d.lastReloadOK = f.NewGauge(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "config", Name: "last_reload_successful",
		Help: "1 if the last configuration load or reload succeeded, 0 if it was refused.",
	})
	d.lastReloadOKSec = f.NewGauge(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
		Help: "When the configuration in use was loaded, in Unix seconds.",
	})
	d.lastReloadOK.Set(1)
	d.lastReloadOKSec.SetToCurrentTime()

	// Before the session store, which logs its writes for replication.
	if d.repl, err = d.newReplication(cfg); err != nil {
		return nil, err
	}
	if d.affinity, d.closeAff, err = d.newAffinity(cfg); err != nil {
		return nil, err
	}
	d.setAffinity(snap, cfg)
	if err := d.newACME(cfg); err != nil {
		return nil, err
	}
	snap = d.withACME(snap)
	d.dns = gslb.NewServer(snap, gslb.NewMetrics(d.reg), d.log.With("component", "dns"))
	d.dns.SetProtection(protection(cfg))
	d.configureACME(cfg)
	d.noteAllDown(nil, snap)
	d.base = snap
	d.health = health.New(health.Options{
		MaxInFlight: cfg.Health.MaxInFlight, Jitter: cfg.Health.Jitter,
		Damping:  health.Damping{Window: cfg.Health.Damping.Window, MaxTransitions: cfg.Health.Damping.MaxTransitions, Hold: cfg.Health.Damping.Hold},
		Instance: cfg.Instance.Name, IDs: d.ids, Registerer: d.reg, Log: d.log.With("component", "health"),
		OnChange: d.applyHealth,
		OnEvent:  d.notify,
	})
	for _, w := range cfg.Health.Webhooks {
		d.webhooks = append(d.webhooks, health.NewNotifier(health.WebhookConfig{
			URLs: []string{w.URL}, Timeout: w.Timeout, Headers: w.Headers,
		}, d.reg, d.log.With("component", "webhook")))
	}
	if err := d.health.Configure(healthSpecs(cfg)); err != nil {
		return nil, err
	}
	if err := d.newFleet(cfg, pool); err != nil {
		return nil, err
	}
	d.drills = drill.New(drillEnv{d}, d.ids, d.reg)
	d.admin = admin.New(admin.Options{
		Gatherer: d.reg, Reloader: admin.ReloaderFunc(d.reload), Snapshots: d.dns, Health: d.healthAdmin(), ReadyDetail: d.readyDetail,
		Sessions: d.sessionsAdmin(), Drills: d.drills, Replication: d.repl.admin(),
		Page: admin.PageOptions{Instance: cfg.Instance.Name, Version: version, Events: d.recentEvents,
			Drills: func() []map[string]any { return asMaps(d.drills.History()) }},
		Token: cfg.HTTP.Token, AllowUnauthenticated: cfg.HTTP.AllowUnauthenticatedLoopback,
	})

	d.listen, err = d.dns.Listen(gslb.ListenConfig{
		Addrs:             cfg.DNS.Listen,
		TCPIdleTimeout:    cfg.DNS.TCPIdleTimeout,
		TCPMaxConnections: cfg.DNS.TCPMaxConnections,
		Inherited:         pool.take,
	})
	if err != nil {
		pool.leftovers()
		return nil, err
	}
	if pool == nil || pool.pid == 0 {
		// Bound here or handed over by systemd: nobody else reads the
		// sockets. After a hand-over they are owned once the predecessor
		// has stopped (run).
		d.ownSockets()
	}
	// Each fast-path UDP reader waits for datagrams in a blocking system
	// call. While a goroutine is in one, the runtime takes its scheduler
	// slot (P) away unless another P is idle, and gives one back when the
	// call returns: with one P (one CPU) that is a hand-off on every
	// wake-up. A P more than there are readers spares them that; at a
	// fixed 20,000 queries/s on one core this took gslbd from 1.43 to
	// 1.18 times gdnsd's CPU per query (docs/performance.md). It is raised
	// by one at most, so a CPU quota is not overrun by much, and setting
	// it turns off the runtime's own updates of it (to follow a changed
	// quota); the GOMAXPROCS environment variable opts out of both.
	if cur := runtime.GOMAXPROCS(0); os.Getenv("GOMAXPROCS") == "" && cur < d.listen.FastReaders()+1 {
		d.log.Info("raised GOMAXPROCS by one so that the UDP readers keep their scheduler slots while they wait", "from", cur, "to", cur+1)
		runtime.GOMAXPROCS(cur + 1)
	}
	network := "tcp4" // one family per socket, as for DNS: 0.0.0.0 must not also mean [::]
	if cfg.HTTP.Listen.Addr().Is6() {
		network = "tcp6"
	}
	if f := pool.take("http", cfg.HTTP.Listen); f != nil {
		d.httpLn, err = net.FileListener(f)
		f.Close()
	} else {
		d.httpLn, err = net.Listen(network, cfg.HTTP.Listen.String())
	}
	if err != nil {
		_ = d.listen.Shutdown(context.Background())
		return nil, fmt.Errorf("http: listening on %s: %w", cfg.HTTP.Listen, err)
	}
	if left := pool.leftovers(); len(left) > 0 {
		if pool.source == "socket activation" {
			_ = d.listen.Shutdown(context.Background())
			d.httpLn.Close()
			return nil, fmt.Errorf("socket activation passed %s, which neither dns.listen nor http.listen lists", strings.Join(left, ", "))
		}
		d.log.Warn("the predecessor's sockets this configuration does not list were closed", "from", pool.source, "sockets", left)
	}
	d.httpSrv = &http.Server{
		Handler:           d.admin,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	return d, nil
}

// ownSockets lets the UDP readers wait in blocking reads, once no other
// process reads their sockets.
func (d *daemon) ownSockets() {
	if err := d.listen.Own(); err != nil {
		d.log.Warn("UDP readers will wait in poll(2): could not make the sockets blocking", "err", err)
	}
}

func (d *daemon) run(sigs <-chan os.Signal) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.watchGeoIP(ctx)
	go d.health.Run(ctx)
	for _, w := range d.webhooks {
		go w.Run(ctx)
	}
	if d.affinity != nil {
		go d.affinity.Run(ctx)
	}
	d.repl.start(ctx)
	d.runFleet(ctx)
	go d.runScheduledDrills(ctx)
	d.admin.Start(ctx)
	go d.rampTicker(ctx)
	go d.watchACME(ctx)
	if d.pred == nil {
		d.startHandover(ctx)
	}
	fatal := make(chan error, 2)
	go func() {
		if err := d.listen.Serve(); err != nil {
			fatal <- err
		}
	}()
	go func() {
		if err := d.httpSrv.Serve(d.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("http: %w", err)
		}
	}()
	var dnsAddrs []string
	for _, a := range d.listen.Addrs() {
		dnsAddrs = append(dnsAddrs, a.Network()+"/"+a.String())
	}
	// The cold start waits on its own goroutine, so signals are handled
	// while it runs: a SIGTERM during a slow first probe round stops the
	// daemon at once.
	coldStart := d.cfg.Health.ColdStartTimeout
	go func() {
		d.waitReadyFleet(ctx, coldStart)
		if ctx.Err() != nil {
			return
		}
		d.admin.SetReady()
		if err := sdNotify("READY=1\nSTATUS=serving"); err != nil {
			d.log.Warn("could not tell systemd gslbd is ready", "err", err)
		}
		if d.pred != nil {
			if d.pred.finish(d.log) {
				d.ownSockets()
			}
			d.pred = nil
			d.startHandover(ctx)
		}
		d.log.Info("gslbd ready", "version", version, "dns", dnsAddrs, "http", d.httpLn.Addr().String(),
			"zones", d.dns.Snapshot().Zones())
	}()

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = d.reload(context.Background())
				continue
			}
			d.log.Info("shutting down", "signal", sig.String())
			return d.shutdown(exitOK)
		case conn := <-d.handedOver:
			code := d.shutdown(exitOK)
			_, _ = conn.Write([]byte("DONE\n"))
			conn.Close()
			return code
		case err := <-fatal:
			d.log.Error("listener failed; shutting down", "err", err)
			return d.shutdown(exitFatal)
		}
	}
}

func (d *daemon) shutdown(code int) int {
	_ = sdNotify("STOPPING=1")
	if h := d.handover.Load(); h != nil {
		h.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := d.listen.Shutdown(ctx); err != nil {
			d.log.Warn("DNS shutdown incomplete", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := d.httpSrv.Shutdown(ctx); err != nil {
			d.log.Warn("HTTP shutdown incomplete", "err", err)
		}
	}()
	wg.Wait()
	d.closeFleet()
	if err := d.closeAff(); err != nil {
		d.log.Warn("closing the session store", "err", err)
	}
	if err := d.repl.close(); err != nil {
		d.log.Warn("closing replication's connections", "err", err)
	}
	d.closeACME()
	d.log.Info("stopped")
	return code
}

// reload loads the file again and swaps in what it describes. A refused
// configuration changes nothing: the old snapshot keeps serving. Keys that
// only a restart can apply are reported and keep their old values.
func (d *daemon) reload(_ context.Context) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	eventID, _ := d.ids.Next()
	start := time.Now()
	cfg, err := config.Load(d.cfg.File, d.opts)
	var pending []string
	var snap *gslb.Snapshot
	if err == nil {
		pending = cfg.KeepRestartOnly(d.cfg)
		var locator *geo.Locator
		if locator, err = d.reloadLocator(cfg); err == nil {
			snap, err = gslb.NewSnapshot(cfg, locator)
		}
	}
	if err != nil {
		d.reloads.WithLabelValues("failure").Inc()
		d.lastReloadOK.Set(0)
		errs := config.Errors(err)
		lines := make([]string, len(errs))
		for i, e := range errs {
			lines[i] = e.Error()
		}
		d.log.Error("configuration reload refused; the previous configuration keeps serving",
			"event_id", eventID, "file", d.cfg.File, "errors", lines)
		return err
	}
	if len(pending) > 0 {
		d.log.Warn("configuration keys changed that only a restart applies; they keep their running values",
			"event_id", eventID, "keys", pending)
	}
	if err := d.health.Configure(healthSpecs(cfg)); err != nil {
		d.reloads.WithLabelValues("failure").Inc()
		d.lastReloadOK.Set(0)
		d.log.Error("configuration reload refused; the previous configuration keeps serving", "event_id", eventID, "err", err)
		return err
	}
	d.setAffinity(snap, cfg)
	d.swapMu.Lock()
	d.base = d.withACME(snap)
	d.swapMu.Unlock()
	d.configureACME(cfg)
	d.applyHealth()
	d.level.Set(parseLevel(cfg.Log.Level))
	d.admin.SetToken(cfg.HTTP.Token, cfg.HTTP.AllowUnauthenticatedLoopback)
	d.cfg = cfg
	d.reloads.WithLabelValues("success").Inc()
	d.lastReloadOK.Set(1)
	d.lastReloadOKSec.SetToCurrentTime()
	d.log.Info("configuration reloaded", "event_id", eventID, "file", cfg.File,
		"zones", snap.Zones(), "took", time.Since(start).String())
	return nil
}

// setAffinity gives a snapshot the daemon's session store. Sessions are
// restart-only, so the store outlives reloads.
func (d *daemon) setAffinity(snap *gslb.Snapshot, cfg *config.Config) {
	if d.affinity != nil {
		snap.SetAffinity(d.affinity, cfg.Sessions.Failback == "return", cfg.Sessions.PrefixV4, cfg.Sessions.PrefixV6)
	}
}

func (d *daemon) sessionsAdmin() admin.Sessions {
	if d.affinity == nil {
		return nil
	}
	return sessionsAdmin{d}
}

// noteAllDown logs each service that starts or stops failing open, once
// per transition, and keeps the gauge in step.
func (d *daemon) noteAllDown(old, cur *gslb.Snapshot) {
	was := map[string]bool{}
	if old != nil {
		for _, name := range old.AllDown() {
			was[name] = true
		}
	}
	now := map[string]bool{}
	for _, name := range cur.AllDown() {
		now[name] = true
		if !was[name] {
			d.log.Warn("every datacenter of the service is down; answering by its when_all_down rule", "service", name)
		}
		d.allDown.WithLabelValues(name).Set(1)
	}
	for name := range was {
		if !now[name] {
			d.log.Info("a datacenter of the service is up again", "service", name)
		}
	}
	// Every service has a series, 0 while it has a datacenter up, so an
	// alert on it can tell "fine" from "not exported"; a service a reload
	// removed loses its series.
	current := map[string]bool{}
	for _, name := range cur.Services() {
		current[name] = true
		if !now[name] {
			d.allDown.WithLabelValues(name).Set(0)
		}
	}
	if old != nil {
		for _, name := range old.Services() {
			if !current[name] {
				d.allDown.DeleteLabelValues(name)
			}
		}
	}
}

// reloadLocator keeps the running locator (and its warm cache) when the
// GeoIP settings did not change, after checking its files for
// replacement; otherwise it loads the new settings' databases.
func (d *daemon) reloadLocator(cfg *config.Config) (*geo.Locator, error) {
	cur := d.dns.Snapshot().Locator()
	if cur != nil && cur.Config() == geoConfig(cfg) {
		if err := cur.Reload(); err != nil {
			d.log.Warn("GeoIP database check failed; the last good database keeps serving", "component", "geoip", "err", err)
		}
		return cur, nil
	}
	return newLocator(cfg, d.geo, d.log)
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

func newLogger(format string, level slog.Leveler, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
