package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// fleetConfig is one instance of a fleet: its own name, worker and state
// directory, and its own view of the primary (check_address), so a test
// can make one instance see the primary down while the others see it up.
const fleetConfig = `
instance: {name: %s, worker_id: %d, state_dir: %s}
http: {allow_unauthenticated_loopback: true}
health: {ttl_factor: 0.5, min_ttl: 5, jitter: 0}
sessions:
  redis: {addrs: ["%s"]}
fleet: {enabled: true, interval: 100ms, verdict_ttl: 1s, grace: %s%s}
health_checks:
  web: {type: http, path: /health, interval: %s, timeout: %s, rise: 2, fall: 2}
datacenters:
  - id: primary
    endpoints: [{address: 192.0.2.1, check: web, check_address: "%s"}]
  - id: backup
    endpoints: [{address: 192.0.2.2, check: web, check_address: "%s"}]
zones:
  - origin: f.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: failover, datacenters: [primary, backup], ttl: 30}
`

// fleetMember is how a test starts one instance of the fleet.
type fleetMember struct {
	name, ip, dir string
	worker        int
	grace         string
	interval      string // the check's
	timeout       string
	primary       string // check_address of the primary
	backup        string
	fleetExtra    string // more fleet keys, ", key: value"
}

func (m *fleetMember) config(t *testing.T, redisAddr string) string {
	t.Helper()
	if m.dir == "" {
		m.dir = t.TempDir()
		if err := os.Mkdir(filepath.Join(m.dir, "state"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	grace, interval, timeout := m.grace, m.interval, m.timeout
	if grace == "" {
		grace = "30s"
	}
	if interval == "" {
		interval, timeout = "100ms", "80ms"
	}
	return writeConfig(t, m.dir, fmt.Sprintf(fleetConfig, m.name, m.worker, filepath.Join(m.dir, "state"), redisAddr,
		grace, m.fleetExtra, interval, timeout, m.primary, m.backup))
}

func (m *fleetMember) args(t *testing.T, redisAddr string) []string {
	return []string{"serve", "--config", m.config(t, redisAddr), "--dns.listen", m.ip + ":0",
		"--http.listen", m.ip + ":0", "--log.format", "json"}
}

func (m *fleetMember) start(t *testing.T, redisAddr string) *daemonProc {
	t.Helper()
	return startDaemonCmd(t, exec.Command(gslbdBin, m.args(t, redisAddr)...))
}

func fleetAnswer(t *testing.T, d *daemonProc) string {
	t.Helper()
	r := d.exchange(t, "udp", "www.f.test.", dns.TypeA)
	if len(r.Answer) != 1 {
		return ""
	}
	return r.Answer[0].(*dns.A).A.String()
}

// fleetStatus is the part of GET /api/v1/status these tests read.
type fleetStatusDoc struct {
	Health struct {
		Fleet struct {
			Source    string   `json:"source"`
			WarmStart string   `json:"warm_start"`
			Instances []string `json:"instances"`
			Endpoints []struct {
				Datacenter string `json:"datacenter"`
				Local      string `json:"local"`
				Result     string `json:"result"`
				Reason     string `json:"reason"`
				Verdicts   []struct {
					Instance string `json:"instance"`
					State    string `json:"state"`
				} `json:"verdicts"`
			} `json:"endpoints"`
			Overrides []struct {
				Target, State, Reason, By string
			} `json:"overrides"`
		} `json:"fleet"`
	} `json:"health"`
}

func fleetStatusOf(t *testing.T, d *daemonProc) fleetStatusDoc {
	t.Helper()
	_, out := httpDo(t, "GET", "http://"+d.http+"/api/v1/status", "")
	var st fleetStatusDoc
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	return st
}

// primaryVerdict returns an instance's own verdict on the primary and the
// fleet's result, as its status shows them.
func primaryVerdict(t *testing.T, d *daemonProc) (local, result, reason string) {
	for _, e := range fleetStatusOf(t, d).Health.Fleet.Endpoints {
		if e.Datacenter == "primary" {
			return e.Local, e.Result, e.Reason
		}
	}
	return "", "", ""
}

func readyzOf(t *testing.T, d *daemonProc) map[string]any {
	t.Helper()
	_, out := httpDo(t, "GET", "http://"+d.http+"/readyz", "")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("readyz: %v\n%s", err, out)
	}
	return m
}

// TestFleetOneView: three real gslbd processes on 127.0.0.1, .2 and .3
// share one real redis-server. One instance that sees the primary down
// does not move anybody's answers; two do. A drain through one instance
// reaches all three within a second. A restarted instance answers from
// the fleet's view before its own first probe has finished. Duplicates of
// a running instance's name or idgen pair are refused at start.
func TestFleetOneView(t *testing.T) {
	rs := redistest.Start(t)
	rs.RequireReal(t)
	b := newHealthEndpoint(t)
	views := []*healthEndpoint{newHealthEndpoint(t), newHealthEndpoint(t), newHealthEndpoint(t)}
	members := make([]*fleetMember, 3)
	procs := make([]*daemonProc, 3)
	for i := range members {
		members[i] = &fleetMember{name: fmt.Sprintf("fleet-%d", i+1), ip: fmt.Sprintf("127.0.0.%d", i+1), worker: i + 1,
			primary: views[i].Listener.Addr().String(), backup: b.Listener.Addr().String()}
		procs[i] = members[i].start(t, rs.Addr())
	}
	allAnswer := func(want string) bool {
		for _, d := range procs {
			if fleetAnswer(t, d) != want {
				return false
			}
		}
		return true
	}
	eventually(t, "every instance sees all three in the fleet", func() bool {
		for _, d := range procs {
			if len(fleetStatusOf(t, d).Health.Fleet.Instances) != 3 {
				return false
			}
		}
		return true
	})
	if !allAnswer("192.0.2.1") {
		t.Fatalf("healthy fleet: want every instance to answer the primary")
	}

	// One instance's path to the primary breaks: its own verdict is down,
	// the quorum's up, and nobody's answer moves.
	views[2].up.Store(false)
	eventually(t, "fleet-3's own probes see the primary down", func() bool {
		local, result, _ := primaryVerdict(t, procs[2])
		return local == "down" && result == "up"
	})
	for range 10 {
		if !allAnswer("192.0.2.1") {
			t.Fatalf("one instance of three sees the primary down: answers moved")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _, reason := primaryVerdict(t, procs[0])
	if !strings.Contains(reason, "majority: 1 of 3 fresh verdicts down (fleet-3)") {
		t.Errorf("fleet-1's status reason: got %q", reason)
	}
	_, metrics := httpDo(t, "GET", "http://"+procs[2].http+"/metrics", "")
	for _, want := range []string{`gslb_fleet_disagreements_total{datacenter="primary",endpoint="192.0.2.1"} 1`,
		`gslb_fleet_view{source="fleet"} 1`, `gslb_fleet_instances 3`, `gslb_datacenter_up{datacenter="primary"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("fleet-3 metrics: want %s in\n%s", want, grep(metrics, "gslb_fleet"))
		}
	}

	// A second instance sees it down: the majority does, and every
	// instance moves, fleet-1 too although its own probes say up.
	views[1].up.Store(false)
	eventually(t, "all three fail over to the backup", func() bool { return allAnswer("192.0.2.2") })
	if local, result, _ := primaryVerdict(t, procs[0]); local != "up" || result != "down" {
		t.Errorf("fleet-1: own verdict %s, fleet result %s; want up and down", local, result)
	}
	views[1].up.Store(true)
	views[2].up.Store(true)
	eventually(t, "all three back on the primary", func() bool { return allAnswer("192.0.2.1") })

	// A drain through one instance reaches all three.
	start := time.Now()
	code, out := httpPost(t, "http://"+procs[0].http+"/api/v1/datacenters/primary/override",
		`{"state":"down","reason":"fleet drain test","by":"alice"}`)
	if code != 200 {
		t.Fatalf("drain: %d %s", code, out)
	}
	var took time.Duration
	for deadline := start.Add(5 * time.Second); ; {
		if allAnswer("192.0.2.2") {
			took = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drain through fleet-1 did not reach all three within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("drain through fleet-1 changed all three instances' answers in %s (pub/sub, then one read round)", took)
	if took > time.Second {
		t.Errorf("drain took %s to reach all three instances, want within a second", took)
	}
	ov := fleetStatusOf(t, procs[2]).Health.Fleet.Overrides
	if len(ov) != 1 || ov[0].Target != "primary" || ov[0].Reason != "fleet drain test" || !strings.Contains(ov[0].By, "alice via instance fleet-1") {
		t.Errorf("fleet-3's status overrides: got %+v", ov)
	}
	if code, out := httpPost(t, "http://"+procs[1].http+"/api/v1/datacenters/primary/override", `{"state":"auto"}`); code != 200 {
		t.Fatalf("undrain through fleet-2: %d %s", code, out)
	}
	eventually(t, "undrain through fleet-2 reaches all three", func() bool { return allAnswer("192.0.2.1") })

	// Duplicates of a running instance are refused, naming the key.
	dup := &fleetMember{name: "fleet-1", ip: "127.0.0.4", worker: 9, primary: members[0].primary, backup: members[0].backup}
	outB, err := exec.Command(gslbdBin, dup.args(t, rs.Addr())...).CombinedOutput()
	if err == nil || !strings.Contains(string(outB), `instance.name "fleet-1" is already in use by a running instance (Redis key gslb:fleet:name:fleet-1`) {
		t.Errorf("a second fleet-1: got %v\n%s", err, outB)
	}
	dup = &fleetMember{name: "fleet-9", ip: "127.0.0.4", worker: 2, primary: members[0].primary, backup: members[0].backup}
	outB, err = exec.Command(gslbdBin, dup.args(t, rs.Addr())...).CombinedOutput()
	if err == nil || !strings.Contains(string(outB), "instance.datacenter_id/instance.worker_id 0/2 is already in use by a running instance (Redis key gslb:fleet:worker:0/2") {
		t.Errorf("a second worker 0/2: got %v\n%s", err, outB)
	}

	// Warm restart: two instances see the primary down, so the fleet
	// does. fleet-3 restarts with a probe that cannot finish for 20s (a
	// listener that never answers): it is ready at once and answers the
	// backup from the fleet's verdicts.
	views[0].up.Store(false)
	views[1].up.Store(false)
	eventually(t, "the fleet fails over", func() bool { return allAnswer("192.0.2.2") })
	_ = procs[2].cmd.Process.Signal(syscall.SIGTERM)
	<-procs[2].exited
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	members[2].primary, members[2].backup = hole.Addr().String(), hole.Addr().String()
	members[2].interval, members[2].timeout = "30s", "20s"
	restarted := time.Now()
	procs[2] = members[2].start(t, rs.Addr())
	if a := fleetAnswer(t, procs[2]); a != "192.0.2.2" {
		t.Errorf("restarted fleet-3 answers %s, want the backup as the fleet sees it", a)
	}
	rz := readyzOf(t, procs[2])
	if rz["warm_start"] != "fleet" || rz["probes"] != "first round running" || rz["view"] != "fleet" {
		t.Errorf("restarted fleet-3 readyz: got %v, want a warm start from the fleet with probes still running", rz)
	}
	t.Logf("restarted fleet-3 ready and answering from the fleet's view %s after start, before its first probe round", time.Since(restarted).Round(time.Millisecond))
}

// cutProxy forwards TCP to Redis until cut: then it drops every
// connection and refuses new ones, as a broken path does for one instance
// while the others keep theirs.
type cutProxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.cut.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) setCut(cut bool) {
	p.cut.Store(cut)
	if !cut {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestFleetRedisLost: an instance that loses Redis (while the other keeps
// it) keeps the fleet's view for fleet.grace, then answers from its own
// probes, and says so; it goes back to the fleet's view when Redis
// returns. An override survives a restart without Redis through the
// state file.
func TestFleetRedisLost(t *testing.T) {
	rs := redistest.Start(t)
	rs.RequireReal(t)
	b := newHealthEndpoint(t)
	views := []*healthEndpoint{newHealthEndpoint(t), newHealthEndpoint(t)}
	members := make([]*fleetMember, 2)
	procs := make([]*daemonProc, 2)
	// lost-2 reaches Redis through a proxy the test can cut; lost-1
	// keeps its own path.
	proxy := newCutProxy(t, rs.Addr())
	for i := range members {
		members[i] = &fleetMember{name: fmt.Sprintf("lost-%d", i+1), ip: fmt.Sprintf("127.0.0.%d", i+1), worker: i + 1, grace: "2s",
			primary: views[i].Listener.Addr().String(), backup: b.Listener.Addr().String()}
		addr := rs.Addr()
		if i == 1 {
			addr = proxy.ln.Addr().String()
		}
		procs[i] = members[i].start(t, addr)
	}
	// lost-2 sees the primary down; with two instances one down verdict
	// is no majority, so both answer the primary.
	views[1].up.Store(false)
	eventually(t, "lost-2 sees the primary down, the fleet up", func() bool {
		local, result, _ := primaryVerdict(t, procs[1])
		return local == "down" && result == "up"
	})
	if a := fleetAnswer(t, procs[1]); a != "192.0.2.1" {
		t.Fatalf("lost-2 answers %s, want the primary (the fleet's view)", a)
	}

	proxy.setCut(true)
	eventually(t, "lost-2 notices Redis is gone", func() bool { return readyzOf(t, procs[1])["view"] == "grace" })
	if a := fleetAnswer(t, procs[1]); a != "192.0.2.1" {
		t.Errorf("lost-2 in its grace period answers %s, want the last fleet view's primary", a)
	}
	eventually(t, "lost-2 falls back to its own view after fleet.grace", func() bool {
		return readyzOf(t, procs[1])["view"] == "local" && fleetAnswer(t, procs[1]) == "192.0.2.2"
	})
	_, metrics := httpDo(t, "GET", "http://"+procs[1].http+"/metrics", "")
	if !strings.Contains(metrics, `gslb_fleet_view{source="local"} 1`) {
		t.Errorf("lost-2 metrics: want the local view\n%s", grep(metrics, "gslb_fleet"))
	}
	if !procs[1].logged("Redis still lost after fleet.grace") {
		t.Errorf("lost-2 did not log the fall-back to its own view")
	}

	// lost-1 kept Redis: its view stays the fleet's (its own verdict, once
	// lost-2's went stale), and it answers the primary throughout.
	if rz := readyzOf(t, procs[0]); rz["view"] != "fleet" || fleetAnswer(t, procs[0]) != "192.0.2.1" {
		t.Errorf("lost-1, which kept Redis: readyz %v", rz)
	}
	proxy.setCut(false)
	eventually(t, "lost-2 back on the fleet's view", func() bool {
		return readyzOf(t, procs[1])["view"] == "fleet" && fleetAnswer(t, procs[1]) == "192.0.2.1"
	})

	// A drain outlives a restart without Redis: the state file has it.
	if code, out := httpPost(t, "http://"+procs[0].http+"/api/v1/datacenters/primary/override", `{"state":"down","reason":"survives restarts"}`); code != 200 {
		t.Fatalf("drain: %d %s", code, out)
	}
	eventually(t, "both drained", func() bool {
		return fleetAnswer(t, procs[0]) == "192.0.2.2" && fleetAnswer(t, procs[1]) == "192.0.2.2"
	})
	rs.Kill()
	_ = procs[0].cmd.Process.Signal(syscall.SIGTERM)
	<-procs[0].exited
	procs[0] = members[0].start(t, rs.Addr())
	if a := fleetAnswer(t, procs[0]); a != "192.0.2.2" {
		t.Errorf("lost-1 restarted without Redis answers %s, want the backup: the drain is in its state file", a)
	}
	if s := fmt.Sprint(fleetStatusOf(t, procs[0]).Health.Fleet.Overrides); !strings.Contains(s, "survives restarts") {
		t.Errorf("restarted lost-1's status overrides: %s", s)
	}
}

// TestFleetProbeSharing: with probe sharing each endpoint is probed by
// fleet.probers_per_endpoint instances per check interval, not by all of
// them, as instances join and leave; and every instance still answers
// from the fleet's verdicts.
func TestFleetProbeSharing(t *testing.T) {
	rs := redistest.Start(t)
	rs.RequireReal(t)
	var probes atomic.Int64
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		probes.Add(1)
		fmt.Fprint(w, "ok")
	}))
	defer counted.Close()
	b := newHealthEndpoint(t)
	const k, interval, window = 2, 200 * time.Millisecond, 2 * time.Second
	var procs []*daemonProc
	join := func(i int) {
		m := &fleetMember{name: fmt.Sprintf("share-%d", i), ip: fmt.Sprintf("127.0.0.%d", i), worker: i,
			interval: interval.String(), timeout: "150ms", fleetExtra: fmt.Sprintf(", probe_sharing: true, probers_per_endpoint: %d", k),
			primary: counted.Listener.Addr().String(), backup: b.Listener.Addr().String()}
		procs = append(procs, m.start(t, rs.Addr()))
	}
	// measure waits until every instance sees the others, lets the shares
	// settle, then counts the probes the primary gets in a window.
	measure := func(what string) {
		t.Helper()
		eventually(t, what+": every instance sees the fleet", func() bool {
			for _, d := range procs {
				if len(fleetStatusOf(t, d).Health.Fleet.Instances) != len(procs) {
					return false
				}
			}
			return true
		})
		time.Sleep(time.Second)
		before := probes.Load()
		time.Sleep(window)
		n := probes.Load() - before
		bound := int64(min(k, len(procs))) * int64(window/interval+1)
		t.Logf("%s: %d instances, the primary got %d probes in %s (bound %d; %d without sharing)", what, len(procs), n, window, bound, int64(len(procs))*int64(window/interval))
		if n > bound {
			t.Errorf("%s: %d probes in %s, more than %d probers every %s allow", what, n, window, min(k, len(procs)), interval)
		}
		// More than one prober can make: the share moved to a second one.
		if one := int64(window/interval + 1); min(k, len(procs)) > 1 && n <= one {
			t.Errorf("%s: %d probes in %s: fewer than %d probers at work", what, n, window, min(k, len(procs)))
		}
		for _, d := range procs {
			if a := fleetAnswer(t, d); a != "192.0.2.1" {
				t.Errorf("%s: an instance answers %s, want the primary", what, a)
			}
		}
	}
	for i := 1; i <= 3; i++ {
		join(i)
	}
	measure("three instances")
	join(4)
	measure("a fourth joined")
	for range 2 {
		d := procs[0]
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.exited
		procs = procs[1:]
	}
	measure("two left")
}

// TestFleetHandover: an instance restarting through a hand-over takes its
// own registration over from its predecessor instead of refusing it as a
// duplicate, and stays in the fleet after the predecessor stops.
func TestFleetHandover(t *testing.T) {
	rs := redistest.Start(t)
	rs.RequireReal(t)
	p, b := newHealthEndpoint(t), newHealthEndpoint(t)
	m := &fleetMember{name: "hand-1", ip: "127.0.0.1", worker: 1, primary: p.Listener.Addr().String(), backup: b.Listener.Addr().String()}
	sock := filepath.Join(t.TempDir(), "handover.sock")
	args := append(m.args(t, rs.Addr()), "--set", "dns.handover_socket="+sock)
	first := startDaemonCmd(t, exec.Command(gslbdBin, args...))
	second := startDaemonCmd(t, exec.Command(gslbdBin, args...))
	select {
	case <-first.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("predecessor still running 20s after its successor was ready")
	}
	eventually(t, "the successor alone in the fleet, publishing", func() bool {
		st := fleetStatusOf(t, second).Health.Fleet
		return st.Source == "fleet" && len(st.Instances) == 1 && st.Instances[0] == "hand-1" &&
			len(st.Endpoints) == 2 && len(st.Endpoints[0].Verdicts) == 1
	})
	if a := fleetAnswer(t, second); a != "192.0.2.1" {
		t.Errorf("successor answers %s", a)
	}
	// gslbd ctl says who drains.
	if out, code := runCLI(t, "ctl", "drain", "primary", "--reason", "ctl drain", "--by", "bob", "--addr", second.http); code != 0 {
		t.Fatalf("ctl drain: %s", out)
	}
	if ov := fleetStatusOf(t, second).Health.Fleet.Overrides; len(ov) != 1 || !strings.HasPrefix(ov[0].By, "bob via instance hand-1") {
		t.Errorf("overrides after ctl drain --by bob: %+v", ov)
	}
}
