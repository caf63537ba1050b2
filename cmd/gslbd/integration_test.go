package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// These tests build the real binary once and run it as operators do: a
// process with a config file, queried over real sockets on loopback.

var gslbdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gslbd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gslbdBin = filepath.Join(dir, "gslbd")
	build := exec.Command("go", "build", "-race", "-o", gslbdBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gslbd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemonProc is a running gslbd and what it said when it became ready.
type daemonProc struct {
	cmd    *exec.Cmd
	dns    string // host:port, UDP and TCP
	http   string
	mu     sync.Mutex
	logs   bytes.Buffer
	exited chan error
}

func (d *daemonProc) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// logged reports whether one log line contains every part.
func (d *daemonProc) logged(parts ...string) bool {
	for _, line := range strings.Split(d.log(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// startDaemon runs "gslbd serve" on free loopback ports and waits for its
// ready line (the listeners are bound when it is printed).
func startDaemon(t *testing.T, cfgFile string, extra ...string) *daemonProc {
	t.Helper()
	args := append([]string{"serve", "--config", cfgFile, "--dns.listen", "127.0.0.1:0",
		"--http.listen", "127.0.0.1:0", "--log.format", "json"}, extra...)
	return startDaemonCmd(t, exec.Command(gslbdBin, args...))
}

// startDaemonCmd starts a prepared gslbd command (its own environment or
// inherited descriptors) and waits for its "gslbd ready" line.
func startDaemonCmd(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, exited: make(chan error, 1)}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			d.mu.Lock()
			d.logs.Write(line)
			d.logs.WriteByte('\n')
			d.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "gslbd ready" {
				ready <- rec
			}
		}
		d.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("gslbd log:\n%s", d.log())
		}
	})
	select {
	case rec := <-ready:
		for _, a := range rec["dns"].([]any) {
			if s := a.(string); strings.HasPrefix(s, "udp/") {
				d.dns = strings.TrimPrefix(s, "udp/")
			}
		}
		d.http = rec["http"].(string)
	case err := <-d.exited:
		t.Fatalf("gslbd exited before ready: %v\n%s", err, d.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("gslbd not ready after 20s:\n%s", d.log())
	}
	return d
}

func (d *daemonProc) exchange(t *testing.T, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	r, _, err := c.Exchange(m, d.dns)
	if err != nil {
		t.Fatalf("%s %s %s: %v", proto, name, dns.TypeToString[qtype], err)
	}
	return r
}

// eventually polls cond every 50ms for up to 10s; tests wait on state,
// never on a fixed sleep.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func repoFile(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

func TestServeDemo(t *testing.T) {
	d := startDaemon(t, repoFile("configs", "demo.yaml"))
	for _, proto := range []string{"udp", "tcp"} {
		r := d.exchange(t, proto, "gslb.example.", dns.TypeSOA)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
			t.Errorf("%s SOA: got %s AA %t %d answers, want an authoritative SOA", proto, dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
		}
		r = d.exchange(t, proto, "all.gslb.example.", dns.TypeA)
		if len(r.Answer) != 3 {
			t.Errorf("%s www A: got %v, want the 3 datacenters' IPv4 endpoints", proto, r.Answer)
		}
		r = d.exchange(t, proto, "example.com.", dns.TypeA)
		if r.Rcode != dns.RcodeRefused || r.Authoritative {
			t.Errorf("%s out of zone: got %s AA %t, want REFUSED without AA", proto, dns.RcodeToString[r.Rcode], r.Authoritative)
		}
	}

	// A response (QR set) is never answered, and garbage does not stop the
	// server: the next query is answered.
	conn, err := net.Dial("udp", d.dns)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp := new(dns.Msg)
	resp.SetQuestion("gslb.example.", dns.TypeSOA)
	resp.Response = true
	b, _ := resp.Pack()
	for _, pkt := range [][]byte{b, {0xde, 0xad}, bytes.Repeat([]byte{0xff}, 300)} {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			break // deadline: nothing more came back
		}
		var m dns.Msg
		if m.Unpack(buf[:n]) == nil && m.Id == resp.Id && m.Rcode != dns.RcodeFormatError {
			t.Errorf("a packet with QR set was answered: %v", &m)
		}
	}
	if r := d.exchange(t, "udp", "gslb.example.", dns.TypeSOA); r.Rcode != dns.RcodeSuccess {
		t.Errorf("after garbage: got %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}

	// HTTP: liveness, readiness, metrics.
	for path, want := range map[string]string{"/healthz": `"alive"`, "/readyz": `"ready"`, "/metrics": "gslb_build_info{"} {
		code, body := httpDo(t, "GET", "http://"+d.http+path, "")
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: got %d %q, want 200 containing %s", path, code, trim(body), want)
		}
	}
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	if !strings.Contains(metrics, `gslb_dns_responses_total{proto="tcp",qtype="SOA",rcode="NOERROR",zone="gslb.example."} 1`) {
		t.Errorf("metrics: TCP SOA response not counted:\n%s", grep(metrics, "gslb_dns_responses_total"))
	}
	if !strings.Contains(metrics, `gslb_dns_malformed_requests_total{proto="udp"}`) {
		t.Errorf("metrics: malformed packets not counted:\n%s", grep(metrics, "malformed"))
	}
}

