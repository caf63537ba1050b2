package health

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func addrOf(t *testing.T, hostport string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func httpCheck(mutate ...func(*Check)) *Check {
	c := &Check{Name: "web", Type: "http", Interval: time.Second, Timeout: 300 * time.Millisecond, Rise: 2, Fall: 3,
		Method: "GET", Path: "/health", ExpectStatus: []int{200}, BodyLimit: 1024}
	for _, f := range mutate {
		f(c)
	}
	return c
}

func probeOnce(t *testing.T, c *Check, target netip.AddrPort) Result {
	t.Helper()
	p, err := NewProber(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	return p.Probe(ctx, target)
}

func TestHTTPProber(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "svc.example" && r.Host != r.Context().Value(http.LocalAddrContextKey).(net.Addr).String() {
			http.Error(w, "wrong host "+r.Host, 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","load":420.5,"latency":37}`)
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", 503) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 4096)
		for i := 0; i < 10000; i++ { // 40 MB, far past the body limit
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{not json") })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/health", 302) })
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	target := addrOf(t, srv.Listener.Addr().String())

	tests := []struct {
		name    string
		check   *Check
		ok      bool
		errHas  string
		load    float64
		latency float64
	}{
		{"healthy with JSON load and latency", httpCheck(), true, "", 420.5, 37},
		{"host header", httpCheck(func(c *Check) { c.Host = "svc.example" }), true, "", 420.5, 37},
		{"status not expected", httpCheck(func(c *Check) { c.Path = "/down" }), false, "status 503, want 200", -1, -1},
		{"status in the expected list", httpCheck(func(c *Check) { c.Path = "/down"; c.ExpectStatus = []int{200, 503} }), true, "", -1, -1},
		{"body substring present", httpCheck(func(c *Check) { c.BodyContains = `"status":"ok"` }), true, "", 420.5, 37},
		{"body substring missing", httpCheck(func(c *Check) { c.BodyContains = "READY" }), false, `body has no "READY"`, -1, -1},
		{"hangs past the timeout", httpCheck(func(c *Check) { c.Path = "/hang" }), false, "timed out", -1, -1},
		{"huge body is cut at the limit", httpCheck(func(c *Check) { c.Path = "/huge" }), true, "", -1, -1},
		{"huge body without the substring in the limit", httpCheck(func(c *Check) { c.Path = "/huge"; c.BodyContains = "y" }), false, "in its first 1024 bytes", -1, -1},
		{"garbage JSON is no report, not a failure", httpCheck(func(c *Check) { c.Path = "/garbage" }), true, "", -1, -1},
		{"redirect is not followed", httpCheck(func(c *Check) { c.Path = "/redirect" }), false, "status 302", -1, -1},
		{"connection reset", httpCheck(func(c *Check) { c.Path = "/reset" }), false, "", -1, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := probeOnce(t, tc.check, target)
			if r.OK != tc.ok {
				t.Fatalf("got OK %t (%v), want %t", r.OK, r.Err, tc.ok)
			}
			if tc.errHas != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tc.errHas)) {
				t.Errorf("error: got %v, want it to contain %q", r.Err, tc.errHas)
			}
			if tc.load >= 0 && r.Load != tc.load || tc.load < 0 && r.Load == r.Load {
				t.Errorf("load: got %v, want %v", r.Load, tc.load)
			}
			if tc.latency >= 0 && r.LatencyMS != tc.latency || tc.latency < 0 && r.LatencyMS == r.LatencyMS {
				t.Errorf("latency: got %v, want %v", r.LatencyMS, tc.latency)
			}
			// The prober is unharmed: bounded by its timeout, whatever the
			// server did (generous bound: this is not a speed test).
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("probe took %s", el)
			}
		})
	}
	// Nothing listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := addrOf(t, ln.Addr().String())
	ln.Close()
	if r := probeOnce(t, httpCheck(), closed); r.OK || !strings.Contains(r.Err.Error(), "refused") {
		t.Errorf("closed port: got %v", r.Err)
	}
}

func TestHTTPSProber(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	target := addrOf(t, srv.Listener.Addr().String())
	// Verification is on by default: the test server's certificate is
	// self-signed, so the probe fails...
	// A generous timeout: a TLS handshake under the race detector on a
	// busy machine can take longer than the other cases' 300ms.
	slow := func(c *Check) { c.Timeout = 5 * time.Second }
	if r := probeOnce(t, httpCheck(func(c *Check) { c.Type = "https" }, slow), target); r.OK || !strings.Contains(r.Err.Error(), "certificate") {
		t.Errorf("self-signed with verification: got OK %t %v, want a certificate error", r.OK, r.Err)
	}
	// ...unless the operator turned it off.
	if r := probeOnce(t, httpCheck(func(c *Check) { c.Type = "https"; c.TLS.InsecureSkipVerify = true }, slow), target); !r.OK {
		t.Errorf("insecure_skip_verify: got %v", r.Err)
	}
}

func TestTCPProber(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				if strings.HasPrefix(string(buf[:n]), "PING") {
					io.WriteString(c, "+PONG\r\n")
				} else {
					io.WriteString(c, "-ERR\r\n")
				}
			}()
		}
	}()
	target := addrOf(t, ln.Addr().String())
	tcp := func(send, expect string) *Check {
		return &Check{Name: "t", Type: "tcp", Timeout: 500 * time.Millisecond, Send: send, Expect: expect}
	}
	if r := probeOnce(t, tcp("", ""), target); !r.OK {
		t.Errorf("connect only: %v", r.Err)
	}
	if r := probeOnce(t, tcp("PING\r\n", "PONG"), target); !r.OK {
		t.Errorf("send/expect: %v", r.Err)
	}
	if r := probeOnce(t, tcp("HELLO\r\n", "PONG"), target); r.OK || !strings.Contains(r.Err.Error(), `reply without "PONG"`) {
		t.Errorf("wrong reply: got %v", r.Err)
	}
}

func TestDNSProber(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "www.example.test." {
			rr, _ := dns.NewRR("www.example.test. 60 IN A 192.0.2.7")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	target := addrOf(t, pc.LocalAddr().String())
	check := func(name string, rcode int, addr string) *Check {
		c := &Check{Name: "d", Type: "dns", Timeout: 500 * time.Millisecond, QueryName: name, QueryType: dns.TypeA, ExpectRcode: rcode}
		if addr != "" {
			c.ExpectAddress = netip.MustParseAddr(addr)
		}
		return c
	}
	if r := probeOnce(t, check("www.example.test.", dns.RcodeSuccess, "192.0.2.7"), target); !r.OK {
		t.Errorf("expected address: %v", r.Err)
	}
	if r := probeOnce(t, check("www.example.test.", dns.RcodeSuccess, "192.0.2.8"), target); r.OK || !strings.Contains(r.Err.Error(), "no 192.0.2.8") {
		t.Errorf("wrong address: got %v", r.Err)
	}
	if r := probeOnce(t, check("nope.example.test.", dns.RcodeSuccess, ""), target); r.OK || !strings.Contains(r.Err.Error(), "rcode NXDOMAIN, want NOERROR") {
		t.Errorf("wrong rcode: got %v", r.Err)
	}
	if r := probeOnce(t, check("nope.example.test.", dns.RcodeNameError, ""), target); !r.OK {
		t.Errorf("expected NXDOMAIN: %v", r.Err)
	}
}
