package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// The key ACME clients sign with in these tests, as a BIND key file holds
// it (tsig-keygen's format), and a second key allowed only other.test.
const (
	acmeSecret   = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	narrowSecret = "bmFycm93bmFycm93bmFycm93bmFycm93bmFycm93IQ=="
	acmeKeyFile  = "key \"acme-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + acmeSecret + "\";\n};\n"
	acmeChal     = "_acme-challenge.www.it.test."
)

// acmeConfig: %s are the instance name, its worker ID and the storage
// lines (instance.state_dir or sessions).
const acmeConfig = `
instance: {name: %s, worker_id: %d%s}
http: {allow_unauthenticated_loopback: true}
acme:
  enabled: true
  tsig_keys:
    - {name: acme-key., secret_file: acme.key}
    - {name: narrow-key., algorithm: hmac-sha512, secret: "` + narrowSecret + `", zones: [other.test.]}
%s
datacenters:
  - {id: dc-a, endpoints: [{address: 192.0.2.1}]}
zones:
  - origin: it.test.
    soa: {mname: ns1, rname: hostmaster, minimum: 5}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    records:
      - {name: _acme-challenge.static, type: CNAME, data: elsewhere.example.}
    services:
      - {name: www, datacenters: [dc-a]}
  - origin: other.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
`

// acmeDir writes a configuration and the key file beside it; state is
// "file" (a state directory in dir) or a Redis address.
func acmeDir(t *testing.T, dir, name string, worker int, store string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "acme.key"), []byte(acmeKeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	inst, sessions := "", ""
	if store == "file" {
		if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
			t.Fatal(err)
		}
		inst = ", state_dir: state"
	} else {
		sessions = fmt.Sprintf("sessions: {store: redis, redis: {addrs: [%q]}}", store)
	}
	return writeConfig(t, dir, fmt.Sprintf(acmeConfig, name, worker, inst, sessions))
}

// acmeUpdate sends one UPDATE for it.test., signed with keyName/secret
// unless keyName is empty, and returns the response. A response to a
// signed update must verify; miekg/dns refuses to verify NOTAUTH ones, so
// those are returned with the verification error ignored.
func acmeUpdate(t *testing.T, server, proto, zone, keyName, alg, secret string, build func(m *dns.Msg)) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(zone)
	build(m)
	c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
	if keyName != "" {
		m.SetTsig(keyName, alg, 300, time.Now().Unix())
		c.TsigSecret = map[string]string{keyName: secret}
	}
	r, _, err := c.Exchange(m, server)
	if err != nil && (r == nil || r.Rcode != dns.RcodeNotAuth) {
		t.Fatalf("UPDATE over %s: %v", proto, err)
	}
	if keyName != "" && r.IsTsig() == nil {
		t.Fatalf("UPDATE over %s: the response to a signed update carries no TSIG", proto)
	}
	return r
}

func chalTXT(name string, ttl uint32, s string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{s}}
}

// served returns the TXT strings the instance answers for name, and the
// rcode.
func served(t *testing.T, d *daemonProc, name string) ([]string, int) {
	t.Helper()
	r := d.exchange(t, "udp", name, dns.TypeTXT)
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, r.Rcode
}

func servesTXT(t *testing.T, d *daemonProc, name, want string) bool {
	got, _ := served(t, d, name)
	return len(got) == 1 && got[0] == want
}

// wantServed fails the test unless d serves exactly want at name.
func wantServed(t *testing.T, d *daemonProc, name, want, when string) {
	t.Helper()
	if !servesTXT(t, d, name, want) {
		got, rc := served(t, d, name)
		t.Errorf("%s: got %s %q, want only %q", when, dns.RcodeToString[rc], got, want)
	}
}

// restart stops d and starts its configuration again.
func restart(t *testing.T, d *daemonProc, cfgFile string) *daemonProc {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	return startDaemon(t, cfgFile)
}

// digTXT asks dig for the challenge name's TXT records; "" without dig.
func digTXT(t *testing.T, d *daemonProc, opts ...string) string {
	t.Helper()
	dig, err := exec.LookPath("dig")
	if err != nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(d.dns)
	args := append([]string{"@" + host, "-p", port, "+time=3", "+tries=1"}, opts...)
	out, err := exec.Command(dig, append(args, acmeChal, "TXT")...).CombinedOutput()
	if err != nil {
		t.Errorf("dig: %v\n%s", err, out)
	}
	return string(out)
}

