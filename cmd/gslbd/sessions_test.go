package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// stickyConfig is one instance's view: the two instances are given
// different loads, so that without sessions they would place a new
// client differently; with a shared Redis they must agree.
const stickyConfig = `
instance: {name: %s, worker_id: %d}
http: {allow_unauthenticated_loopback: true}
sessions:
  store: redis
  failback: return
  redis: {addrs: ["%s"], lookup_budget: 50ms}
datacenters:
  - {id: dc-a, lat: 50.1, lon: 8.7, load: %d, endpoints: [{address: 192.0.2.1}]}
  - {id: dc-b, lat: 50.1, lon: 8.7, load: %d, endpoints: [{address: 192.0.2.2}]}
zones:
  - origin: s.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: score, datacenters: [dc-a, dc-b], sticky: true, slack: 0}
`

func askFrom(t *testing.T, server, subnet string) string {
	t.Helper()
	p := mustPrefix(t, subnet)
	m := new(dns.Msg)
	m.SetQuestion("www.s.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Errorf("query: %v", err)
		return ""
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("got %s with %d answers, want one", dns.RcodeToString[r.Rcode], len(r.Answer))
		return ""
	}
	return r.Answer[0].(*dns.A).A.String()
}

// TestTwoInstancesAgree: the same new client sent to two gslbd processes
// at once, 100 times, always gets one datacenter, although each instance
// alone would pick a different one.
func TestTwoInstancesAgree(t *testing.T) {
	rs := redistest.Start(t)
	a := startDaemon(t, writeConfig(t, t.TempDir(), fmt.Sprintf(stickyConfig, "gslb-a", 1, rs.Addr(), 0, 500)))
	b := startDaemon(t, writeConfig(t, t.TempDir(), fmt.Sprintf(stickyConfig, "gslb-b", 2, rs.Addr(), 500, 0)))
	// Warm the connection pools, so the first race is not decided by who
	// dials Redis faster than the budget.
	askFrom(t, a.dns, "198.18.0.0/24")
	askFrom(t, b.dns, "198.18.0.0/24")
	for i := range 100 {
		subnet := fmt.Sprintf("203.0.%d.0/24", i)
		var wg sync.WaitGroup
		var ga, gb string
		wg.Add(2)
		go func() { defer wg.Done(); ga = askFrom(t, a.dns, subnet) }()
		go func() { defer wg.Done(); gb = askFrom(t, b.dns, subnet) }()
		wg.Wait()
		if ga != gb || ga == "" {
			t.Fatalf("client %s: instance a answered %s, b %s", subnet, ga, gb)
		}
	}
}

// TestRedisFailureUnderLoad pauses and kills Redis while queries flow:
// every query is answered, and affinity comes back with Redis.
func TestRedisFailureUnderLoad(t *testing.T) {
	rs := redistest.Start(t)
	if !rs.Real() {
		t.Skip("needs a real redis-server process to pause and kill")
	}
	d := startDaemon(t, writeConfig(t, t.TempDir(), fmt.Sprintf(stickyConfig, "gslb-a", 1, rs.Addr(), 0, 500)))
	if got := askFrom(t, d.dns, "203.0.113.0/24"); got != "192.0.2.1" {
		t.Fatalf("placement: got %s", got)
	}
	var failures []string
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := new(dns.Msg)
				m.SetQuestion("www.s.test.", dns.TypeA)
				m.SetEdns0(1232, false)
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
					Address: net.IPv4(11, byte(w), byte(i>>8), 0).To4()})
				r, _, err := c.Exchange(m, d.dns)
				if err == nil && (r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1) {
					err = fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	rs.Pause()
	time.Sleep(500 * time.Millisecond) // queries flow against a paused Redis
	rs.Resume()
	rs.Kill()
	time.Sleep(500 * time.Millisecond) // ...and against no Redis at all
	rs.Restart()
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d queries failed while Redis was paused or down, e.g. %s", len(failures), failures[0])
	}
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	if !strings.Contains(metrics, `gslb_session_lookups_total{result="skipped"}`) {
		t.Errorf("no skipped look-ups counted:\n%s", grep(metrics, "gslb_session"))
	}
	// Redis is back (empty: it kept nothing): affinity resumes.
	eventually(t, "a session created after Redis came back", func() bool {
		askFrom(t, d.dns, "198.51.100.0/24")
		code, _ := httpDo(t, "GET", "http://"+d.http+"/api/v1/sessions?client=198.51.100.7&service=www.s.test.", "")
		return code == 200
	})
	// Delete it by API.
	req := "http://" + d.http + "/api/v1/sessions?client=198.51.100.7&service=www.s.test."
	if code, body := httpDo(t, "DELETE", req, ""); code != 200 {
		t.Errorf("delete: %d %s", code, body)
	}
	if code, _ := httpDo(t, "GET", req, ""); code != 404 {
		t.Errorf("after delete: got %d, want 404", code)
	}
}

// TestRedisAbsentAtStart: gslbd starts and answers with Redis
// unreachable, and uses Redis once it appears.
func TestRedisAbsentAtStart(t *testing.T) {
	rs := redistest.Start(t)
	rs.RequireReal(t)
	rs.Kill()
	d := startDaemon(t, writeConfig(t, t.TempDir(), fmt.Sprintf(stickyConfig, "gslb-a", 1, rs.Addr(), 0, 500)))
	if got := askFrom(t, d.dns, "203.0.113.0/24"); got != "192.0.2.1" {
		t.Fatalf("with Redis down: got %q, want the policy's answer", got)
	}
	rs.Restart()
	eventually(t, "a session in Redis", func() bool {
		askFrom(t, d.dns, "198.51.100.0/24")
		code, _ := httpDo(t, "GET", "http://"+d.http+"/api/v1/sessions?client=198.51.100.1&service=www.s.test.", "")
		return code == 200
	})
	_, metrics := httpDo(t, "GET", "http://"+d.http+"/metrics", "")
	if !strings.Contains(metrics, `gslb_session_redis_roundtrips_total{kind="command"}`) {
		t.Errorf("no round trips counted:\n%s", grep(metrics, "gslb_session"))
	}
}

// TestExplainStoresNoSession: explain reports the pin a new client would
// get without creating it; asking why must not change the answer, nor
// let an unauthenticated GET write sessions.
func TestExplainStoresNoSession(t *testing.T) {
	rs := redistest.Start(t)
	d := startDaemon(t, writeConfig(t, t.TempDir(), fmt.Sprintf(stickyConfig, "gslb-a", 1, rs.Addr(), 0, 500)))
	session := "http://" + d.http + "/api/v1/sessions?client=198.51.100.7&service=www.s.test."
	code, body := httpDo(t, "GET", "http://"+d.http+"/api/v1/explain?name=www.s.test.&client=198.51.100.7", "")
	if code != 200 || !strings.Contains(body, "no session yet") {
		t.Fatalf("explain for a new client: %d %s; want the pin a query would create", code, body)
	}
	if code, body := httpDo(t, "GET", session, ""); code != 404 {
		t.Fatalf("after explain: session lookup %d %s; want 404 (explain stores nothing)", code, body)
	}
	// A real query pins the client; explain then reports the pin.
	askFrom(t, d.dns, "198.51.100.0/24")
	eventually(t, "the query's session to be stored", func() bool {
		code, _ := httpDo(t, "GET", session, "")
		return code == 200
	})
	if _, body := httpDo(t, "GET", "http://"+d.http+"/api/v1/explain?name=www.s.test.&client=198.51.100.7", ""); !strings.Contains(body, "pinned to") {
		t.Errorf("explain for a pinned client: %s; want the pin", body)
	}
}
