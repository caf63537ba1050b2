package geo

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gslbd/gslbd/gslb/geo/geodb"
)

const csvHeader = "network,latitude,longitude,country,continent,subdivision,city\n"

// buildDB writes an mmdb built from CSV rows to path, via a temporary file
// and a rename, as geoipupdate replaces a database.
func buildDB(t testing.TB, path, rows string) {
	t.Helper()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := geodb.Build(strings.NewReader(csvHeader+rows), f, geodb.Options{Source: "test.csv"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newTestLocator(t testing.TB, cfg Config) (*Locator, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	l, err := New(cfg, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return l, m
}

const rowsV1 = "81.2.69.0/24,51.51,-0.13,GB,EU,ENG,London\n89.160.0.0/16,50.11,8.68,DE,EU,HE,Frankfurt\n2a02:d000::/24,50.11,8.68,DE,EU,HE,Frankfurt\n"

func TestLocate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "city.mmdb")
	buildDB(t, path, rowsV1)
	def := Location{Lat: 1, Lon: 2, Country: "ZZ"}
	l, m := newTestLocator(t, Config{CityDB: path, CacheSize: 1000, Default: def})
	tests := []struct {
		addr    string
		country string
		found   bool
		network string
	}{
		{"81.2.69.142", "GB", true, "81.2.69.0/24"},
		{"89.160.20.7", "DE", true, "89.160.0.0/16"},
		{"2a02:d000:1:2::1", "DE", true, "2a02:d000::/24"},
		{"::ffff:81.2.69.1", "GB", true, "81.2.69.0/24"},
		{"8.8.8.8", "ZZ", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			loc := l.Locate(netip.MustParseAddr(tc.addr))
			if loc.Country != tc.country || loc.Found != tc.found {
				t.Errorf("got country %q found %t, want %q %t", loc.Country, loc.Found, tc.country, tc.found)
			}
			if tc.network != "" && loc.Network.String() != tc.network {
				t.Errorf("network: got %s, want %s", loc.Network, tc.network)
			}
			if !tc.found && (loc.Lat != 1 || loc.Lon != 2) {
				t.Errorf("unknown client: got %v,%v, want the default location 1,2", loc.Lat, loc.Lon)
			}
		})
	}
	// Same /24 again: from the cache.
	before := testutil.ToFloat64(m.hit)
	l.Locate(netip.MustParseAddr("81.2.69.7"))
	if got := testutil.ToFloat64(m.hit); got != before+1 {
		t.Errorf("cache hits: got %v, want %v", got, before+1)
	}
}

// TestNetworkClampedToKey: a database network finer than the key prefix is
// reported as the key prefix, because the cached answer covers the /24.
func TestNetworkClampedToKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "city.mmdb")
	buildDB(t, path, "81.2.69.128/25,51.51,-0.13,GB,EU,ENG,London\n")
	l, _ := newTestLocator(t, Config{CityDB: path, CacheSize: 10})
	if got := l.Locate(netip.MustParseAddr("81.2.69.200")); got.Network.String() != "81.2.69.0/24" {
		t.Errorf("network: got %s, want 81.2.69.0/24", got.Network)
	}
}

func TestCacheBound(t *testing.T) {
	l, _ := newTestLocator(t, Config{CacheSize: 128})
	for i := range 5000 {
		l.Locate(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}))
	}
	if n := l.gen.Load().cache.len(); n > 128 || n < 64 {
		t.Errorf("cache entries after 5000 prefixes: got %d, want at most 128 (and not emptied)", n)
	}
}

func TestNotAnMMDB(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "junk.mmdb")
	if err := os.WriteFile(path, []byte("this is not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{CityDB: path, CacheSize: 10}, NewMetrics(prometheus.NewRegistry()), slog.Default())
	if err == nil || !strings.Contains(err.Error(), path+": not a MaxMind DB (.mmdb) file") {
		t.Errorf("got %v, want an error naming the file", err)
	}
	_, err = New(Config{CityDB: filepath.Join(dir, "missing.mmdb"), CacheSize: 10}, NewMetrics(prometheus.NewRegistry()), slog.Default())
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: got %v", err)
	}
}

func TestReloadReplacedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "city.mmdb")
	buildDB(t, path, rowsV1)
	l, _ := newTestLocator(t, Config{CityDB: path, CacheSize: 100})
	addr := netip.MustParseAddr("81.2.69.142")
	if got := l.Locate(addr).Country; got != "GB" {
		t.Fatalf("got %s, want GB", got)
	}
	// Replaced by rename with different data: the next check swaps it in
	// and the cache built on the old file goes with it.
	buildDB(t, path, "81.2.69.0/24,48.86,2.35,FR,EU,IDF,Paris\n")
	if err := l.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := l.Locate(addr).Country; got != "FR" {
		t.Errorf("after replacement: got %s, want FR", got)
	}
	// A file that vanishes or turns to garbage keeps the last good one.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(); err == nil || !strings.Contains(err.Error(), "keeping the database loaded") {
		t.Errorf("vanished file: got %v, want an error saying the old database stays", err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(); err == nil || !strings.Contains(err.Error(), "keeping the previous database") {
		t.Errorf("garbage file: got %v", err)
	}
	if got := l.Locate(netip.MustParseAddr("81.2.69.99")).Country; got != "FR" {
		t.Errorf("after bad replacements: got %s, want FR from the last good database", got)
	}
}

// TestOverwriteInPlaceUnderLoad rewrites the database file in place
// (truncate and write, no rename) while goroutines locate clients. With a
// memory-mapped reader this is a SIGBUS; here the file is read whole, so
// queries keep being answered from the last good copy.
func TestOverwriteInPlaceUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "city.mmdb")
	buildDB(t, path, rowsV1)
	other := filepath.Join(dir, "other.mmdb")
	buildDB(t, other, "81.2.69.0/24,48.86,2.35,FR,EU,IDF,Paris\n89.160.0.0/16,48.86,2.35,FR,EU,IDF,Paris\n")
	versions := [2][]byte{}
	var err error
	if versions[0], err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if versions[1], err = os.ReadFile(other); err != nil {
		t.Fatal(err)
	}
	l, _ := newTestLocator(t, Config{CityDB: path, CacheSize: 16})
	stop := make(chan struct{})
	var lookups atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				loc := l.Locate(netip.AddrFrom4([4]byte{81, 2, byte(i + g), 142}))
				_ = loc
				lookups.Add(1)
			}
		}()
	}
	for i := range 200 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		b := versions[i%2]
		// Write in two halves with a reload between them, so some checks
		// see a half-written file.
		if _, err := f.Write(b[:len(b)/2]); err != nil {
			t.Fatal(err)
		}
		_ = l.Reload()
		if _, err := f.Write(b[len(b)/2:]); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_ = l.Reload()
	}
	close(stop)
	wg.Wait()
	if lookups.Load() == 0 {
		t.Fatal("no lookups ran")
	}
	if got := l.Locate(netip.MustParseAddr("89.160.1.1")).Country; got != "DE" && got != "FR" {
		t.Errorf("after the storm: got %q, want a country from one of the two databases", got)
	}
}

func BenchmarkLocate(b *testing.B) {
	path := filepath.Join(b.TempDir(), "city.mmdb")
	buildDB(b, path, rowsV1)
	l, _ := newTestLocator(b, Config{CityDB: path, CacheSize: 1000})
	addrs := []netip.Addr{netip.MustParseAddr("81.2.69.142"), netip.MustParseAddr("89.160.20.7"), netip.MustParseAddr("2a02:d000::1")}
	for _, a := range addrs {
		l.Locate(a)
	}
	b.Run("warm", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l.Locate(addrs[i%len(addrs)])
			i++
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		g := l.gen.Load()
		key := KeyPrefix(addrs[0])
		for b.Loop() {
			g.lookup(key.Addr(), key, Location{})
		}
	})
}

// TestCacheKey: every client prefix has a key of its own, the two
// families never share one, and prefixes Locate never makes are not
// cached at all.
func TestCacheKey(t *testing.T) {
	seen := map[uint64]netip.Prefix{}
	for _, a := range []string{"1.2.3.4", "1.2.4.4", "2.2.3.4", "255.255.255.255", "0.0.0.0",
		"2001:db8::1", "2001:db8:0:100::1", "2001:db9::1", "::1", "100::1", "8000::1", "ffff:ffff:ffff:ff00::"} {
		p := KeyPrefix(netip.MustParseAddr(a))
		k, ok := cacheKey(p)
		if !ok {
			t.Fatalf("%s: KeyPrefix %v has no cache key", a, p)
		}
		if prev, dup := seen[k]; dup && prev != p {
			t.Fatalf("%v and %v share the cache key %#x", prev, p, k)
		}
		seen[k] = p
	}
	if _, ok := cacheKey(netip.MustParsePrefix("1.2.0.0/16")); ok {
		t.Error("a /16 got a cache key; only KeyPrefix's /24 and /56 may")
	}
	c := newCache(100)
	c.put(netip.MustParsePrefix("1.2.0.0/16"), Location{City: "x"})
	if c.len() != 0 {
		t.Error("a prefix without a key was cached")
	}
}
