package acme

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzUpdate feeds raw messages to the update handler as a key holder
// would send them. Whatever the bytes: no panic, a response that answers
// the message and packs, nothing stored unless NOERROR, and what is
// stored stays inside the rules (challenge names of served zones, TXT,
// bounded TTL, the caps). The corpus in testdata/fuzz/FuzzUpdate holds
// one message of each shape the handler treats differently.
func FuzzUpdate(f *testing.F) {
	for _, m := range seedUpdates() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := new(dns.Msg)
		if r.Unpack(b) != nil {
			return // the listener drops these before any handler runs
		}
		st := &memStore{recs: []Record{{Name: chal, Txt: []string{"seed"}, TTL: 60, Expires: t0.Add(1e12)}}}
		fx := newFixture(t, st)
		before := slices.Clone(st.recs)
		resp := fx.h.Update(r, key, nil, netip.Addr{})
		if resp.Id != r.Id || !resp.Response {
			t.Fatalf("response %v does not answer %v", resp.MsgHdr, r.MsgHdr)
		}
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("response does not pack: %v", err)
		}
		if resp.Rcode != dns.RcodeSuccess && !slices.EqualFunc(before, st.recs, func(a, b Record) bool { return a.same(b) && a.TTL == b.TTL }) {
			t.Fatalf("%s, yet the records changed from %v to %v", dns.RcodeToString[resp.Rcode], before, st.recs)
		}
		per := map[string]int{}
		for _, rec := range st.recs {
			per[rec.Name]++
			rest, ok := strings.CutPrefix(rec.Name, challengePrefix)
			if !ok || !(dns.IsSubDomain(zone, rest) || dns.IsSubDomain("other.test.", rest)) || rec.TTL > 300 || len(rec.Txt) == 0 {
				t.Fatalf("stored %+v, which the rules do not allow", rec)
			}
		}
		if len(st.recs) > 5 || slices.ContainsFunc(slices.Collect(maps.Values(per)), func(n int) bool { return n > 3 }) {
			t.Fatalf("stored %d records (%v), over the caps", len(st.recs), per)
		}
		if _, err := st.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// seedUpdates are the messages certbot, lego and nsupdate send, and the
// refusals next to them.
func seedUpdates() []*dns.Msg {
	a, _ := dns.NewRR(chal + " 60 IN A 192.0.2.1")
	return []*dns.Msg{
		upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 120, "token")}) }),
		upd(zone, func(m *dns.Msg) { m.Remove([]dns.RR{txt(chal, 0, "seed")}) }),
		upd(zone, func(m *dns.Msg) { m.RemoveRRset([]dns.RR{txt(chal, 0)}) }),
		upd(zone, func(m *dns.Msg) { m.RemoveName([]dns.RR{txt(chal, 0)}) }),
		upd(zone, func(m *dns.Msg) { m.Used([]dns.RR{txt(chal, 0, "seed")}); m.Insert([]dns.RR{txt(chal, 1, "x")}) }),
		upd(zone, func(m *dns.Msg) { m.NameNotUsed([]dns.RR{txt(chal, 0)}) }),
		upd(zone, func(m *dns.Msg) { m.Insert([]dns.RR{txt(chal, 60, "ok"), a}) }),
		upd("other.test.", func(m *dns.Msg) { m.Insert([]dns.RR{txt("_acme-challenge.other.test.", 60, "o")}) }),
	}
}
