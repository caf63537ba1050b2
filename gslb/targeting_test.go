package gslb

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb/config"
)

const targetsCfg = `
datacenters:
  - {id: a, endpoints: [{address: 192.0.2.1}]}
  - {id: b, endpoints: [{address: 192.0.2.2}]}
zones:
  - origin: t.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [192.0.2.53]}]
    services:
      - {name: www, policy: failover, datacenters: [a, b], networks_file: nets.yaml}
`

// TestNetworksFileReloads: the file is read at load, replaced when it
// changes, and a bad version keeps the last good table serving.
func TestNetworksFileReloads(t *testing.T) {
	dir := t.TempDir()
	nets := filepath.Join(dir, "nets.yaml")
	write := func(body string, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(nets, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		// Distinct modification times, whatever the file system's clock
		// granularity.
		mt := time.Now().Add(-age)
		if err := os.Chtimes(nets, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	write("networks:\n  - {prefix: 198.51.100.0/24, datacenters: [b]}\n", 3*time.Hour)
	cfg, err := config.Parse(filepath.Join(dir, "gslbd.yaml"), []byte(targetsCfg), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSnapshot(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	answer := func() string {
		r, _ := s.Answer(query("www.t.test.", dns.TypeA), testClient, false) // testClient is in 198.51.100.0/24
		return r.Answer[0].(*dns.A).A.String()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if got := answer(); got != "192.0.2.2" {
		t.Fatalf("pinned by the file: got %s, want b's 192.0.2.2", got)
	}
	write("networks:\n  - {prefix: 203.0.113.0/24, datacenters: [b]}\n", 2*time.Hour)
	if errs := s.CheckNetworkFiles(log); len(errs) != 0 {
		t.Fatal(errs)
	}
	if got := answer(); got != "192.0.2.1" {
		t.Errorf("after the file dropped the client's network: got %s, want failover's first, 192.0.2.1", got)
	}
	write("networks:\n  - {prefix: 198.51.100.0/24, datacenters: [zz]}\n", time.Hour)
	errs := s.CheckNetworkFiles(log)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `networks[0].datacenters[0]: "zz" is not one of the service's datacenters`) ||
		!strings.Contains(errs[0].Error(), "keeping the last good networks") {
		t.Fatalf("bad edit: got %v, want an error naming the key", errs)
	}
	if got := answer(); got != "192.0.2.1" {
		t.Errorf("after a bad edit: got %s, want the last good table's answer", got)
	}
	// The same bad version is reported once, not at every check.
	if errs := s.CheckNetworkFiles(log); len(errs) != 0 {
		t.Errorf("second check of the same bad file: got %v, want nothing new", errs)
	}
	// A missing file at load is a configuration error naming the key.
	os.Remove(nets)
	_, err = config.Parse(filepath.Join(dir, "gslbd.yaml"), []byte(targetsCfg), config.Options{})
	if err == nil || !strings.Contains(err.Error(), "zones[0].services[0].networks_file: "+nets) {
		t.Errorf("missing networks file: got %v", err)
	}
}