func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig is not installed; CI must install bind9-dnsutils")
		}
		t.Skip("dig not installed (Debian package bind9-dnsutils); CI installs it")
	}
	d := startDaemon(t, repoFile("configs", "demo.yaml"))
	host, port, _ := net.SplitHostPort(d.dns)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gslb.example", "SOA", "+norec"}, "flags: qr aa;"},
		{[]string{"WWW.gslb.example", "A", "+tcp", "+subnet=216.160.83.0/24"}, "WWW.gslb.example.\t30\tIN\tA\t192.0.2.10"},
		{[]string{"www.gslb.example", "A", "+subnet=89.160.20.0/24"}, "CLIENT-SUBNET: 89.160.20.0/24/24"},
		{[]string{"www.gslb.example", "A", "+subnet=175.16.199.0/24"}, "www.gslb.example.\t30\tIN\tA\t203.0.113.10"},
		{[]string{"nope.gslb.example", "A"}, "status: NXDOMAIN"},
		{[]string{"www.gslb.example", "A", "+nsid"}, `("gslb-demo-1")`},
		{[]string{"id.server", "CH", "TXT"}, `"gslb-demo-1"`},
		{[]string{"gslb.example", "SOA", "+edns=1", "+noednsneg"}, "status: BADVERS"},
	} {
		args := append([]string{"@" + host, "-p", port, "+time=3", "+tries=1"}, tc.args...)
		out, err := exec.Command(dig, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("dig %s: got %v\n%s\nwant it to contain %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	file := filepath.Join(dir, "gslbd.yaml")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

const baseConfig = `
instance: {name: it-1}
http: {allow_unauthenticated_loopback: true}
datacenters:
  - {id: dc-a, endpoints: [{address: 192.0.2.1}]}
zones:
  - origin: it.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    records:
      - {name: "@", type: TXT, data: '"%s"'}
    services:
      - {name: www, datacenters: [dc-a]}
`

func txtOf(t *testing.T, d *daemonProc) string {
	r := d.exchange(t, "udp", "it.test.", dns.TypeTXT)
	if len(r.Answer) != 1 {
		return ""
	}
	return strings.Join(r.Answer[0].(*dns.TXT).Txt, "")
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, dir, fmt.Sprintf(baseConfig, "v1"))
	d := startDaemon(t, file)
	if got := txtOf(t, d); got != "v1" {
		t.Fatalf("TXT: got %q, want v1", got)
	}

	// SIGHUP applies a good config.
	writeConfig(t, dir, fmt.Sprintf(baseConfig, "v2"))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SIGHUP to serve v2", func() bool { return txtOf(t, d) == "v2" })

	// gslbd ctl reload applies one and says so.
	writeConfig(t, dir, fmt.Sprintf(baseConfig, "v3"))
	out, code := runCLI(t, "ctl", "reload", "--addr", d.http)
	if code != 0 || !strings.Contains(out, "reloaded") || txtOf(t, d) != "v3" {
		t.Errorf("ctl reload: got exit %d %q TXT %q, want 0 and v3 served", code, out, txtOf(t, d))
	}

	// A bad config is refused with every error, and v3 keeps serving.
	writeConfig(t, dir, strings.Replace(fmt.Sprintf(baseConfig, "v4"), "datacenters: [dc-a]", "datacenters: [dc-x]", 1)+"bogus: 1\n")
	out, code = runCLI(t, "ctl", "reload", "--addr", d.http)
	if code != 1 || !strings.Contains(out, `zones[0].services[0].datacenters[0]: "dc-x" is not a configured datacenter`) || !strings.Contains(out, "bogus: unknown key") {
		t.Errorf("ctl reload of a bad config: got exit %d\n%s\nwant exit 1 naming both errors", code, out)
	}
	if got := txtOf(t, d); got != "v3" {
		t.Errorf("after a refused reload: got TXT %q, want v3 still served", got)
	}
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	for _, want := range []string{"gslb_config_last_reload_successful 0", `gslb_config_reloads_total{result="failure"} 1`, `gslb_config_reloads_total{result="success"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: want %q in\n%s", want, grep(metrics, "gslb_config"))
		}
	}
	// A bad config by SIGHUP is refused too, logged with its errors.
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refused SIGHUP reload to be logged", func() bool {
		return strings.Count(d.log(), "configuration reload refused") == 2
	})
	if got := txtOf(t, d); got != "v3" {
		t.Errorf("after a refused SIGHUP: got TXT %q, want v3", got)
	}
}

// TestReloadUnderLoad swaps configurations while queries flow and checks
// that none is dropped or answered with anything but one of the two
// versions.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, dir, fmt.Sprintf(baseConfig, "a"))
	d := startDaemon(t, file)
	stop := make(chan struct{})
	var failures []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
			conn, err := c.Dial(d.dns)
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				return
			}
			defer conn.Close()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := new(dns.Msg)
				m.SetQuestion("it.test.", dns.TypeTXT)
				r, _, err := c.ExchangeWithConn(m, conn)
				if err == nil && (len(r.Answer) != 1 || (r.Answer[0].(*dns.TXT).Txt[0] != "a" && r.Answer[0].(*dns.TXT).Txt[0] != "b")) {
					err = fmt.Errorf("unexpected answer %v", r)
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
			}
		}()
	}
	for i := range 10 {
		writeConfig(t, dir, fmt.Sprintf(baseConfig, []string{"a", "b"}[i%2]))
		if _, code := runCLI(t, "ctl", "reload", "--addr", d.http); code != 0 {
			t.Errorf("reload %d: exit %d", i, code)
		}
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("queries failed during reloads: %v", failures)
	}
}

func TestWriteGuard(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("t0ken-abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(fmt.Sprintf(baseConfig, "x"), "http: {allow_unauthenticated_loopback: true}", "http: {token_file: token}", 1)
	file := writeConfig(t, dir, body)
	d := startDaemon(t, file)
	url := "http://" + d.http + "/api/v1/reload"
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", 401}, {"Bearer wrong", 401}, {"Basic dDBrZW4tYWJj", 401}, {"Bearer t0ken-abc", 200},
	} {
		if code, body := httpDo(t, "POST", url, tc.auth); code != tc.want {
			t.Errorf("POST reload with %q: got %d %s, want %d", tc.auth, code, trim(body), tc.want)
		}
	}
	if code, _ := httpDo(t, "GET", url, "Bearer t0ken-abc"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET reload: got %d, want 405", code)
	}
	// ctl finds the address and the token in the config, as an operator
	// on the host would use it.
	out, code := runCLI(t, "ctl", "reload", "--config", file, "--addr", d.http)
	if code != 0 {
		t.Errorf("ctl reload --config: exit %d: %s", code, out)
	}
	out, code = runCLI(t, "ctl", "reload", "--addr", d.http)
	if code != 1 || !strings.Contains(out, "401") {
		t.Errorf("ctl reload without a token: got exit %d %q, want 1 and 401", code, out)
	}

	// No token and no loopback exception: writes are refused outright.
	file2 := writeConfig(t, t.TempDir(), strings.Replace(fmt.Sprintf(baseConfig, "x"), "http: {allow_unauthenticated_loopback: true}", "", 1))
	d2 := startDaemon(t, file2)
	if code, body := httpDo(t, "POST", "http://"+d2.http+"/api/v1/reload", ""); code != http.StatusForbidden {
		t.Errorf("POST reload with writes disabled: got %d %s, want 403", code, trim(body))
	}
}

func TestGracefulShutdown(t *testing.T) {
	d := startDaemon(t, repoFile("configs", "demo.yaml"))
	if r := d.exchange(t, "udp", "gslb.example.", dns.TypeSOA); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("got %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	// An open TCP connection must not hold shutdown past its grace.
	conn, err := net.Dial("tcp", d.dns)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: got %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gslbd still running 15s after SIGTERM")
	}
	if !strings.Contains(d.log(), `"msg":"stopped"`) {
		t.Errorf("no stopped log line:\n%s", d.log())
	}
}

func TestBadConfigAtStart(t *testing.T) {
	cmd := exec.Command(gslbdBin, "serve", "--config", repoFile("gslb", "config", "testdata", "bad", "five-errors.yaml"))
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitFail {
		t.Fatalf("got %v, want exit %d", err, exitFail)
	}
	if n := strings.Count(string(out), "five-errors.yaml: "); n != 5 {
		t.Errorf("got %d error lines, want 5:\n%s", n, out)
	}
}

func TestCheckConfig(t *testing.T) {
	out, code := runCLI(t, "check-config", "--config", repoFile("configs", "demo.yaml"))
	if code != 0 || !strings.Contains(out, "demo.yaml: ok: 1 zone, 7 records, 2 services, 3 datacenters") {
		t.Errorf("demo: got exit %d %q", code, out)
	}
	out, code = runCLI(t, "check-config", "--config", repoFile("gslb", "config", "testdata", "bad", "five-errors.yaml"))
	if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; code != 1 || lines != 5 {
		t.Errorf("five errors: got exit %d and %d lines, want 1 and 5:\n%s", code, lines, out)
	}
	out, code = runCLI(t, "check-config", "--config", "/nonexistent/gslbd.yaml")
	if code != 1 || !strings.Contains(out, "/nonexistent/gslbd.yaml: reading configuration") {
		t.Errorf("missing file: got exit %d %q", code, out)
	}
	// A GeoIP file that is not a database is an error naming its key.
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.mmdb")
	if err := os.WriteFile(junk, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := writeConfig(t, dir, fmt.Sprintf(baseConfig, "x")+"geoip: {city_db: junk.mmdb}\n")
	out, code = runCLI(t, "check-config", "--config", file)
	if code != 1 || !strings.Contains(out, file+": geoip.city_db: "+junk+": not a MaxMind DB (.mmdb) file") {
		t.Errorf("junk GeoIP file: got exit %d %q, want 1 naming geoip.city_db", code, out)
	}
	out, code = runCLI(t, "serve", "--no-such-flag")
	if code != exitUsage || !strings.Contains(out, "unknown flag: --no-such-flag") {
		t.Errorf("bad flag: got exit %d %q", code, out)
	}
}

func TestIDCommands(t *testing.T) {
	out, code := runCLI(t, "id", "new", "--datacenter", "3", "--worker", "9", "-n", "3")
	ids := strings.Fields(out)
	if code != 0 || len(ids) != 3 || ids[0] >= ids[1] && len(ids[0]) == len(ids[1]) {
		t.Fatalf("id new: got exit %d %q, want 3 increasing IDs", code, out)
	}
	out, code = runCLI(t, "id", "parse", ids[2])
	var parts struct {
		Datacenter, Worker int
		Time               time.Time
	}
	if code != 0 || json.Unmarshal([]byte(out), &parts) != nil || parts.Datacenter != 3 || parts.Worker != 9 || time.Since(parts.Time) > time.Minute {
		t.Errorf("id parse: got exit %d %q, want datacenter 3 worker 9 and a recent time", code, out)
	}
	if out, code := runCLI(t, "id", "new", "--worker", "40"); code != exitUsage || !strings.Contains(out, "worker") {
		t.Errorf("id new --worker 40: got exit %d %q, want a usage error naming the worker", code, out)
	}
	if out, code := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "gslbd ") {
		t.Errorf("version: got exit %d %q", code, out)
	}
}

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(gslbdBin, args...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func httpDo(t *testing.T, method, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func trim(s string) string { return strings.TrimSpace(s) }

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
