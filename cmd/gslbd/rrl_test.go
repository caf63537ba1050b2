package main

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cookieQuery is a query for name carrying cookie (hex) in its OPT.
func cookieQuery(name, cookie string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	if cookie != "" {
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
	}
	return m
}

func replyCookie(m *dns.Msg) string {
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if c, ok := opt.(*dns.EDNS0_COOKIE); ok {
				return c.Cookie
			}
		}
	}
	return ""
}

// Two instances sharing dns.cookies.secret_file, as an anycast set does:
// dig learns a server cookie from one and presents it to the other, over
// UDP and TCP; a malformed cookie gets FORMERR.
func TestCookiesDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig is not installed; CI must install bind9-dnsutils")
		}
		t.Skip("dig not installed (Debian package bind9-dnsutils); CI installs it")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cookie.secret"), []byte("e5e973e5a6b2a43f48e7dc849e37bfcf\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, "dns: {cookies: {secret_file: cookie.secret}}\n"+fmt.Sprintf(baseConfig, "v1"))
	a, b := startDaemon(t, cfg), startDaemon(t, cfg)
	digAt := func(d *daemonProc, args ...string) string {
		host, port, _ := net.SplitHostPort(d.dns)
		out, err := exec.Command(dig, append([]string{"@" + host, "-p", port, "+time=3", "+tries=1", "www.it.test", "A"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cookieLine := regexp.MustCompile(`COOKIE: ([0-9a-f]{16})([0-9a-f]{32}) \(good\)`)
	out := digAt(a, "+cookie")
	m := cookieLine.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "status: NOERROR") {
		t.Fatalf("dig +cookie: want NOERROR and a good 16-byte server cookie\n%s", out)
	}
	full := m[1] + m[2]
	for _, d := range []*daemonProc{a, b} {
		for _, proto := range []string{"+notcp", "+tcp"} {
			out := digAt(d, "+cookie="+full, proto)
			got := cookieLine.FindStringSubmatch(out)
			if got == nil || got[1] != m[1] || !strings.Contains(out, "status: NOERROR") || !strings.Contains(out, "192.0.2.1") {
				t.Errorf("dig +cookie=<learned> %s: want the answer and a good cookie for the same client cookie\n%s", proto, out)
			} else if got[1]+got[2] != full {
				// A cookie under half an hour old is echoed, not renewed.
				t.Errorf("%s: the learned cookie was replaced (%s → %s)", proto, full, got[1]+got[2])
			}
		}
	}

	c := &dns.Client{Timeout: 3 * time.Second}
	for _, tc := range []struct{ cookie, want string }{
		{"0102030405", "FORMERR"},             // shorter than a client cookie
		{"0102030405060708aabb", "FORMERR"},   // a 2-byte server cookie
		{strings.Repeat("ab", 41), "FORMERR"}, // longer than 40 bytes
	} {
		r, _, err := c.Exchange(cookieQuery("www.it.test.", tc.cookie), a.dns)
		if err != nil {
			t.Fatal(err)
		}
		if dns.RcodeToString[r.Rcode] != tc.want || len(r.Answer) != 0 {
			t.Errorf("cookie %s: got %s with %d answers, want %s and none", tc.cookie, dns.RcodeToString[r.Rcode], len(r.Answer), tc.want)
		}
	}
	// A server cookie made with another secret gets a fresh, valid one.
	r, _, err := c.Exchange(cookieQuery("www.it.test.", m[1]+strings.Repeat("0", 32)), a.dns)
	if err != nil {
		t.Fatal(err)
	}
	if got := replyCookie(r); r.Rcode != dns.RcodeSuccess || len(got) != 48 || got[:16] != m[1] || got == m[1]+strings.Repeat("0", 32) {
		t.Errorf("an invalid server cookie: got %s cookie %q, want NOERROR and a fresh server cookie", dns.RcodeToString[r.Rcode], got)
	}
}

// flood sends n queries from conn in bursts and counts what comes back:
// full answers, empty truncated ones and BADCOOKIEs.
func flood(t *testing.T, conn *net.UDPConn, to *net.UDPAddr, q *dns.Msg, n int) (answered, truncated, badcookie int) {
	t.Helper()
	buf := make([]byte, 4096)
	for sent := 0; sent < n; sent += 20 {
		burst := min(20, n-sent)
		for i := range burst {
			q.Id = uint16(sent + i)
			b, _ := q.Pack()
			if _, err := conn.WriteToUDP(b, to); err != nil {
				t.Fatal(err)
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for range burst {
			k, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			var m dns.Msg
			if err := m.Unpack(buf[:k]); err != nil {
				t.Fatalf("unpacking a reply: %v", err)
			}
			switch {
			case m.Rcode == dns.RcodeBadCookie:
				badcookie++
			case m.Truncated:
				truncated++
				if len(m.Answer)+len(m.Ns) != 0 {
					t.Errorf("a slipped reply carries records: %v", &m)
				}
			case m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1:
				answered++
			default:
				t.Errorf("unexpected reply: %v", &m)
			}
		}
	}
	return answered, truncated, badcookie
}

func listenUDPAt(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A UDP flood from one client is mostly dropped or slipped while a client
// in another /24 is answered normally; once the flooder presents a valid
// server cookie it is answered in full.
func TestRRLFlood(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "dns: {rrl: {enabled: true, responses_per_second: 10, slip: 2, window: 2s}}\n"+fmt.Sprintf(baseConfig, "v1"))
	d := startDaemon(t, cfg)
	to, err := net.ResolveUDPAddr("udp", d.dns)
	if err != nil {
		t.Fatal(err)
	}
	flooder := listenUDPAt(t, "127.0.0.1")
	const n = 200
	answered, truncated, _ := flood(t, flooder, to, cookieQuery("www.it.test.", ""), n)
	t.Logf("flood of %d from 127.0.0.1 at 10/s, slip 2: %d answered, %d truncated, %d dropped", n, answered, truncated, n-answered-truncated)
	if answered > n/2 || truncated == 0 {
		t.Errorf("flood of %d at 10/s: %d answered, %d truncated; want most held back and some slipped", n, answered, truncated)
	}

	// 127.0.1.0/24 is another prefix: its budget is its own.
	other := listenUDPAt(t, "127.0.1.1")
	if a, tc, _ := flood(t, other, to, cookieQuery("www.it.test.", ""), 5); a != 5 || tc != 0 {
		t.Errorf("a client in another /24: %d of 5 answered, %d truncated; want all answered", a, tc)
	}

	// The flooder learns a server cookie (a limited reply to a cookie
	// client is BADCOOKIE, which carries one), then floods with it.
	c := &dns.Client{Timeout: 500 * time.Millisecond, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.0.1")}}}
	var cookie string
	for range 20 {
		if r, _, err := c.Exchange(cookieQuery("www.it.test.", "0102030405060708"), d.dns); err == nil && len(replyCookie(r)) == 48 {
			cookie = replyCookie(r)
			break
		}
	}
	if cookie == "" {
		t.Fatal("no server cookie learned in 20 tries")
	}
	if _, err := hex.DecodeString(cookie); err != nil {
		t.Fatal(err)
	}
	if a, tc, bad := flood(t, flooder, to, cookieQuery("www.it.test.", cookie), 100); a != 100 {
		t.Errorf("100 queries with a valid server cookie: %d answered, %d truncated, %d BADCOOKIE; want all answered", a, tc, bad)
	}

	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	for _, name := range []string{"gslb_dns_rrl_dropped_total", "gslb_dns_rrl_slipped_total"} {
		v := metricValue(metrics, name)
		if v <= 0 {
			t.Errorf("%s is %v after a limited flood:\n%s", name, v, grep(metrics, "rrl"))
		}
	}
}

// metricValue reads an unlabelled series from a /metrics body; -1 when absent.
func metricValue(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
