package gslb

import (
	"encoding/base64"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestWithACME(t *testing.T) {
	base := testSnapshot(t)
	chal := "_acme-challenge.host.example.test."
	snap := base.WithACME([]dns.RR{
		&dns.TXT{Hdr: dns.RR_Header{Name: "_ACME-challenge.host.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"tok-1"}},
		&dns.TXT{Hdr: dns.RR_Header{Name: chal, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"tok-2"}},
		&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.a.b.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"deep"}},
		// Static data wins; names outside every zone are not served.
		&dns.TXT{Hdr: dns.RR_Header{Name: "host.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"no"}},
		&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.example.com.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"no"}},
	})
	ask := func(s *Snapshot, name string, qtype uint16) *dns.Msg {
		m, _ := s.Answer(query(name, qtype), netip.MustParseAddr("192.0.2.99"), false)
		return m
	}
	if r := ask(snap, chal, dns.TypeTXT); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || !r.Authoritative {
		t.Errorf("challenge TXT: got %s %v, want both records, authoritative", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if r := ask(snap, "b.example.test.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("empty non-terminal above a challenge: got %s %v, want NODATA", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if r := ask(snap, "host.example.test.", dns.TypeTXT); len(r.Answer) != 0 {
		t.Errorf("TXT at a static name: got %v, want the static data only (none)", r.Answer)
	}
	// The base snapshot is not changed: a later swap without the records
	// serves NXDOMAIN again.
	if r := ask(base, chal, dns.TypeTXT); r.Rcode != dns.RcodeNameError {
		t.Errorf("base snapshot: got %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if r := ask(base, "b.example.test.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("base snapshot's b.example.test.: got %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if !snap.StaticName("host.example.test.") || snap.StaticName(chal) || snap.StaticName("_acme-challenge.mail.example.test.") {
		t.Error("StaticName: want true for configured names only")
	}
	// Health swaps keep the records.
	if r := ask(snap.WithHealth(nil), chal, dns.TypeTXT); len(r.Answer) != 2 {
		t.Errorf("after WithHealth: got %v, want both records", r.Answer)
	}
}

// echoUpdater answers every update NOERROR and records what it was told.
type echoUpdater struct {
	mu      sync.Mutex
	key     string
	tsigErr error
}

func (u *echoUpdater) Update(r *dns.Msg, key string, tsigErr error, _ netip.Addr) *dns.Msg {
	u.mu.Lock()
	u.key, u.tsigErr = key, tsigErr
	u.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	if key == "" || tsigErr != nil {
		m.Rcode = dns.RcodeNotAuth
	}
	return m
}

func TestSignedUpdates(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	b64 := base64.StdEncoding.EncodeToString(secret)
	srv, _ := newTestServer(t, testSnapshot(t))
	l, err := srv.Listen(ListenConfig{Addrs: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, TCPIdleTimeout: time.Second, TCPMaxConnections: 4})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = l.Serve() }()
	t.Cleanup(func() { _ = l.Shutdown(t.Context()) })
	addr := l.Addrs()[0].String()

	update := func(keyName, alg string, secrets map[string]string, net string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetUpdate("example.test.")
		m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"x"}}})
		if keyName != "" {
			m.SetTsig(keyName, alg, 300, time.Now().Unix())
		}
		c := &dns.Client{Net: net, Timeout: 3 * time.Second, TsigSecret: secrets}
		r, _, err := c.Exchange(m, addr)
		return r, err
	}

	// Without an updater, UPDATE is not implemented, signed or not.
	if r, err := update("", "", nil, "udp"); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("no updater: got %v, %v; want NOTIMP", r, err)
	}
	u := &echoUpdater{}
	srv.SetUpdates(map[string]TSIGKey{"Acme-Key": {Algorithm: dns.HmacSHA256, Secret: secret}}, u)
	for _, proto := range []string{"udp", "tcp"} {
		// A good signature: the client verifies the signed response
		// (Exchange fails on a bad or missing one).
		r, err := update("acme-key.", dns.HmacSHA256, map[string]string{"acme-key.": b64}, proto)
		if err != nil || r.Rcode != dns.RcodeSuccess || r.IsTsig() == nil || r.IsTsig().Error != 0 {
			t.Fatalf("%s good key: got %v, %v; want a signed NOERROR", proto, r, err)
		}
		u.mu.Lock()
		if u.key != "acme-key." || u.tsigErr != nil {
			t.Errorf("%s: updater told key %q err %v", proto, u.key, u.tsigErr)
		}
		u.mu.Unlock()
	}
	// A wrong secret: BADSIG, unsigned (the client cannot verify it, so
	// it is read without the client's check).
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		name, key, alg string
		secret         []byte
		want           int
	}{
		{"wrong secret", "acme-key.", dns.HmacSHA256, []byte("another secret, just as long...."), dns.RcodeBadSig},
		{"unknown key", "other-key.", dns.HmacSHA256, secret, dns.RcodeBadKey},
		{"other algorithm", "acme-key.", dns.HmacSHA512, secret, dns.RcodeBadKey},
	} {
		m := new(dns.Msg)
		m.SetUpdate("example.test.")
		m.SetTsig(tc.key, tc.alg, 300, time.Now().Unix())
		b, _, err := dns.TsigGenerate(m, base64.StdEncoding.EncodeToString(tc.secret), "", false)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		tr := r.IsTsig()
		if r.Rcode != dns.RcodeNotAuth || tr == nil || int(tr.Error) != tc.want || tr.MAC != "" {
			t.Errorf("%s: got %s TSIG %v, want NOTAUTH with an unsigned TSIG error %s", tc.name, dns.RcodeToString[r.Rcode], tr, dns.RcodeToString[tc.want])
		}
		// The time is ours, not zero: a zero reads as clock skew to
		// clients (nsupdate: "clocks are unsynchronized").
		if tr != nil && (tr.TimeSigned+60 < uint64(time.Now().Unix()) || tr.TimeSigned > uint64(time.Now().Unix())+60) {
			t.Errorf("%s: unsigned error's Time Signed %d; want the server's time", tc.name, tr.TimeSigned)
		}
	}
	// A signature from too long ago: BADTIME, signed, with our time.
	// miekg/dns's client refuses to verify any NOTAUTH response (its
	// ErrAuth), so the MAC's presence is what is checked.
	m := new(dns.Msg)
	m.SetUpdate("example.test.")
	m.SetTsig("acme-key.", dns.HmacSHA256, 300, time.Now().Add(-time.Hour).Unix())
	c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second, TsigSecret: map[string]string{"acme-key.": b64}}
	r, _, err := c.Exchange(m, addr)
	if r == nil || r.Rcode != dns.RcodeNotAuth || r.IsTsig() == nil || r.IsTsig().Error != dns.RcodeBadTime ||
		r.IsTsig().OtherLen != 6 || r.IsTsig().MACSize != 32 {
		t.Errorf("old signature: got %v, %v; want NOTAUTH, signed, TSIG error BADTIME with the server's time", r, err)
	}
	// While updates are on, a signed query is answered signed (certbot's
	// sign_query), and one with a bad signature NOTAUTH.
	q := new(dns.Msg)
	q.SetQuestion("example.test.", dns.TypeSOA)
	q.SetTsig("acme-key.", dns.HmacSHA256, 300, time.Now().Unix())
	r, _, err = c.Exchange(q, addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.IsTsig() == nil {
		t.Errorf("signed SOA query: got %v, %v; want a signed SOA answer", r, err)
	}
	q.SetTsig("acme-key.", dns.HmacSHA256, 300, time.Now().Unix())
	bad := &dns.Client{Net: "tcp", Timeout: 3 * time.Second, TsigSecret: map[string]string{"acme-key.": base64.StdEncoding.EncodeToString([]byte("another secret, just as long...."))}}
	r, _, _ = bad.Exchange(q, addr)
	if r == nil || r.Rcode != dns.RcodeNotAuth || len(r.Answer) != 0 || r.IsTsig() == nil || r.IsTsig().Error != dns.RcodeBadSig {
		t.Errorf("badly signed SOA query: got %v; want NOTAUTH, no answer, TSIG error BADSIG", r)
	}
	// Turning updates off again answers NOTIMP.
	srv.SetUpdates(nil, nil)
	if r, err := update("", "", nil, "udp"); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("updater removed: got %v, %v; want NOTIMP", r, err)
	}
}

// BenchmarkUpdatesOn is what turning ACME on costs an ordinary query (the
// updater look-up and the check for a TSIG record): compare the two
// sub-benchmarks of one run.
func BenchmarkUpdatesOn(b *testing.B) {
	req := query("www.example.test.", dns.TypeA, withEDNS(1232, false))
	for _, on := range []bool{false, true} {
		srv, _ := newTestServer(b, testSnapshot(b))
		name := "off"
		if on {
			name = "on"
			srv.SetUpdates(map[string]TSIGKey{"k.": {Algorithm: dns.HmacSHA256, Secret: []byte("0123456789abcdef")}}, &echoUpdater{})
		}
		b.Run(name, func(b *testing.B) {
			w := &discardWriter{}
			b.ReportAllocs()
			for b.Loop() {
				srv.ServeDNS(w, req)
			}
		})
	}
}
