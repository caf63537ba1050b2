package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommonZone(t *testing.T) {
	for _, tc := range []struct {
		a, b, want string
		ok         bool
	}{
		{"static.bench.example.", "geo.bench.example.", "bench.example.", true},
		{"a.x.example.", "B.X.Example.", "x.example.", true},
		{"bench.example.", "geo.bench.example.", "", false}, // one is the zone itself
		{"a.example.", "b.test.", "", false},
	} {
		got, ok := commonZone(tc.a, tc.b)
		if got != tc.want || ok != tc.ok {
			t.Errorf("commonZone(%q, %q) = %q, %t; want %q, %t", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}

// TestGdnsdSetup derives gdnsd's configuration from the bench config
// gslbd serves: the same database, datacenters, addresses and TTL. When
// gdnsd is installed, gdnsd itself checks what was written.
func TestGdnsdSetup(t *testing.T) {
	g, err := newGdnsdSetup("../../configs/bench/geo.yaml", "static.bench.example.", "192.0.2.1", "geo.bench.example.")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(g.db) || len(g.dcs) != 3 || g.dcs[0].id != "us-east-1" || g.dcs[0].addr != "192.0.2.10" || g.ttl != 30 {
		t.Fatalf("got %+v; want the geo service's three datacenters, first us-east-1 at 192.0.2.10, TTL 30, an absolute database path", g)
	}
	dir := t.TempDir()
	if err := g.write(dir, "127.0.0.1:5300"); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "config"))
	zone, _ := os.ReadFile(filepath.Join(dir, "zones", "bench.example"))
	for _, want := range []string{"listen => [ 127.0.0.1:5300 ]", "us-east-1 => [ 39, -77.5 ]", "ap-southeast-1 => 203.0.113.10", "geoip2_db => " + g.db} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	for _, want := range []string{"static.bench.example. 300 A 192.0.2.1", "geo.bench.example. 30 DYNA geoip!geo"} {
		if !strings.Contains(string(zone), want) {
			t.Errorf("zone lacks %q:\n%s", want, zone)
		}
	}
	if _, err := newGdnsdSetup("../../configs/bench/geo.yaml", "static.bench.example.", "192.0.2.1", "www.bench.example."); err == nil {
		t.Error("a service of policy all was accepted; gdnsd's map stands for score only")
	}
	if p, err := exec.LookPath("gdnsd"); err == nil {
		if out, err := exec.Command(p, "-c", dir, "checkconf").CombinedOutput(); err != nil {
			t.Errorf("gdnsd checkconf: %v\n%s", err, out)
		}
	}
}
