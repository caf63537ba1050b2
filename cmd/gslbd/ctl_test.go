package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/session"
)

// These tests run "gslbd ctl" as an operator does, against a real daemon.

// runCtl runs gslbd with stdout and stderr apart, for -o json output.
func runCtl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gslbdBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// ctlJSON runs a ctl command with -o json and decodes its stdout.
func ctlJSON(t *testing.T, v any, args ...string) int {
	t.Helper()
	out, errs, code := runCtl(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("gslbd %s: stdout is not JSON (exit %d): %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, err, out, errs)
	}
	return code
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCtlStatusAndExplain(t *testing.T) {
	d := startDaemon(t, repoFile("configs", "demo.yaml"))
	out, code := runCLI(t, "ctl", "status", "--addr", d.http)
	if code != 0 {
		t.Fatalf("ctl status: exit %d\n%s", code, out)
	}
	for _, want := range []string{"DATACENTER", "ENDPOINT", "STATE", "SINCE", "LAST RESULT", "RTT", "QUALITY", "OVERRIDE", "ready, 3 datacenters"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl status: no %q in\n%s", want, out)
		}
	}
	for _, dc := range []string{"us-east-1", "eu-central-1", "ap-southeast-1"} {
		if !regexp.MustCompile(`(?m)^` + dc + `\s+-\s+up\s`).MatchString(out) {
			t.Errorf("ctl status: no up row for datacenter %s in\n%s", dc, out)
		}
	}
	if !regexp.MustCompile(`(?m)^eu-central-1\s+2001:db8:20::10\s+up\s`).MatchString(out) {
		t.Errorf("ctl status: no row for endpoint 2001:db8:20::10 in\n%s", out)
	}
	var st struct {
		Ready  bool `json:"ready"`
		Health struct {
			Datacenters []struct {
				ID string `json:"id"`
			} `json:"datacenters"`
		} `json:"health"`
	}
	if code := ctlJSON(t, &st, "ctl", "status", "--addr", d.http); code != 0 || !st.Ready || len(st.Health.Datacenters) != 3 {
		t.Errorf("ctl status -o json: exit %d, %+v; want ready and 3 datacenters", code, st)
	}

	// explain: the summary names the winner, London's location, the
	// candidates and the ECS scope.
	out, code = runCLI(t, "ctl", "explain", "www.gslb.example", "81.2.69.142", "--addr", d.http)
	if code != 0 {
		t.Fatalf("ctl explain: exit %d\n%s", code, out)
	}
	if !regexp.MustCompile(`(?m)^winner:\s+eu-central-1$`).MatchString(out) {
		t.Errorf("ctl explain: winner eu-central-1 not printed:\n%s", out)
	}
	for _, want := range []string{"London", "policy score", "us-east-1", "ap-southeast-1", "lowest score", "198.51.100.10", "ECS scope: /24",
		"reason:    eu-central-1 has the lowest score"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl explain: no %q in\n%s", want, out)
		}
	}
	var tr gslb.Trace
	if code := ctlJSON(t, &tr, "ctl", "explain", "www.gslb.example", "81.2.69.142", "--addr", d.http); code != 0 ||
		len(tr.Winners) != 1 || tr.Winners[0] != "eu-central-1" || tr.ECSScope == nil || *tr.ECSScope != 24 {
		t.Errorf("ctl explain -o json: exit %d, winners %v scope %v", code, tr.Winners, tr.ECSScope)
	}
	out, code = runCLI(t, "ctl", "explain", "www.gslb.example", "2400:8900::1", "--type", "AAAA", "--no-ecs", "--addr", d.http)
	if code != 0 || !strings.Contains(out, "winner:    ap-southeast-1") || !strings.Contains(out, "ECS scope: none") ||
		!strings.Contains(out, "located by the source address") {
		t.Errorf("ctl explain AAAA --no-ecs: exit %d\n%s", code, out)
	}
	// The API's refusal is printed as it said it, with exit 1.
	out, code = runCLI(t, "ctl", "explain", "bad..name", "81.2.69.142", "--addr", d.http)
	if code != 1 || !strings.Contains(out, "400 Bad Request: name: expected a domain name") {
		t.Errorf("ctl explain of a bad name: got exit %d %q, want 1 and the API's error", code, out)
	}

	// The demo has no sticky service, so no sessions API: exit 1, said so.
	out, code = runCLI(t, "ctl", "sessions", "get", "--client", "81.2.69.142", "--service", "www.gslb.example", "--addr", d.http)
	if code != 1 || !strings.Contains(out, "404") || !strings.Contains(out, "sticky") {
		t.Errorf("ctl sessions on a daemon without sticky services: got exit %d %q", code, out)
	}

	// An IPv6 endpoint in the path.
	out, code = runCLI(t, "ctl", "drain", "eu-central-1", "2001:db8:20::10", "--reason", "ipv6 test", "--addr", d.http)
	if code != 0 || !strings.Contains(out, "endpoint 2001:db8:20::10 of datacenter eu-central-1 drained") {
		t.Errorf("ctl drain of an IPv6 endpoint: exit %d %q", code, out)
	}
	if out, _ := runCLI(t, "ctl", "status", "--addr", d.http); !regexp.MustCompile(`(?m)^eu-central-1\s+2001:db8:20::10\s+.*down: ipv6 test`).MatchString(out) {
		t.Errorf("ctl status does not show the endpoint's override:\n%s", out)
	}
	if out, code := runCLI(t, "ctl", "auto", "eu-central-1", "2001:db8:20::10", "--addr", d.http); code != 0 {
		t.Errorf("ctl auto of an IPv6 endpoint: exit %d %q", code, out)
	}
}

