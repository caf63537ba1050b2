package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// replConfig is one datacenter's gslbd: its own Redis, the other
// datacenter's as a peer.
const replConfig = `
instance: {name: gslb-%[1]s, datacenter: %[1]s, datacenter_id: %[2]d}
http: {allow_unauthenticated_loopback: true}
sessions:
  store: redis
  redis: {addrs: ["%[3]s"], lookup_budget: 50ms}
replication:
  mode: %[5]s
  %[6]s
  peers: [{datacenter: %[7]s, addrs: ["%[4]s"]}]
datacenters:
  - {id: dc-a, endpoints: [{address: 192.0.2.1}]}
  - {id: dc-b, endpoints: [{address: 192.0.2.2}]}
zones:
  - origin: s.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: failover, datacenters: [dc-a, dc-b], sticky: true}
`

func startReplicated(t *testing.T, dc string, id int, own, peer *redistest.Server, mode, role, peerDC string) *daemonProc {
	t.Helper()
	roleLine := ""
	if role != "" {
		roleLine = "role: " + role
	}
	cfg := fmt.Sprintf(replConfig, dc, id, own.Addr(), peer.Addr(), mode, roleLine, peerDC)
	return startDaemon(t, writeConfig(t, t.TempDir(), cfg))
}

// replStatus is what the tests read of GET /api/v1/replication.
type replStatus struct {
	Mode    string `json:"mode"`
	Role    string `json:"role"`
	Primary string `json:"primary"`
	Peers   []struct {
		Datacenter string   `json:"datacenter"`
		State      string   `json:"state"`
		Checkpoint string   `json:"checkpoint"`
		LagSeconds *float64 `json:"lag_seconds"`
	} `json:"peers"`
}

func getReplStatus(t *testing.T, d *daemonProc) replStatus {
	t.Helper()
	code, body := httpDo(t, "GET", "http://"+d.http+"/api/v1/replication", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/replication: %d %s", code, body)
	}
	var st replStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET /api/v1/replication: %v\n%s", err, body)
	}
	return st
}

// TestReplicationActivePassive runs two datacenters as operators would:
// a client placed by the primary's gslbd is in the standby's Redis, the
// standby's status shows its checkpoint and lag, and a promote through
// the API flips the roles.
func TestReplicationActivePassive(t *testing.T) {
	ra, rb := redistest.Start(t), redistest.Start(t)
	ra.RequireReal(t)
	a := startReplicated(t, "dc-a", 1, ra, rb, "active-passive", "primary", "dc-b")
	b := startReplicated(t, "dc-b", 2, rb, ra, "active-passive", "standby", "dc-a")

	if got := askFrom(t, a.dns, "203.0.113.0/24"); got != "192.0.2.1" {
		t.Fatalf("the primary placed the client on %s, want dc-a's 192.0.2.1", got)
	}
	sessionURL := "/api/v1/sessions?client=203.0.113.7&service=www.s.test."
	eventually(t, "the session in the standby's Redis", func() bool {
		code, _ := httpDo(t, "GET", "http://"+b.http+sessionURL, "")
		return code == http.StatusOK
	})
	var st replStatus
	eventually(t, "the standby streaming from the primary", func() bool {
		st = getReplStatus(t, b)
		return len(st.Peers) == 1 && st.Peers[0].State == "streaming" && st.Peers[0].Checkpoint != "" && st.Peers[0].Checkpoint != "0-0"
	})
	if st.Mode != "active-passive" || st.Role != "standby" || st.Peers[0].Datacenter != "dc-a" || st.Peers[0].LagSeconds == nil {
		t.Errorf("standby's status: %+v", st)
	}
	// The standby answers DNS for a new client, but stores nothing.
	if got := askFrom(t, b.dns, "198.51.100.0/24"); got != "192.0.2.1" {
		t.Errorf("the standby answered %s for a new client, want the policy's 192.0.2.1", got)
	}
	if code, body := httpDo(t, "GET", "http://"+b.http+"/api/v1/sessions?client=198.51.100.1&service=www.s.test.", ""); code != http.StatusNotFound {
		t.Errorf("a session the standby would have created: %d %s, want 404", code, body)
	}
	code, body := httpDo(t, "GET", "http://"+b.http+"/metrics", "")
	if code != http.StatusOK || !strings.Contains(body, `gslb_replication_lag_seconds{peer="dc-a"}`) ||
		!strings.Contains(body, "gslb_replication_writes_refused_total 1") {
		t.Errorf("metrics lack the lag gauge or the refused write:\n%s", grepLines(body, "gslb_replication"))
	}

	code, body = httpPost(t, "http://"+b.http+"/api/v1/replication/promote", `{"timeout": "10s"}`)
	if code != http.StatusOK || !strings.Contains(body, `"promoted": true`) {
		t.Fatalf("promote: %d %s", code, body)
	}
	if st := getReplStatus(t, b); st.Role != "primary" {
		t.Errorf("after promote, b: %+v", st)
	}
	if st := getReplStatus(t, a); st.Role != "standby" || st.Primary != "dc-b" {
		t.Errorf("after promote, a: %+v", st)
	}
	// Now b's new clients are stored, and reach a.
	askFrom(t, b.dns, "192.0.2.0/24")
	eventually(t, "b's new session in a's Redis", func() bool {
		code, _ := httpDo(t, "GET", "http://"+a.http+"/api/v1/sessions?client=192.0.2.9&service=www.s.test.", "")
		return code == http.StatusOK
	})
}

