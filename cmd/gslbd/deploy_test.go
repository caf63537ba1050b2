package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// requireTool finds an external checker; CI installs them all, so there
// a missing one fails the test instead of skipping the check.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (Debian package %s); .ci/run installs it", name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s)", name, pkg)
	}
	return p
}

// TestMakeInstall installs into a scratch tree the way an operator would,
// then checks what landed: the configuration passes check-config with the
// token make install wrote, and systemd accepts the units as installed.
func TestMakeInstall(t *testing.T) {
	root := t.TempDir()
	etc, units, bin := filepath.Join(root, "etc"), filepath.Join(root, "units"), filepath.Join(root, "bin")
	cmd := exec.Command("make", "-C", repoFile(), "-o", "build", "install", "BIN="+gslbdBin,
		"BINDIR="+bin, "SYSCONFDIR="+etc, "UNITDIR="+units, "INSTALL_USER=no")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"bin/gslbd", "units/gslbd.service", "units/gslbd.socket", "etc/gslbd/gslbd.yaml", "etc/gslbd/token"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("make install did not install %s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(etc, "gslbd", "token")); err == nil && fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("token mode %v: readable by others", fi.Mode().Perm())
	}
	if out, code := runCLI(t, "check-config", "--config", filepath.Join(etc, "gslbd", "gslbd.yaml")); code != 0 {
		t.Errorf("installed configuration refused (%d):\n%s", code, out)
	}
	unit, _ := os.ReadFile(filepath.Join(units, "gslbd.service"))
	for _, want := range []string{
		"Type=notify", "ExecStart=" + bin + "/gslbd serve --config " + etc + "/gslbd/gslbd.yaml",
		"ExecReload=" + bin + "/gslbd ctl reload --config " + etc + "/gslbd/gslbd.yaml",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE", "User=gslbd", "ProtectSystem=strict", "StateDirectory=gslbd",
	} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("installed unit lacks %q", want)
		}
	}

	analyze := requireTool(t, "systemd-analyze", "systemd")
	// verify prints what it ignores (unknown keys, bad values) yet exits
	// 0, so any output at all is a failure.
	out, err := exec.Command(analyze, "verify", filepath.Join(units, "gslbd.service"), filepath.Join(units, "gslbd.socket")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestPrometheusRules checks the rule and scrape files with promtool and
// runs the alert unit tests in deploy/prometheus/alerts_test.yml.
func TestPrometheusRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	dir, err := filepath.Abs(repoFile("deploy", "prometheus"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(dir, "alerts.yml")},
		{"test", "rules", filepath.Join(dir, "alerts_test.yml")},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a row in docs/operations.md saying what to do.
	rules, err := os.ReadFile(filepath.Join(dir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := os.ReadFile(repoFile("docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1) {
		if !strings.Contains(string(ops), "| `"+m[1]+"` |") {
			t.Errorf("docs/operations.md has no row for alert %s", m[1])
		}
	}
	// The scrape file names the rules where an installation puts them.
	scrape, err := os.ReadFile(filepath.Join(dir, "scrape.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	scrape = []byte(strings.Replace(string(scrape), "/etc/prometheus/rules/gslbd-alerts.yml", filepath.Join(dir, "alerts.yml"), 1))
	if err := os.WriteFile(filepath.Join(tmp, "scrape.yml"), scrape, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(tmp, "scrape.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// metricName matches the metric names an expression reads.
var metricName = regexp.MustCompile(`\b(?:gslb|go|process)_[a-z0-9_]+\b`)

// monitoredMetrics lists every metric the alert rules and the dashboard
// read, with the file that reads it.
func monitoredMetrics(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(repoFile("deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				names[m] = "alerts.yml " + r.Alert
			}
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err = os.ReadFile(repoFile("deploy", "grafana", "gslbd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/gslbd.json: %v", err)
	}
	panels := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			panels++
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				names[m] = "gslbd.json panel " + p.Title
			}
		}
	}
	if len(rules.Groups) == 0 || panels == 0 || len(names) < 20 {
		t.Fatalf("read %d rule groups, %d panel queries, %d metric names: the files did not parse as expected", len(rules.Groups), panels, len(names))
	}
	return names
}

const monitoringConfig = `
instance: {name: mon-a, datacenter: dc-a, datacenter_id: 1}
http: {allow_unauthenticated_loopback: true}
geoip: {city_db: %[1]s}
sessions:
  store: redis
  redis: {addrs: ["%[2]s"], lookup_budget: 50ms}
replication:
  mode: active-active
  peers: [{datacenter: dc-b, addrs: ["%[3]s"]}]
fleet: {enabled: true}
acme:
  enabled: true
  tsig_keys: [{name: mon-key., secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]
health_checks:
  web: {type: http, path: /health, interval: 200ms, timeout: 150ms}
datacenters:
  - {id: dc-a, endpoints: [{address: 192.0.2.1, check: web, check_address: "%[4]s"}]}
  - {id: dc-b, endpoints: [{address: 192.0.2.2, check: web, check_address: "%[4]s"}]}
zones:
  - origin: m.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: failover, datacenters: [dc-a, dc-b], sticky: true}
`

// TestMonitoredMetricsExist: every metric an alert or a dashboard panel
// reads is one gslbd exports, so a renamed metric cannot leave an alert
// that never fires. The daemon runs with every subsystem on and does one
// of each kind of work, so the labelled series exist.
func TestMonitoredMetricsExist(t *testing.T) {
	want := monitoredMetrics(t)
	own, peer := redistest.Start(t), redistest.Start(t)
	ep := newHealthEndpoint(t)
	db, err := filepath.Abs(repoFile("configs", "demo", "geo.mmdb"))
	if err != nil {
		t.Fatal(err)
	}
	file := writeConfig(t, t.TempDir(), fmt.Sprintf(monitoringConfig, db, own.Addr(), peer.Addr(), ep.Listener.Addr()))
	d := startDaemon(t, file)
	d.exchange(t, "udp", "www.m.test.", 1)
	d.exchange(t, "tcp", "nothing.m.test.", 1)
	if out, code := runCLI(t, "ctl", "reload", "--addr", d.http); code != 0 {
		t.Fatalf("ctl reload: %d %s", code, out)
	}
	if code, out := httpPost(t, "http://"+d.http+"/api/v1/drills", `{"service": "www.m.test.", "fail": "dc-a", "probes": ["81.2.69.142"]}`); code != 200 {
		t.Fatalf("drill: %d %s", code, out)
	}

	var exported []string
	missing := func() bool {
		for m := range want {
			if !slices.Contains(exported, m) {
				return true
			}
		}
		return false
	}
	// Probe rounds and replication reads fill some series in shortly.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, body := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
		exported = exported[:0]
		sc := bufio.NewScanner(strings.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
				exported = append(exported, f[2])
				if f[3] == "histogram" {
					exported = append(exported, f[2]+"_bucket", f[2]+"_sum", f[2]+"_count")
				}
			}
		}
		if !missing() || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for m, where := range want {
		if !slices.Contains(exported, m) {
			t.Errorf("%s reads %s, which /metrics does not export", where, m)
		}
	}
}