// TestCtlDrainUndrainAuto: drain, undrain (force up) and auto move the
// answers between two probed datacenters, for datacenters and endpoints.
func TestCtlDrainUndrainAuto(t *testing.T) {
	p, b := newHealthEndpoint(t), newHealthEndpoint(t)
	d := startDaemon(t, writeConfig(t, t.TempDir(), fmt.Sprintf(healthConfig, p.Listener.Addr(), b.Listener.Addr())))
	answer := func() string {
		r := d.exchange(t, "udp", "www.h.test.", dns.TypeA)
		if len(r.Answer) != 1 {
			return ""
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	wantAnswer := func(what, want string) {
		t.Helper()
		eventually(t, what+": answer "+want, func() bool { return answer() == want })
	}
	ctl := func(args ...string) string {
		t.Helper()
		out, code := runCLI(t, append(append([]string{"ctl"}, args...), "--addr", d.http)...)
		if code != 0 {
			t.Fatalf("ctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	status := func() string { return ctl("status") }
	const primary, backup = "192.0.2.1", "192.0.2.2"
	wantAnswer("healthy", primary)

	// Drain: the answer moves, status shows why.
	if out := ctl("drain", "primary", "--reason", "maintenance window"); !strings.Contains(out, "datacenter primary drained") {
		t.Errorf("ctl drain: %q", out)
	}
	wantAnswer("drained", backup)
	if st := status(); !regexp.MustCompile(`(?m)^primary\s+-\s+down\s.*down: maintenance window`).MatchString(st) {
		t.Errorf("status does not show the drain:\n%s", st)
	}
	if out := ctl("auto", "primary"); !strings.Contains(out, "back to its probes") {
		t.Errorf("ctl auto: %q", out)
	}
	wantAnswer("back to probes", primary)

	// Undrain forces up what the probes call down. A datacenter forced
	// up still leaves out endpoints its probes call down (today it then
	// answers no address at all), so the endpoint is forced up as well.
	p.up.Store(false)
	wantAnswer("primary failing", backup)
	ctl("undrain", "primary", "--reason", "the probe is wrong")
	ctl("undrain", "primary", primary, "--reason", "the probe is wrong")
	wantAnswer("forced up", primary)
	if st := status(); !regexp.MustCompile(`(?m)^primary\s+-\s+up\s.*up: the probe is wrong`).MatchString(st) ||
		!regexp.MustCompile(`(?m)^primary\s+192\.0\.2\.1\s+down\s.*up: the probe is wrong`).MatchString(st) {
		t.Errorf("status does not show the forced-up datacenter and endpoint over the probe's down:\n%s", st)
	}
	ctl("auto", "primary", primary)
	ctl("auto", "primary")
	wantAnswer("probes again", backup)
	p.up.Store(true)
	wantAnswer("primary recovered", primary)

	// One endpoint, -o json.
	var res map[string]string
	if code := ctlJSON(t, &res, "ctl", "drain", "primary", primary, "--reason", "bad host", "--addr", d.http); code != 0 || res["status"] != "ok" || res["state"] != "down" {
		t.Errorf("ctl drain ENDPOINT -o json: exit %d %v", code, res)
	}
	wantAnswer("endpoint drained", backup)
	ctl("auto", "primary", primary)
	wantAnswer("endpoint back", primary)

	// What the API refuses is exit 1 with its message; what ctl refuses
	// before asking is exit 2.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"drain", "nowhere", "--reason", "x"}, 1, `404 Not Found: no datacenter "nowhere"`},
		{[]string{"drain", "primary", "192.0.2.9", "--reason", "x"}, 1, "has no endpoint 192.0.2.9"},
		{[]string{"drain", "primary"}, 2, "--reason is required"},
		{[]string{"undrain", "primary", "--reason", " "}, 2, "--reason is required"},
		{[]string{"drain", "primary", "not-an-ip", "--reason", "x"}, 2, `ENDPOINT: expected an endpoint's IP address, got "not-an-ip"`},
	} {
		out, code := runCLI(t, append(append([]string{"ctl"}, tc.args...), "--addr", d.http)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("ctl %s: got exit %d %q, want %d and %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
	if a := answer(); a != primary {
		t.Errorf("after refused overrides: answer %s, want %s", a, primary)
	}
}

// TestCtlToken: writes need the token; ctl takes it from --token-file or
// from the configuration; reads of status stay open.
func TestCtlToken(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("t0ken-abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wrong"), []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(fmt.Sprintf(baseConfig, "x"), "http: {allow_unauthenticated_loopback: true}", "http: {token_file: token}", 1)
	file := writeConfig(t, dir, body)
	d := startDaemon(t, file)

	for _, extra := range [][]string{nil, {"--token-file", filepath.Join(dir, "wrong")}} {
		args := append([]string{"ctl", "drain", "dc-a", "--reason", "x", "--addr", d.http}, extra...)
		out, code := runCLI(t, args...)
		if code != 1 || !strings.Contains(out, "401 Unauthorized: missing or wrong bearer token") {
			t.Errorf("gslbd %s: got exit %d %q, want 1 and the 401", strings.Join(args, " "), code, out)
		}
	}
	// -o json: the API's error body on stdout, the message on stderr.
	var e map[string]string
	if code := ctlJSON(t, &e, "ctl", "auto", "dc-a", "--addr", d.http); code != 1 || e["error"] != "missing or wrong bearer token" {
		t.Errorf("ctl auto -o json without a token: exit %d %v", code, e)
	}
	if out, code := runCLI(t, "ctl", "drain", "dc-a", "--reason", "x", "--addr", d.http, "--token-file", filepath.Join(dir, "token")); code != 0 {
		t.Errorf("ctl drain --token-file: exit %d %q", code, out)
	}
	if out, code := runCLI(t, "ctl", "auto", "dc-a", "--config", file, "--addr", d.http); code != 0 {
		t.Errorf("ctl auto --config: exit %d %q", code, out)
	}
	if out, code := runCLI(t, "ctl", "status", "--addr", d.http); code != 0 || !strings.Contains(out, "dc-a") {
		t.Errorf("ctl status without a token: exit %d %q, want 0 (status is open)", code, out)
	}
	var res map[string]any
	if code := ctlJSON(t, &res, "ctl", "reload", "--config", file, "--addr", d.http); code != 0 || res["status"] != "ok" {
		t.Errorf("ctl reload -o json: exit %d %v", code, res)
	}
	if out, code := runCLI(t, "ctl", "reload", "--addr", d.http); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("ctl reload without a token: exit %d %q, want 1 and 401", code, out)
	}
}

const ctlSessionsConfig = `
instance: {name: ctl-sessions}
http: {allow_unauthenticated_loopback: true}
sessions: {store: memory}
datacenters:
  - {id: dc-a, lat: 50.1, lon: 8.7, endpoints: [{address: 192.0.2.1}]}
  - {id: dc-b, lat: 39.0, lon: -77.5, endpoints: [{address: 192.0.2.2}]}
zones:
  - origin: s.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: score, datacenters: [dc-a, dc-b], sticky: true}
`

func TestCtlSessions(t *testing.T) {
	d := startDaemon(t, writeConfig(t, t.TempDir(), ctlSessionsConfig))
	got := askFrom(t, d.dns, "198.51.100.0/24")
	dc := map[string]string{"192.0.2.1": "dc-a", "192.0.2.2": "dc-b"}[got]
	if dc == "" {
		t.Fatalf("answer %q is neither datacenter", got)
	}
	get := []string{"ctl", "sessions", "get", "--client", "198.51.100.7", "--service", "www.s.test", "--addr", d.http}
	eventually(t, "the session to be readable", func() bool { _, code := runCLI(t, get...); return code == 0 })
	out, _ := runCLI(t, get...)
	for _, want := range []string{"service:", "www.s.test.", "client:", "198.51.100.0/24", "datacenter:", dc, "created:", "last accessed:"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl sessions get: no %q in\n%s", want, out)
		}
	}
	var s session.Session
	if code := ctlJSON(t, &s, get...); code != 0 || s.Datacenter != dc || s.Client.String() != "198.51.100.0/24" || s.Service != "www.s.test." || s.ID == 0 {
		t.Errorf("ctl sessions get -o json: exit %d %+v", code, s)
	}
	out, code := runCLI(t, "ctl", "sessions", "delete", "--client", "198.51.100.7", "--service", "www.s.test.", "--addr", d.http)
	if code != 0 || !strings.Contains(out, "deleted the session of 198.51.100.0/24 at www.s.test.") {
		t.Errorf("ctl sessions delete: exit %d %q", code, out)
	}
	out, code = runCLI(t, get...)
	if code != 1 || !strings.Contains(out, "404 Not Found: no session for 198.51.100.0/24 at www.s.test.") {
		t.Errorf("ctl sessions get after delete: exit %d %q, want 1 and the API's 404", code, out)
	}
	for _, args := range [][]string{
		{"sessions"},
		{"sessions", "get", "--service", "www.s.test"},
		{"sessions", "get", "--client", "198.51.100.7"},
		{"sessions", "frob", "--client", "198.51.100.7", "--service", "www.s.test"},
		{"sessions", "get", "--client", "198.51.100.0/24", "--service", "www.s.test"},
	} {
		if out, code := runCLI(t, append(append([]string{"ctl"}, args...), "--addr", d.http)...); code != 2 {
			t.Errorf("ctl %s: got exit %d %q, want 2", strings.Join(args, " "), code, out)
		}
	}
}

// TestCtlUsageAndUnreachable: command lines ctl cannot send are exit 2,
// a daemon that does not answer is exit 3, a --config that does not load
// is exit 1 (not sent).
func TestCtlUsageAndUnreachable(t *testing.T) {
	closed := closedAddr(t)
	for _, args := range [][]string{
		{},
		{"frob"},
		{"status", "extra"},
		{"status", "-o", "yaml"},
		{"status", "--bogus"},
		{"explain", "www.gslb.example"},
		{"explain", "www.gslb.example", "not-an-ip"},
		{"explain", "www.gslb.example", "81.2.69.142", "--type", "BOGUS"},
		{"drain"},
		{"drain", "dc-a"},
		{"undrain", "dc-a"},
		{"auto", "dc-a", "192.0.2.1", "extra"},
		{"sessions", "get", "--service", "www.s.test"},
		{"reload", "extra"},
		{"drill", "--fail", "dc-a", "--probe", "192.0.2.1"},
		{"drill", "--service", "www", "--probe", "192.0.2.1"},
		{"drill", "--service", "www", "--fail", "dc-a"},
		{"drill", "--service", "www", "--fail", "dc-a", "--probe", "nope"},
		{"drills", "extra"},
	} {
		// --addr of a closed port: a command line wrongly accepted shows
		// as exit 3, never as a request to some other daemon.
		full := append([]string{"ctl"}, args...)
		if len(args) > 0 {
			full = append(full, "--addr", closed)
		}
		out, code := runCLI(t, full...)
		if code != exitUsage || !strings.Contains(out, "gslbd ctl") {
			t.Errorf("gslbd %s: got exit %d %q, want 2", strings.Join(full, " "), code, out)
		}
	}
	for _, args := range [][]string{{"ctl", "--help"}, {"ctl", "help"}, {"ctl", "status", "--help"}} {
		if out, code := runCLI(t, args...); code != 0 || !strings.Contains(out, "Usage: gslbd ctl") {
			t.Errorf("gslbd %s: got exit %d %q, want 0 and the usage", strings.Join(args, " "), code, out)
		}
	}

	for _, args := range [][]string{
		{"status"},
		{"explain", "www.gslb.example", "81.2.69.142"},
		{"drain", "dc-a", "--reason", "x"},
		{"undrain", "dc-a", "192.0.2.1", "--reason", "x"},
		{"auto", "dc-a"},
		{"sessions", "get", "--client", "192.0.2.1", "--service", "www.s.test"},
		{"sessions", "delete", "--client", "192.0.2.1", "--service", "www.s.test"},
		{"reload"},
		{"drill", "--service", "www", "--fail", "dc-a", "--probe", "192.0.2.0/24", "--live"},
		{"drills"},
	} {
		full := append(append([]string{"ctl"}, args...), "--addr", closed)
		out, code := runCLI(t, full...)
		if code != exitFatal || !strings.Contains(out, "cannot reach the daemon at "+closed) {
			t.Errorf("gslbd %s: got exit %d %q, want 3", strings.Join(full, " "), code, out)
		}
	}

	out, code := runCLI(t, "ctl", "status", "--config", "/nonexistent/gslbd.yaml")
	if code != exitFail || !strings.Contains(out, "not sent") {
		t.Errorf("ctl status --config of a missing file: got exit %d %q, want 1 and not sent", code, out)
	}
}

// TestCtlDrills exercises ctl drill and ctl drills. The drills API comes
// with the drills work: against a daemon without it (404), the test skips.
func TestCtlDrills(t *testing.T) {
	d := startDaemon(t, repoFile("configs", "demo.yaml"))
	if code, _ := httpDo(t, "GET", "http://"+d.http+"/api/v1/drills", ""); code == http.StatusNotFound {
		t.Skip("drills endpoint pending")
	}
	var list map[string][]json.RawMessage
	if code := ctlJSON(t, &list, "ctl", "drills", "--addr", d.http); code != 0 {
		t.Fatalf("ctl drills -o json: exit %d", code)
	}
	if _, ok := list["drills"]; !ok {
		t.Fatalf("ctl drills -o json: %v, want {\"drills\": [...]}", list)
	}
	before := len(list["drills"])

	drill := []string{"ctl", "drill", "--service", "www.gslb.example.", "--fail", "eu-central-1",
		"--probe", "81.2.69.142", "--probe", "89.160.20.0/24", "--addr", d.http}
	var rep ctlDrillReport
	code := ctlJSON(t, &rep, drill...)
	if (code != 0 || !rep.Success) && (code != 1 || rep.Success) {
		t.Errorf("ctl drill: exit %d with success %t; want 0 for a success and 1 for a failure", code, rep.Success)
	}
	if rep.Mode != "dry-run" || rep.Fail != "eu-central-1" || !strings.HasPrefix(rep.Service, "www.gslb.example") ||
		len(rep.Probes) != 2 || len(rep.Steps) == 0 || ctlRaw(rep.ID) == "-" {
		t.Errorf("ctl drill -o json: report %+v", rep)
	}
	// A dry run changes nothing.
	if out, _ := runCLI(t, "ctl", "explain", "www.gslb.example", "81.2.69.142", "--addr", d.http); !strings.Contains(out, "winner:    eu-central-1") {
		t.Errorf("after a dry-run drill, explain:\n%s", out)
	}

	out, code := runCLI(t, drill...)
	if code > 1 {
		t.Fatalf("ctl drill: exit %d\n%s", code, out)
	}
	for _, want := range []string{"eu-central-1", "dry-run", "steps:", "probes:", "81.2.69.142", "89.160.20.0/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("ctl drill: no %q in\n%s", want, out)
		}
	}
	out, code = runCLI(t, "ctl", "drills", "--addr", d.http)
	if code != 0 || !strings.Contains(out, ctlRaw(rep.ID)) || !strings.Contains(out, "eu-central-1") {
		t.Errorf("ctl drills: exit %d, the drill %s not listed:\n%s", code, ctlRaw(rep.ID), out)
	}
	list = nil
	if code := ctlJSON(t, &list, "ctl", "drills", "--addr", d.http); code != 0 || len(list["drills"]) != before+2 {
		t.Errorf("ctl drills -o json: exit %d, %d drills, want %d", code, len(list["drills"]), before+2)
	}
	// The API's refusal: exit 1 with its message.
	out, code = runCLI(t, "ctl", "drill", "--service", "www.gslb.example.", "--fail", "nowhere", "--probe", "81.2.69.142", "--addr", d.http)
	if code != 1 || !strings.Contains(out, "400 Bad Request: ") {
		t.Errorf("ctl drill of an unknown datacenter: exit %d %q, want 1 and the API's 400", code, out)
	}
}
