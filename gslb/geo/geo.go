package geo

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Location is where a client is, as far as the database knows.
type Location struct {
	Lat, Lon    float64
	Country     string // ISO 3166-1 alpha-2, as the database spells it
	Continent   string // two-letter continent code
	Subdivision string // ISO 3166-2 subdivision code without the country
	City        string
	ASN         uint32
	// Network is the database network the answer came from: every address
	// in it gets the same answer, which is what makes it the ECS scope. It
	// is invalid when no database was consulted.
	Network netip.Prefix
	// Found is false when the client is not in the database and the
	// default location stands in.
	Found bool
}

// Key prefix lengths: resolvers rarely send more than /24 or /56 in ECS,
// and finer keys would only split the cache without changing answers.
const (
	KeyBits4 = 24
	KeyBits6 = 56
)

// KeyPrefix is the client prefix that locations, hashing and sessions are
// keyed on.
func KeyPrefix(a netip.Addr) netip.Prefix {
	bits := KeyBits6
	if a.Is4() {
		bits = KeyBits4
	}
	p, _ := a.Prefix(bits)
	return p
}

// Config says which databases to load and how to serve them.
type Config struct {
	CityDB    string
	ASNDB     string
	CacheSize int
	Default   Location
}

// Locator answers Locate from the current database generation.
type Locator struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	gen     atomic.Pointer[generation]
	// reloadMu serialises file checks; queries never take it.
	reloadMu sync.Mutex
}

// generation is one loaded pair of databases and the cache of answers
// computed from them; replacing the databases replaces the cache with it,
// so no answer from an old file outlives the file.
type generation struct {
	city, asn         *geoip2.Reader
	cityStat, asnStat fileStamp
	cache             *cache
	// version counts the reloads that changed a database, for caches
	// of answers built on locations (gslb's answer cache).
	version uint64
}

// fileStamp identifies a file's content cheaply; the hash settles the
// case where a replacement kept size and modification time.
type fileStamp struct {
	size    int64
	modTime time.Time
	sum     [sha256.Size]byte
}

// Metrics are the GeoIP series.
type Metrics struct {
	lookups  *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	loadedAt *prometheus.GaugeVec
	hit      prometheus.Counter
	miss     prometheus.Counter
}

// NewMetrics registers the GeoIP series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		lookups: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "geoip", Name: "cache_lookups_total",
			Help: "Client locations asked for, by result: hit (cached for the client prefix) or miss (read from the database).",
		}, []string{"result"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "geoip", Name: "database_reloads_total",
			Help: "Attempts to load a GeoIP database file, by database (city, asn) and result (success, failure).",
		}, []string{"database", "result"}),
		loadedAt: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "geoip", Name: "database_loaded_timestamp_seconds",
			Help: "When the GeoIP database in use was loaded, by database (city, asn).",
		}, []string{"database"}),
	}
	m.hit = m.lookups.WithLabelValues("hit")
	m.miss = m.lookups.WithLabelValues("miss")
	return m
}

// DBError says which database failed to load ("city" or "asn"), so the
// caller can name the configuration key.
type DBError struct {
	Database string
	Err      error
}

func (e *DBError) Error() string { return e.Err.Error() }
func (e *DBError) Unwrap() error { return e.Err }

// New loads the configured databases. Errors name the file and what is
// wrong with it; a locator without a city database locates every client at
// the default location.
func New(cfg Config, m *Metrics, log *slog.Logger) (*Locator, error) {
	l := &Locator{cfg: cfg, log: log, metrics: m}
	g := &generation{cache: newCache(cfg.CacheSize)}
	var err error
	if cfg.CityDB != "" {
		if g.city, g.cityStat, err = load(cfg.CityDB, "City"); err != nil {
			m.reloads.WithLabelValues("city", "failure").Inc()
			return nil, &DBError{Database: "city", Err: err}
		}
		m.reloads.WithLabelValues("city", "success").Inc()
		m.loadedAt.WithLabelValues("city").SetToCurrentTime()
	}
	if cfg.ASNDB != "" {
		if g.asn, g.asnStat, err = load(cfg.ASNDB, "ASN"); err != nil {
			m.reloads.WithLabelValues("asn", "failure").Inc()
			return nil, &DBError{Database: "asn", Err: err}
		}
		m.reloads.WithLabelValues("asn", "success").Inc()
		m.loadedAt.WithLabelValues("asn").SetToCurrentTime()
	}
	l.gen.Store(g)
	return l, nil
}

// Config returns what the locator was built from, so a reload can tell
// whether it may keep the locator.
func (l *Locator) Config() Config { return l.cfg }

