package acme

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// memStore is a Store in memory, for tests.
type memStore struct {
	mu   sync.Mutex
	recs []Record
	fail error
}

func (m *memStore) Load(context.Context) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.recs), m.fail
}

func (m *memStore) Update(_ context.Context, apply func([]Record) ([]Record, error)) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	next, err := apply(slices.Clone(m.recs))
	if err != nil {
		return nil, err
	}
	m.recs = next
	return next, nil
}

const (
	zone = "example.test."
	key  = "acme-key."
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	h      *Handler
	store  Store
	reg    *prometheus.Registry
	served []Record
	now    time.Time
}

func newFixture(t testing.TB, store Store) *fixture {
	f := &fixture{store: store, reg: prometheus.NewRegistry(), now: t0}
	f.h = New(Options{Store: store, Registerer: f.reg, Now: func() time.Time { return f.now },
		OnChange: func(r []Record) { f.served = r }})
	f.h.Configure(Settings{
		Zones:    []string{zone, "other.test."},
		KeyZones: map[string][]string{"narrow-key.": {"other.test."}},
		MaxTTL:   300, Lifetime: 24 * time.Hour, MaxPerName: 3, MaxTotal: 5,
		Static: func(name string) bool { return name == "_acme-challenge.static.example.test." },
	})
	return f
}

// wire packs and unpacks m, so RDLENGTH and the empty-RDATA forms are as
// a client's bytes make them.
func wire(t testing.TB, m *dns.Msg) *dns.Msg {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := new(dns.Msg)
	if err := out.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return out
}

func txt(name string, ttl uint32, s ...string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: s}
}

func upd(z string, build func(m *dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(z)
	build(m)
	return m
}

func (f *fixture) send(t *testing.T, m *dns.Msg, k string) int {
	t.Helper()
	r := f.h.Update(wire(t, m), k, nil, netip.MustParseAddr("127.0.0.1"))
	if r.Id != m.Id || !r.Response || r.Opcode != dns.OpcodeUpdate {
		t.Fatalf("response header %v does not answer the update", r.MsgHdr)
	}
	if _, err := r.Pack(); err != nil {
		t.Fatalf("response does not pack: %v", err)
	}
	return r.Rcode
}

func (f *fixture) stored(t *testing.T) []string {
	t.Helper()
	recs, err := f.store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range Live(recs, f.now) {
		out = append(out, r.RR().String())
	}
	slices.Sort(out)
	return out
}

func want(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("records:\n got  %q\n want %q", got, want)
	}
}

const chal = "_acme-challenge.www.example.test."

func TestAddDelete(t *testing.T) {
	f := newFixture(t, &memStore{})
	add := upd(zone, func(m *dns.Msg) {
		m.Insert([]dns.RR{txt("_acme-challenge.WWW.example.test.", 120, "tok-1"), txt(chal, 120, "tok-2")})
	})
	if rc := f.send(t, add, key); rc != dns.RcodeSuccess {
		t.Fatalf("add: got %s", dns.RcodeToString[rc])
	}
	want(t, f.stored(t), chal+"\t120\tIN\tTXT\t\"tok-1\"", chal+"\t120\tIN\tTXT\t\"tok-2\"")
	if len(f.served) != 2 || f.served[0].Expires != t0.Add(24*time.Hour) {
		t.Errorf("OnChange got %+v, want both records, expiring after the lifetime", f.served)
	}

	// The apex's own challenge name, with a TTL over the bound.
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt("_acme-challenge.example.test.", 86400, "apex")}) }), key); rc != dns.RcodeSuccess {
		t.Fatalf("apex add: got %s", dns.RcodeToString[rc])
	}
	// Delete one RR (class NONE), as certbot's cleanup does.
	del := upd(zone, func(m *dns.Msg) { m.Remove([]dns.RR{txt(chal, 0, "tok-1")}) })
	if rc := f.send(t, del, key); rc != dns.RcodeSuccess {
		t.Fatalf("delete RR: got %s", dns.RcodeToString[rc])
	}
	want(t, f.stored(t), "_acme-challenge.example.test.\t300\tIN\tTXT\t\"apex\"", chal+"\t120\tIN\tTXT\t\"tok-2\"")

	// Delete the RRset (class ANY, type TXT), as lego's cleanup does.
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.RemoveRRset([]dns.RR{txt(chal, 0)}) }), key); rc != dns.RcodeSuccess {
		t.Fatalf("delete RRset: got %s", dns.RcodeToString[rc])
	}
	// And every RRset at a name (class ANY, type ANY).
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.RemoveName([]dns.RR{txt("_acme-challenge.example.test.", 0)}) }), key); rc != dns.RcodeSuccess {
		t.Fatalf("delete name: got %s", dns.RcodeToString[rc])
	}
	want(t, f.stored(t))
	if len(f.served) != 0 {
		t.Errorf("OnChange got %+v, want nothing served", f.served)
	}
	if got := testutil.ToFloat64(f.h.metrics.updates.WithLabelValues("noerror")); got != 5 {
		t.Errorf("gslb_acme_updates_total{result=noerror}: got %v, want 5", got)
	}
}