// TestReplicatorProcessKilled SIGKILLs the replicating gslbd over and over
// while the other datacenter writes: after a last run has caught up, the
// standby's Redis has taken every change exactly once.
func TestReplicatorProcessKilled(t *testing.T) {
	ra, rb := redistest.Start(t), redistest.Start(t)
	ra.RequireReal(t)
	ids, err := idgen.New(idgen.Config{Datacenter: 1, Worker: 9})
	if err != nil {
		t.Fatal(err)
	}
	// The test writes dc-a's sessions through the store gslbd would use.
	writer, err := redisstore.New(redisstore.Options{Addrs: []string{ra.Addr()}, ReadTimeout: time.Second,
		Replication: &redisstore.Replication{Datacenter: "dc-a", IDs: ids}})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	ctx := context.Background()
	const writes = 4000
	raw := redis.NewClient(&redis.Options{Addr: rb.Addr()})
	defer raw.Close()
	processed := func() int64 {
		n, _ := raw.HGet(ctx, "gslb:repl:processed", "dc-a").Int64()
		return n
	}
	done := make(chan error, 1)
	write := func() {
		for i := range writes {
			now := time.Now()
			id, _ := ids.Next()
			s := session.Session{ID: id, Service: "www.s.test.", Datacenter: fmt.Sprint("dc-", i),
				Client: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i % 250), 0}), 24), Created: now, LastAccessed: now}
			if err := writer.Put(ctx, []session.Session{s}, time.Hour); err != nil {
				done <- err
				return
			}
			if i%500 == 0 {
				time.Sleep(50 * time.Millisecond) // spread the writes over the kills
			}
		}
		done <- nil
	}
	for round := range 4 {
		b := startReplicated(t, "dc-b", 2, rb, ra, "active-active", "", "dc-a")
		if round == 0 {
			// Every write must travel by the log: the first run's copy of
			// the keyspace (empty now) is not counted.
			eventually(t, "dc-b's first checkpoint", func() bool {
				return raw.HGet(ctx, "gslb:repl:checkpoints", "dc-a").Val() != ""
			})
			go write()
		}
		before := processed()
		eventually(t, "progress before the kill", func() bool { return processed() > before })
		if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-b.exited
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	startReplicated(t, "dc-b", 2, rb, ra, "active-active", "", "dc-a")
	eventually(t, "dc-b to take dc-a's whole log", func() bool { return processed() >= writes })
	if n := processed(); n != writes {
		t.Errorf("dc-b took %d changes of %d: each must be taken exactly once", n, writes)
	}
	rawA := redis.NewClient(&redis.Options{Addr: ra.Addr()})
	defer rawA.Close()
	for i := range 250 {
		k := fmt.Sprintf("gslb:session:www.s.test.|100.64.%d.0/24", i)
		va, vb := rawA.Get(ctx, k).Val(), raw.Get(ctx, k).Val()
		if va == "" || va != vb {
			t.Fatalf("%s: dc-a has %q, dc-b %q", k, va, vb)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReplicatedMoveReachesAnswers: in active-active, a client moved by
// one datacenter's gslbd is answered with its new datacenter by the
// other's, which had answered it before and cached the old one.
func TestReplicatedMoveReachesAnswers(t *testing.T) {
	ra, rb := redistest.Start(t), redistest.Start(t)
	ra.RequireReal(t)
	stay := func(cfg string) string {
		return strings.Replace(cfg, "store: redis\n", "store: redis\n  failback: stay\n", 1)
	}
	a := startDaemon(t, writeConfig(t, t.TempDir(), stay(fmt.Sprintf(replConfig, "dc-a", 1, ra.Addr(), rb.Addr(), "active-active", "", "dc-b"))))
	b := startDaemon(t, writeConfig(t, t.TempDir(), stay(fmt.Sprintf(replConfig, "dc-b", 2, rb.Addr(), ra.Addr(), "active-active", "", "dc-a"))))

	if got := askFrom(t, a.dns, "203.0.113.0/24"); got != "192.0.2.1" {
		t.Fatalf("a placed the client on %s, want dc-a", got)
	}
	sessionURL := "/api/v1/sessions?client=203.0.113.7&service=www.s.test."
	eventually(t, "the session at b", func() bool {
		code, _ := httpDo(t, "GET", "http://"+b.http+sessionURL, "")
		return code == http.StatusOK
	})
	if got := askFrom(t, b.dns, "203.0.113.0/24"); got != "192.0.2.1" { // b caches it now
		t.Fatalf("b answered %s, want the session's dc-a", got)
	}
	code, body := httpPost(t, "http://"+a.http+"/api/v1/datacenters/dc-a/override", `{"state": "down", "reason": "test"}`)
	if code != http.StatusOK {
		t.Fatalf("drain at a: %d %s", code, body)
	}
	if got := askFrom(t, a.dns, "203.0.113.0/24"); got != "192.0.2.2" {
		t.Fatalf("a answered %s with dc-a drained, want dc-b", got)
	}
	// dc-a is up at b: only the replicated move can make b answer dc-b.
	eventually(t, "b to answer with the move made at a", func() bool {
		return askFrom(t, b.dns, "203.0.113.0/24") == "192.0.2.2"
	})
}
