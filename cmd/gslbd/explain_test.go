package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestExplainGolden pins explain's JSON for the demo configuration: the
// shape operators script against, and the decisions the demo teaches.
func TestExplainGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"explain-london.json", []string{"www.gslb.example", "81.2.69.142"}},
		{"explain-singapore-aaaa.json", []string{"www.gslb.example", "2400:8900::1", "--type", "AAAA"}},
		{"explain-unknown-client.json", []string{"www.gslb.example", "8.8.8.8"}},
		{"explain-no-ecs.json", []string{"WWW.gslb.example.", "89.160.20.7", "--no-ecs"}},
		{"explain-static.json", []string{"docs.gslb.example", "89.160.20.7"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"explain", "--config", repoFile("configs", "demo.yaml")}, tc.args...)
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestExplainGolden -update to create it)", err)
			}
			if !bytes.Equal(stdout.Bytes(), want) {
				t.Errorf("explain output differs from %s:\n got %s", path, stdout.String())
			}
		})
	}
}

func TestExplainErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"www.gslb.example", "not-an-ip"}, exitUsage, `CLIENT_IP: expected an IP address, got "not-an-ip"`},
		{[]string{"www.gslb.example"}, exitUsage, "expected NAME CLIENT_IP"},
		{[]string{"www.gslb.example", "1.2.3.4", "--type", "BOGUS"}, exitUsage, `--type: expected a DNS type`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"explain", "--config", repoFile("configs", "demo.yaml")}, tc.args...), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("explain %v: got exit %d %q, want %d containing %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestDemoRegions queries the running demo daemon with ECS from each
// demo region and expects the nearest datacenter's address, with the
// GeoIP network as the scope; explain over HTTP agrees with DNS.
func TestDemoRegions(t *testing.T) {
	d := startDaemon(t, repoFile("configs", "demo.yaml"))
	for _, tc := range []struct {
		subnet string
		qtype  uint16
		want   string
		scope  uint8
	}{
		{"89.160.20.0/24", dns.TypeA, "198.51.100.10", 24},      // Frankfurt: eu-central-1
		{"81.2.69.0/24", dns.TypeA, "198.51.100.10", 24},        // London: eu-central-1
		{"216.160.83.0/24", dns.TypeA, "192.0.2.10", 24},        // Virginia: us-east-1
		{"175.16.199.0/24", dns.TypeA, "203.0.113.10", 24},      // Singapore: ap-southeast-1
		{"2a02:d000::/48", dns.TypeAAAA, "2001:db8:20::10", 24}, // Frankfurt over IPv6
	} {
		p := mustPrefix(t, tc.subnet)
		family := uint16(1)
		if p.Addr().Is6() {
			family = 2
		}
		m := new(dns.Msg)
		m.SetQuestion("www.gslb.example.", tc.qtype)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		c := &dns.Client{Net: "udp", Timeout: 3e9}
		r, _, err := c.Exchange(m, d.dns)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\t"+tc.want) {
			t.Errorf("ECS %s: got %v, want %s", tc.subnet, r.Answer, tc.want)
		}
		var scope uint8 = 255
		for _, o := range r.IsEdns0().Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				scope = e.SourceScope
			}
		}
		if scope != tc.scope {
			t.Errorf("ECS %s: scope %d, want %d", tc.subnet, scope, tc.scope)
		}
	}

	code, body := httpDo(t, "GET", "http://"+d.http+"/api/v1/explain?name=www.gslb.example.&client=175.16.199.7", "")
	var tr struct {
		Winners  []string
		ECSScope int `json:"ecs_scope"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &tr) != nil || len(tr.Winners) != 1 || tr.Winners[0] != "ap-southeast-1" || tr.ECSScope != 24 {
		t.Errorf("explain over HTTP: got %d %s, want ap-southeast-1 with scope 24", code, body)
	}
	for _, bad := range []struct{ query, want string }{
		{"name=www.gslb.example.&client=999.1.1.1", `client: expected an IP address`},
		{"client=1.2.3.4", "name: expected a domain name"},
		{"name=www.gslb.example.&client=1.2.3.4&type=XYZ", "type: expected a DNS type"},
	} {
		code, body := httpDo(t, "GET", "http://"+d.http+"/api/v1/explain?"+bad.query, "")
		if code != 400 || !strings.Contains(body, bad.want) {
			t.Errorf("explain?%s: got %d %s, want 400 naming the parameter", bad.query, code, body)
		}
	}
}
