package gslb

import (
	"encoding/binary"
	"testing"

	"github.com/miekg/dns"
)

func packed(tb testing.TB, m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzServeDNS feeds raw packets through the path a listener takes: the
// accept filter, unpacking, then the handler. Whatever the bytes, the
// handler must not panic (it would count one) and must write exactly one
// response with the query's ID that packs and fits the client's buffer.
func FuzzServeDNS(f *testing.F) {
	// Seeds: one of each shape the handler treats differently; the corpus
	// in testdata/fuzz/FuzzServeDNS adds the crashers found so far.
	f.Add(packed(f, query("host.example.test.", dns.TypeA)))                                 // plain answer
	f.Add(packed(f, query("WwW.Example.Test.", dns.TypeAAAA, withEDNS(1232, true))))         // service, EDNS, DO
	f.Add(packed(f, query("big.example.test.", dns.TypeTXT)))                                // truncation
	f.Add(packed(f, query("a.b.wild.example.test.", dns.TypeANY)))                           // wildcard, ANY
	f.Add(packed(f, query("loop1.example.test.", dns.TypeA)))                                // CNAME loop
	f.Add(packed(f, query("x.example.com.", dns.TypeA)))                                     // REFUSED
	f.Add(packed(f, query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = 5 }))) // NOTIMP
	f.Add(packed(f, query("host.example.test.", dns.TypeA, withEDNS(512, false, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}), func(m *dns.Msg) { m.IsEdns0().SetVersion(1) })))
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // header only, no question

	s := testSnapshot(f)
	srv, _ := newTestServer(f, s)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 12 {
			return // miekg/dns drops these before any handler runs
		}
		hdr := dns.Header{Id: binary.BigEndian.Uint16(b), Bits: binary.BigEndian.Uint16(b[2:])}
		if acceptQuery(hdr) == dns.MsgIgnore {
			return
		}
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // miekg/dns answers FORMERR itself, without the handler
		}
		w := &recorder{}
		srv.ServeDNS(w, req)
		if len(w.msgs) != 1 {
			t.Fatalf("got %d responses, want exactly 1", len(w.msgs))
		}
		resp := w.msgs[0]
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("got id %d QR %t, want id %d QR true", resp.Id, resp.Response, req.Id)
		}
		out, err := resp.Pack()
		if err != nil {
			t.Fatalf("response does not pack: %v\n%v", err, resp)
		}
		if limit := s.clientUDPSize(req.IsEdns0()); len(out) > limit {
			t.Fatalf("UDP response of %d bytes exceeds the client's %d", len(out), limit)
		}
		if resp.Rcode == dns.RcodeServerFailure {
			t.Fatalf("SERVFAIL: the handler panicked on\n%v", req)
		}
	})
}