func TestRefusedChangesNothing(t *testing.T) {
	f := newFixture(t, &memStore{})
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "keep")}) }), key); rc != dns.RcodeSuccess {
		t.Fatalf("seed add: got %s", dns.RcodeToString[rc])
	}
	a, _ := dns.NewRR("_acme-challenge.www.example.test. 60 IN A 192.0.2.1")
	cname, _ := dns.NewRR("_acme-challenge.www.example.test. 60 IN CNAME elsewhere.test.")
	good := txt(chal, 60, "new")
	for _, tc := range []struct {
		name  string
		msg   *dns.Msg
		key   string
		rcode int
	}{
		{"unsigned", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{good}) }), "", dns.RcodeNotAuth},
		{"key not allowed for the zone", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{good}) }), "narrow-key.", dns.RcodeNotAuth},
		{"zone not served", upd("example.com.", func(m *dns.Msg) { m.Insert([]dns.RR{txt("_acme-challenge.example.com.", 60, "x")}) }), key, dns.RcodeNotAuth},
		{"zone below a served one", upd("www.example.test.", func(m *dns.Msg) { m.Insert([]dns.RR{good}) }), key, dns.RcodeNotAuth},
		{"zone type not SOA", upd(zone, func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeA; m.Insert([]dns.RR{good}) }), key, dns.RcodeFormatError},
		{"two zones", upd(zone, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]); m.Insert([]dns.RR{good}) }), key, dns.RcodeFormatError},
		{"A record", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{good, a}) }), key, dns.RcodeRefused},
		{"CNAME record", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{cname}) }), key, dns.RcodeRefused},
		{"TXT not under _acme-challenge", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{good, txt("www.example.test.", 60, "x")}) }), key, dns.RcodeRefused},
		{"_acme-challenge not the first label", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt("x._acme-challenge.www.example.test.", 60, "x")}) }), key, dns.RcodeRefused},
		{"escaped name", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(`_acme-challenge.w\.w.example.test.`, 60, "x")}) }), key, dns.RcodeRefused},
		{"name in the configuration", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt("_acme-challenge.static.example.test.", 60, "x")}) }), key, dns.RcodeRefused},
		{"outside the zone", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{good, txt("_acme-challenge.other.test.", 60, "x")}) }), key, dns.RcodeNotZone},
		{"delete all at a name outside _acme-challenge", upd(zone, func(m *dns.Msg) { m.RemoveName([]dns.RR{txt("www.example.test.", 0)}) }), key, dns.RcodeRefused},
		{"delete an A RRset", upd(zone, func(m *dns.Msg) { m.RemoveRRset([]dns.RR{a}) }), key, dns.RcodeRefused},
		{"delete with a TTL", upd(zone, func(m *dns.Msg) { m.Remove([]dns.RR{txt(chal, 0, "keep")}); m.Ns[0].Header().Ttl = 5 }), key, dns.RcodeFormatError},
		{"class CH", upd(zone, func(m *dns.Msg) { r := txt(chal, 0, "x"); r.Header().Class = dns.ClassCHAOS; m.Ns = []dns.RR{r} }), key, dns.RcodeFormatError},
		{"oversized TXT", upd(zone, func(m *dns.Msg) {
			m.Insert([]dns.RR{txt(chal, 60, strings.Repeat("x", 255), strings.Repeat("y", 255), strings.Repeat("z", 255))})
		}), key, dns.RcodeRefused},
		{"over the per-name cap", upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "1"), txt(chal, 60, "2"), txt(chal, 60, "3")}) }), key, dns.RcodeRefused},
		{"over the total cap", upd(zone, func(m *dns.Msg) {
			for _, n := range []string{"a", "b", "c", "d", "e"} {
				m.Insert([]dns.RR{txt("_acme-challenge."+n+".example.test.", 60, n)})
			}
		}), key, dns.RcodeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rc := f.send(t, tc.msg, tc.key); rc != tc.rcode {
				t.Errorf("got %s, want %s", dns.RcodeToString[rc], dns.RcodeToString[tc.rcode])
			}
			want(t, f.stored(t), chal+"\t60\tIN\tTXT\t\"keep\"")
		})
	}
	r := f.h.Update(wire(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{good}) })), key, dns.ErrSig, netip.Addr{})
	if r.Rcode != dns.RcodeNotAuth {
		t.Errorf("bad signature: got %s, want NOTAUTH", dns.RcodeToString[r.Rcode])
	}
	want(t, f.stored(t), chal+"\t60\tIN\tTXT\t\"keep\"")
	if got := testutil.ToFloat64(f.h.metrics.updates.WithLabelValues("notauth")); got != 5 {
		t.Errorf("gslb_acme_updates_total{result=notauth}: got %v, want 5", got)
	}
}