// TestACMEUpdates: a miekg/dns client adds, the record is served (to dig
// too), and deleted; every refused update changes nothing.
func TestACMEUpdates(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, acmeDir(t, dir, "acme-1", 1, "file"))
	_, err := exec.LookPath("dig")
	dig := err == nil
	if !dig && os.Getenv("CI") == "true" {
		t.Fatal("dig is not installed; CI must install bind9-dnsutils")
	}
	sign := func(proto string, build func(m *dns.Msg)) *dns.Msg {
		return acmeUpdate(t, d.dns, proto, "it.test.", "acme-key.", dns.HmacSHA256, acmeSecret, build)
	}
	for _, proto := range []string{"udp", "tcp"} {
		r := sign(proto, func(m *dns.Msg) { m.Insert([]dns.RR{chalTXT(acmeChal, 60, "token-"+proto)}) })
		if r.Rcode != dns.RcodeSuccess {
			t.Fatalf("%s add: got %s", proto, dns.RcodeToString[r.Rcode])
		}
		// Served at once: the update is answered after the swap.
		if got, rc := served(t, d, acmeChal); rc != dns.RcodeSuccess || len(got) != 1 || got[0] != "token-"+proto {
			t.Fatalf("%s: TXT after add: got %s %q, want token-%s", proto, dns.RcodeToString[rc], got, proto)
		}
		if out := digTXT(t, d, "+short"); dig && strings.TrimSpace(out) != `"token-`+proto+`"` {
			t.Errorf("dig TXT after add: got %q", out)
		}
		r = sign(proto, func(m *dns.Msg) { m.Remove([]dns.RR{chalTXT(acmeChal, 0, "token-"+proto)}) })
		if r.Rcode != dns.RcodeSuccess {
			t.Fatalf("%s delete: got %s", proto, dns.RcodeToString[r.Rcode])
		}
		if got, rc := served(t, d, acmeChal); rc != dns.RcodeNameError || len(got) != 0 {
			t.Fatalf("%s: TXT after delete: got %s %q, want NXDOMAIN", proto, dns.RcodeToString[rc], got)
		}
		if out := digTXT(t, d); dig && !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("dig TXT after delete: got\n%s\nwant NXDOMAIN", out)
		}
	}

	keep := sign("udp", func(m *dns.Msg) { m.Insert([]dns.RR{chalTXT(acmeChal, 60, "keep")}) })
	if keep.Rcode != dns.RcodeSuccess {
		t.Fatalf("add: got %s", dns.RcodeToString[keep.Rcode])
	}
	a, _ := dns.NewRR(acmeChal + " 60 IN A 192.0.2.9")
	for _, tc := range []struct {
		name      string
		key, alg  string
		secret    string
		build     func(m *dns.Msg)
		want, sig int
	}{
		{"unsigned", "", "", "", func(m *dns.Msg) { m.RemoveName([]dns.RR{chalTXT(acmeChal, 0, "")}) }, dns.RcodeNotAuth, 0},
		{"wrong secret", "acme-key.", dns.HmacSHA256, narrowSecret, func(m *dns.Msg) { m.RemoveName([]dns.RR{chalTXT(acmeChal, 0, "")}) }, dns.RcodeNotAuth, dns.RcodeBadSig},
		{"unknown key", "who.", dns.HmacSHA256, acmeSecret, func(m *dns.Msg) { m.RemoveName([]dns.RR{chalTXT(acmeChal, 0, "")}) }, dns.RcodeNotAuth, dns.RcodeBadKey},
		{"key for another zone", "narrow-key.", dns.HmacSHA512, narrowSecret, func(m *dns.Msg) { m.RemoveName([]dns.RR{chalTXT(acmeChal, 0, "")}) }, dns.RcodeNotAuth, 0},
		{"name outside _acme-challenge", "acme-key.", dns.HmacSHA256, acmeSecret, func(m *dns.Msg) {
			m.RemoveName([]dns.RR{chalTXT(acmeChal, 0, "")})
			m.Insert([]dns.RR{chalTXT("www.it.test.", 60, "x")})
		}, dns.RcodeRefused, 0},
		{"A record", "acme-key.", dns.HmacSHA256, acmeSecret, func(m *dns.Msg) {
			m.RemoveName([]dns.RR{chalTXT(acmeChal, 0, "")})
			m.Insert([]dns.RR{a})
		}, dns.RcodeRefused, 0},
		{"static name", "acme-key.", dns.HmacSHA256, acmeSecret, func(m *dns.Msg) {
			m.Insert([]dns.RR{chalTXT("_acme-challenge.static.it.test.", 60, "x")})
		}, dns.RcodeRefused, 0},
	} {
		r := acmeUpdate(t, d.dns, "udp", "it.test.", tc.key, tc.alg, tc.secret, tc.build)
		if r.Rcode != tc.want || (tc.key != "" && int(r.IsTsig().Error) != tc.sig) {
			t.Errorf("%s: got %s (TSIG error %v), want %s (TSIG error %s)", tc.name, dns.RcodeToString[r.Rcode],
				r.IsTsig(), dns.RcodeToString[tc.want], dns.RcodeToString[tc.sig])
		}
		wantServed(t, d, acmeChal, "keep", tc.name+": TXT afterwards")
	}
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	for _, want := range []string{`gslb_acme_updates_total{result="noerror"} 5`, `gslb_acme_updates_total{result="notauth"} 4`,
		`gslb_acme_updates_total{result="refused"} 3`, `gslb_acme_records 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: want %s in\n%s", want, grep(metrics, "gslb_acme"))
		}
	}

	// The record survives a restart, from the state file.
	d = restart(t, d, filepath.Join(dir, "gslbd.yaml"))
	wantServed(t, d, acmeChal, "keep", "after a restart")
}

// TestACMENsupdate drives the daemon with nsupdate, the RFC 2136 client
// operators use by hand, over UDP and TCP, with the same key file.
func TestACMENsupdate(t *testing.T) {
	nsupdate := requireTool(t, "nsupdate", "bind9-dnsutils")
	dir := t.TempDir()
	d := startDaemon(t, acmeDir(t, dir, "acme-1", 1, "file"))
	host, port, _ := net.SplitHostPort(d.dns)
	run := func(proto, cmds string) string {
		args := []string{"-k", filepath.Join(dir, "acme.key")}
		if proto == "tcp" {
			args = append(args, "-v")
		}
		cmd := exec.Command(nsupdate, args...)
		cmd.Stdin = strings.NewReader(fmt.Sprintf("server %s %s\nzone it.test.\n%s\nsend\n", host, port, cmds))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return ""
	}
	for _, proto := range []string{"udp", "tcp"} {
		if msg := run(proto, "update add "+acmeChal+" 60 TXT \"ns-"+proto+"\""); msg != "" {
			t.Fatalf("nsupdate %s add: %s", proto, msg)
		}
		if !servesTXT(t, d, acmeChal, "ns-"+proto) {
			t.Fatalf("nsupdate %s: the record is not served", proto)
		}
		if msg := run(proto, "update delete "+acmeChal+" TXT"); msg != "" {
			t.Fatalf("nsupdate %s delete: %s", proto, msg)
		}
		if _, rc := served(t, d, acmeChal); rc != dns.RcodeNameError {
			t.Fatalf("nsupdate %s: after delete got %s, want NXDOMAIN", proto, dns.RcodeToString[rc])
		}
	}
	// nsupdate reports a refusal as a failure, and nothing is added.
	if msg := run("udp", "update add www.it.test. 60 TXT \"no\""); !strings.Contains(msg, "REFUSED") {
		t.Errorf("nsupdate outside _acme-challenge: got %q, want REFUSED", msg)
	}
	if got, _ := served(t, d, "www.it.test."); len(got) != 0 {
		t.Errorf("www.it.test. TXT: got %q, want none", got)
	}
}

// TestACMEFleet: with sessions in Redis, a record added through one
// instance is served by another, deleted through the second, and stays
// in Redis across a restart.
func TestACMEFleet(t *testing.T) {
	rs := redistest.Start(t)
	a := startDaemon(t, acmeDir(t, t.TempDir(), "acme-a", 1, rs.Addr()))
	bDir := t.TempDir()
	b := startDaemon(t, acmeDir(t, bDir, "acme-b", 2, rs.Addr()))
	r := acmeUpdate(t, a.dns, "tcp", "it.test.", "acme-key.", dns.HmacSHA256, acmeSecret, func(m *dns.Msg) {
		m.Insert([]dns.RR{chalTXT(acmeChal, 60, "fleet")})
	})
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("add through a: got %s", dns.RcodeToString[r.Rcode])
	}
	added := time.Now()
	eventually(t, "instance b to serve the record added through a", func() bool { return servesTXT(t, b, acmeChal, "fleet") })
	// Reported, not asserted: the Redis notification, not the periodic
	// re-read (acmeResync), is what should carry it.
	t.Logf("b served the record %s after a answered the update", time.Since(added).Round(time.Millisecond))

	r = acmeUpdate(t, b.dns, "udp", "it.test.", "acme-key.", dns.HmacSHA256, acmeSecret, func(m *dns.Msg) {
		m.RemoveRRset([]dns.RR{chalTXT(acmeChal, 0, "")})
		m.Insert([]dns.RR{chalTXT(acmeChal, 60, "second")})
	})
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("replace through b: got %s", dns.RcodeToString[r.Rcode])
	}
	eventually(t, "instance a to serve the replacement made through b", func() bool { return servesTXT(t, a, acmeChal, "second") })

	b = restart(t, b, filepath.Join(bDir, "gslbd.yaml"))
	wantServed(t, b, acmeChal, "second", "b after a restart")
}

// TestACMEReload: a reload keeps serving the challenge records, and
// replaces the keys: a rotated secret works at once, the old one no
// longer does.
func TestACMEReload(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, acmeDir(t, dir, "acme-1", 1, "file"))
	add := func(secret, s string) *dns.Msg {
		return acmeUpdate(t, d.dns, "tcp", "it.test.", "acme-key.", dns.HmacSHA256, secret, func(m *dns.Msg) {
			m.Insert([]dns.RR{chalTXT(acmeChal, 60, s)})
		})
	}
	if r := add(acmeSecret, "before"); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("add: got %s", dns.RcodeToString[r.Rcode])
	}
	rotated := strings.Replace(acmeKeyFile, acmeSecret, narrowSecret, 1)
	if err := os.WriteFile(filepath.Join(dir, "acme.key"), []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, "ctl", "reload", "--addr", d.http); code != 0 {
		t.Fatalf("ctl reload: exit %d\n%s", code, out)
	}
	wantServed(t, d, acmeChal, "before", "after the reload")
	if r := add(acmeSecret, "old-key"); r.Rcode != dns.RcodeNotAuth || r.IsTsig().Error != dns.RcodeBadSig {
		t.Errorf("the old secret after rotation: got %s %v, want NOTAUTH BADSIG", dns.RcodeToString[r.Rcode], r.IsTsig())
	}
	if r := add(narrowSecret, "new-key"); r.Rcode != dns.RcodeSuccess {
		t.Errorf("the new secret: got %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	if got, _ := served(t, d, acmeChal); len(got) != 2 {
		t.Errorf("served: got %q, want before and new-key", got)
	}
}

// TestACMERedisDown: while Redis is unreachable an update is SERVFAIL and
// changes nothing, the records last read keep being served, and updates
// work again once Redis is back.
func TestACMERedisDown(t *testing.T) {
	rs := redistest.Start(t)
	rs.RequireReal(t)
	d := startDaemon(t, acmeDir(t, t.TempDir(), "acme-a", 1, rs.Addr()))
	add := func(s string) int {
		return acmeUpdate(t, d.dns, "tcp", "it.test.", "acme-key.", dns.HmacSHA256, acmeSecret, func(m *dns.Msg) {
			m.Insert([]dns.RR{chalTXT(acmeChal, 60, s)})
		}).Rcode
	}
	if rc := add("kept"); rc != dns.RcodeSuccess {
		t.Fatalf("add: got %s", dns.RcodeToString[rc])
	}
	rs.Kill()
	if rc := add("lost"); rc != dns.RcodeServerFailure {
		t.Errorf("add with Redis down: got %s, want SERVFAIL", dns.RcodeToString[rc])
	}
	wantServed(t, d, acmeChal, "kept", "with Redis down")
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	if !strings.Contains(metrics, `gslb_acme_updates_total{result="servfail"} 1`) || strings.Contains(metrics, "gslb_acme_store_errors_total 0") {
		t.Errorf("metrics: want the SERVFAIL and a store error counted:\n%s", grep(metrics, "gslb_acme"))
	}
	rs.Restart() // empty: what Redis held is gone, and the instance follows
	eventually(t, "an update to succeed once Redis is back", func() bool { return add("back") == dns.RcodeSuccess })
	wantServed(t, d, acmeChal, "back", "after Redis came back empty")
}