// load reads a database whole into memory and checks it is of the
// wanted type (City covers GeoIP2-City, GeoLite2-City and DB-IP City).
func load(path, kind string) (*geoip2.Reader, fileStamp, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s: %w", path, errors.Unwrap(err))
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s: %w", path, err)
	}
	r, err := geoip2.OpenBytes(b)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s: not a MaxMind DB (.mmdb) file: %w", path, err)
	}
	typ := r.Metadata().DatabaseType
	if !strings.Contains(typ, kind) {
		return nil, fileStamp{}, fmt.Errorf("%s: database type %q is not a %s database", path, typ, kind)
	}
	// Probe once so a file that opens but cannot be read fails here, not
	// on the query path.
	probe := netip.MustParseAddr("1.1.1.1")
	if kind == "City" {
		_, err = r.City(probe)
	} else {
		_, err = r.ASN(probe)
	}
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s: reading a record: %w", path, err)
	}
	return r, fileStamp{size: st.Size(), modTime: st.ModTime(), sum: sha256.Sum256(b)}, nil
}

// Locate returns the location of the client prefix that contains addr.
// It never fails: a client the database does not know, or a database
// error, gives the default location with Found false.
func (l *Locator) Locate(addr netip.Addr) Location {
	addr = addr.Unmap()
	key := KeyPrefix(addr)
	g := l.gen.Load()
	if loc, ok := g.cache.get(key); ok {
		l.metrics.hit.Inc()
		return loc
	}
	l.metrics.miss.Inc()
	loc := g.lookup(key.Addr(), key, l.cfg.Default)
	g.cache.put(key, loc)
	return loc
}

// lookup reads the databases for the first address of the client prefix,
// so every client in the prefix gets the same, cacheable answer.
func (g *generation) lookup(addr netip.Addr, key netip.Prefix, def Location) Location {
	loc := def
	loc.Found = false
	if g.city == nil {
		return loc
	}
	c, err := g.city.City(addr)
	if err != nil {
		return loc
	}
	loc.Network = clampNetwork(c.Traits.Network, key)
	if c.Location.HasCoordinates() {
		loc.Found = true
		loc.Lat, loc.Lon = *c.Location.Latitude, *c.Location.Longitude
		loc.Country = c.Country.ISOCode
		loc.Continent = c.Continent.Code
		loc.City = c.City.Names.English
		loc.Subdivision = ""
		if len(c.Subdivisions) > 0 {
			loc.Subdivision = c.Subdivisions[0].ISOCode
		}
	}
	if g.asn != nil {
		if a, err := g.asn.ASN(addr); err == nil {
			loc.ASN = uint32(a.AutonomousSystemNumber)
		}
	}
	return loc
}

// clampNetwork limits the database network to the key prefix: an answer
// cached for a /24 is only known to hold for that /24, even where the
// database splits it finer.
func clampNetwork(n, key netip.Prefix) netip.Prefix {
	if !n.IsValid() {
		return key
	}
	if n.Addr().Is4In6() {
		n = netip.PrefixFrom(n.Addr().Unmap(), max(n.Bits()-96, 0))
	}
	if n.Bits() > key.Bits() {
		return key
	}
	return n.Masked()
}

// Version changes whenever a reload swaps in a changed database: an
// answer computed from locations (or ASNs) under one version may differ
// under the next.
func (l *Locator) Version() uint64 {
	if l == nil {
		return 0
	}
	return l.gen.Load().version
}

// Reload checks the database files and swaps in any that changed. A file
// that is missing or unreadable keeps the previous database serving; the
// error says why, and the next check tries again.
func (l *Locator) Reload() error {
	l.reloadMu.Lock()
	defer l.reloadMu.Unlock()
	old := l.gen.Load()
	next := *old
	changed := false
	var errs []error
	for _, db := range []struct {
		name, path, kind string
		reader           **geoip2.Reader
		stamp            *fileStamp
	}{
		{"city", l.cfg.CityDB, "City", &next.city, &next.cityStat},
		{"asn", l.cfg.ASNDB, "ASN", &next.asn, &next.asnStat},
	} {
		if db.path == "" {
			continue
		}
		st, err := os.Stat(db.path)
		if err != nil {
			l.metrics.reloads.WithLabelValues(db.name, "failure").Inc()
			errs = append(errs, fmt.Errorf("%s: %w; keeping the database loaded at %s", db.path, errors.Unwrap(err), db.stamp.modTime.Format(time.RFC3339)))
			continue
		}
		if st.Size() == db.stamp.size && st.ModTime().Equal(db.stamp.modTime) {
			continue
		}
		r, stamp, err := load(db.path, db.kind)
		if err != nil {
			l.metrics.reloads.WithLabelValues(db.name, "failure").Inc()
			errs = append(errs, fmt.Errorf("%w; keeping the previous database", err))
			continue
		}
		if bytes.Equal(stamp.sum[:], db.stamp.sum[:]) {
			*db.stamp = stamp // touched, not changed
			continue
		}
		*db.reader, *db.stamp = r, stamp
		changed = true
		l.metrics.reloads.WithLabelValues(db.name, "success").Inc()
		l.metrics.loadedAt.WithLabelValues(db.name).SetToCurrentTime()
		l.log.Info("GeoIP database reloaded", "database", db.name, "file", db.path)
	}
	if changed {
		next.cache = newCache(l.cfg.CacheSize)
		next.version = old.version + 1
	}
	l.gen.Store(&next)
	return errors.Join(errs...)
}