func TestPrerequisites(t *testing.T) {
	f := newFixture(t, &memStore{})
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "a"), txt(chal, 60, "b")}) }), key); rc != dns.RcodeSuccess {
		t.Fatalf("seed: got %s", dns.RcodeToString[rc])
	}
	free := "_acme-challenge.free.example.test."
	add := txt(free, 60, "new")
	for _, tc := range []struct {
		name  string
		pre   func(m *dns.Msg)
		rcode int
	}{
		{"name in use: yes", func(m *dns.Msg) { m.NameUsed([]dns.RR{txt(chal, 0)}) }, dns.RcodeSuccess},
		{"name in use: no", func(m *dns.Msg) { m.NameUsed([]dns.RR{txt(free, 0)}) }, dns.RcodeNameError},
		{"name not in use: no", func(m *dns.Msg) { m.NameNotUsed([]dns.RR{txt(chal, 0)}) }, dns.RcodeYXDomain},
		{"RRset exists: yes", func(m *dns.Msg) { m.RRsetUsed([]dns.RR{txt(chal, 0)}) }, dns.RcodeSuccess},
		{"RRset exists: other type", func(m *dns.Msg) {
			a, _ := dns.NewRR(chal + " 0 IN A 192.0.2.1")
			m.RRsetUsed([]dns.RR{a})
		}, dns.RcodeNXRrset},
		{"RRset does not exist: it does", func(m *dns.Msg) { m.RRsetNotUsed([]dns.RR{txt(chal, 0)}) }, dns.RcodeYXRrset},
		{"RRset equals: yes", func(m *dns.Msg) { m.Used([]dns.RR{txt(chal, 0, "b"), txt(chal, 0, "a")}) }, dns.RcodeSuccess},
		{"RRset equals: subset", func(m *dns.Msg) { m.Used([]dns.RR{txt(chal, 0, "a")}) }, dns.RcodeNXRrset},
		{"prerequisite on another name", func(m *dns.Msg) { m.NameUsed([]dns.RR{txt("www.example.test.", 0)}) }, dns.RcodeRefused},
		{"prerequisite with a TTL", func(m *dns.Msg) { m.NameUsed([]dns.RR{txt(chal, 0)}); m.Answer[0].Header().Ttl = 9 }, dns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = f.send(t, upd(zone, func(m *dns.Msg) { m.RemoveRRset([]dns.RR{txt(free, 0)}) }), key)
			rc := f.send(t, upd(zone, func(m *dns.Msg) { tc.pre(m); m.Insert([]dns.RR{add}) }), key)
			if rc != tc.rcode {
				t.Fatalf("got %s, want %s", dns.RcodeToString[rc], dns.RcodeToString[tc.rcode])
			}
			added := slices.Contains(f.stored(t), free+"\t60\tIN\tTXT\t\"new\"")
			if added != (tc.rcode == dns.RcodeSuccess) {
				t.Errorf("record added: %t, want %t", added, tc.rcode == dns.RcodeSuccess)
			}
		})
	}
}

