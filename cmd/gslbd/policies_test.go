package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// policiesConfig copies gslb/testdata/policies.yaml into dir with the
// GeoIP path made absolute, so a test can edit and reload it; drain lists
// datacenters to drain.
func policiesConfig(t *testing.T, dir string, drain ...string) string {
	t.Helper()
	b, err := os.ReadFile(repoFile("gslb", "testdata", "policies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := filepath.Abs(repoFile("configs", "demo", "geo.mmdb"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "city_db: ../../configs/demo/geo.mmdb", "city_db: "+db, 1)
	for _, id := range drain {
		s = strings.Replace(s, "{id: "+id+",", "{id: "+id+", drain: true,", 1)
	}
	return writeConfig(t, dir, s+"http: {allow_unauthenticated_loopback: true}\n")
}

func (d *daemonProc) askECS(t *testing.T, name string, qtype uint16, subnet string) []string {
	t.Helper()
	p := mustPrefix(t, subnet)
	family := uint16(1)
	if p.Addr().Is6() {
		family = 2
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	c := &dns.Client{Net: "udp", Timeout: 3e9}
	r, _, err := c.Exchange(m, d.dns)
	if err != nil {
		t.Fatalf("%s from %s: %v", name, subnet, err)
	}
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out
}

// TestPoliciesThroughDNS runs each policy in the real daemon, then drains
// datacenters by reloading the configuration and watches answers move.
func TestPoliciesThroughDNS(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, policiesConfig(t, dir))
	check := func(stage, name, subnet, want string) {
		t.Helper()
		if got := strings.Join(d.askECS(t, name+".p.test.", dns.TypeA, subnet), " "); got != want {
			t.Errorf("%s: %s from %s: got %q, want %q", stage, name, subnet, got, want)
		}
	}
	check("all up", "failover", "216.160.83.0/24", "192.0.2.3")
	check("all up", "hybrid", "202.196.224.0/20", "192.0.2.2")
	check("all up", "geo", "81.2.69.0/24", "192.0.2.3")
	check("all up", "geo", "216.160.83.0/24", "192.0.2.1 192.0.2.11")
	check("all up", "score", "175.16.199.0/24", "192.0.2.4")
	check("all up", "all", "175.16.199.0/24", "192.0.2.1 192.0.2.11 192.0.2.3 192.0.2.4")
	check("all up", "pinned", "81.2.69.200/32", "192.0.2.4")
	if got := d.askECS(t, "weighted.p.test.", dns.TypeA, "100.64.0.0/24"); len(got) == 0 {
		t.Errorf("weighted: no answer")
	}

	// Drain eu-central: failover moves to the next in order, geo's GB
	// list to its second entry.
	policiesConfig(t, dir, "eu-central")
	if out, code := runCLI(t, "ctl", "reload", "--addr", d.http); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	check("eu-central drained", "failover", "216.160.83.0/24", "192.0.2.1 192.0.2.11")
	check("eu-central drained", "geo", "81.2.69.0/24", "192.0.2.1 192.0.2.11")

	// Drain both of nodata's datacenters: NODATA, and the service shows as
	// all down in the metrics and the log.
	policiesConfig(t, dir, "eu-central", "us-west")
	if out, code := runCLI(t, "ctl", "reload", "--addr", d.http); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	check("eu-central and us-west drained", "nodata", "216.160.83.0/24", "")
	check("eu-central and us-west drained", "first", "216.160.83.0/24", "192.0.2.2")
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	if !strings.Contains(metrics, `gslb_service_all_down{service="nodata.p.test."} 1`) {
		t.Errorf("metrics: want nodata.p.test. all down:\n%s", grep(metrics, "all_down"))
	}
	if !d.logged(`"msg":"every datacenter of the service is down; answering by its when_all_down rule"`, `"service":"nodata.p.test."`) {
		t.Errorf("no all-down log line for nodata.p.test.")
	}
}