func TestExpiryAndCaps(t *testing.T) {
	f := newFixture(t, &memStore{})
	for _, s := range []string{"1", "2", "3"} {
		if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, s)}) }), key); rc != dns.RcodeSuccess {
			t.Fatalf("add %s: got %s", s, dns.RcodeToString[rc])
		}
		f.now = f.now.Add(time.Hour)
	}
	// Adding "1" again refreshes it rather than counting twice, and its
	// TTL becomes the RRset's.
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 30, "1")}) }), key); rc != dns.RcodeSuccess {
		t.Fatalf("re-add: got %s", dns.RcodeToString[rc])
	}
	want(t, f.stored(t), chal+"\t30\tIN\tTXT\t\"1\"", chal+"\t30\tIN\tTXT\t\"2\"", chal+"\t30\tIN\tTXT\t\"3\"")
	// After a lowered cap, deleting still works, adding does not.
	s := *f.h.settings.Load()
	s.MaxPerName = 1
	f.h.Configure(s)
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "4")}) }), key); rc != dns.RcodeRefused {
		t.Errorf("add over a lowered cap: got %s, want REFUSED", dns.RcodeToString[rc])
	}
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Remove([]dns.RR{txt(chal, 0, "3")}) }), key); rc != dns.RcodeSuccess {
		t.Errorf("delete over a lowered cap: got %s, want NOERROR", dns.RcodeToString[rc])
	}
	// "2" was added an hour after "1", which was refreshed two hours
	// later: 23 h after the refresh only "1" is left.
	f.now = f.now.Add(23*time.Hour + time.Second)
	want(t, f.stored(t), chal+"\t30\tIN\tTXT\t\"1\"")
}

func TestStoreFailure(t *testing.T) {
	st := &memStore{fail: errors.New("redis: connection refused")}
	f := newFixture(t, st)
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "x")}) }), key); rc != dns.RcodeServerFailure {
		t.Errorf("got %s, want SERVFAIL", dns.RcodeToString[rc])
	}
	if f.served != nil {
		t.Errorf("OnChange called with %v after a failed store", f.served)
	}
	if got := testutil.ToFloat64(f.h.metrics.errors); got != 1 {
		t.Errorf("gslb_acme_store_errors_total: got %v, want 1", got)
	}
}

func TestFileStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, NewFileStore(dir))
	if rc := f.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "persist")}) }), key); rc != dns.RcodeSuccess {
		t.Fatalf("add: got %s", dns.RcodeToString[rc])
	}
	// A new store on the same directory, as after a restart.
	again := NewFileStore(dir)
	recs, err := again.Load(context.Background())
	if err != nil || len(recs) != 1 || recs[0].Txt[0] != "persist" || !recs[0].Expires.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("after restart: got %+v, %v; want the record with its expiry", recs, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != StateFile {
		t.Errorf("state dir holds %v, want only %s (no temporary files left)", entries, StateFile)
	}
	// A damaged file is an error naming it, and updates fail without
	// replacing it.
	path := filepath.Join(dir, StateFile)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Load(context.Background()); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("damaged file: got %v, want an error naming %s", err, path)
	}
	f2 := newFixture(t, again)
	if rc := f2.send(t, upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "x")}) }), key); rc != dns.RcodeServerFailure {
		t.Errorf("update over a damaged file: got %s, want SERVFAIL", dns.RcodeToString[rc])
	}
	if b, _ := os.ReadFile(path); string(b) != "{not json" {
		t.Errorf("damaged file was replaced with %q", b)
	}
}
