package gslb

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TSIGKey is a shared secret for signed messages (RFC 8945).
type TSIGKey struct {
	// Algorithm is one of dns.HmacSHA1, dns.HmacSHA256, dns.HmacSHA512.
	Algorithm string
	Secret    []byte
}

// Updater answers dynamic updates (RFC 2136, opcode UPDATE). The server
// has verified the message's signature before calling it: key is the
// name of the TSIG key the message was signed with ("" when unsigned),
// and tsigErr what verification found (nil when the signature is good).
// The Updater decides the rcode, NOTAUTH included; the server signs the
// response when the request was signed.
type Updater interface {
	Update(r *dns.Msg, key string, tsigErr error, src netip.Addr) *dns.Msg
}

// dynamic is what the server needs for signed updates; it is replaced
// whole so that a reload changes keys and handler at once.
type dynamic struct {
	keys    map[string]TSIGKey // by canonical key name
	updater Updater
}

// SetUpdates installs the TSIG keys (by key name) and the update handler;
// a nil updater turns updates off, which answers them NOTIMP as before.
// Safe to call while serving.
func (s *Server) SetUpdates(keys map[string]TSIGKey, u Updater) {
	canon := make(map[string]TSIGKey, len(keys))
	for name, k := range keys {
		canon[dns.CanonicalName(name)] = TSIGKey{Algorithm: dns.CanonicalName(k.Algorithm), Secret: k.Secret}
	}
	s.dyn.Store(&dynamic{keys: canon, updater: u})
}

// TSIG returns the provider every listener verifies and signs TSIG with.
// It reads the keys current at each call, so a reload that changes them
// needs no new listener. A listener of its own (a UDP fast path) must do
// what miekg/dns's server does with it: dns.TsigVerifyWithProvider on the
// raw request when it carries a TSIG record, report the result from
// TsigStatus, and sign with dns.TsigGenerateWithProvider (passing the
// request's MAC) any response that carries a TSIG record.
func (s *Server) TSIG() dns.TsigProvider { return tsigProvider{s} }

type tsigProvider struct{ s *Server }

func (p tsigProvider) key(t *dns.TSIG) (hash.Hash, error) {
	d := p.s.dyn.Load()
	if d == nil {
		return nil, dns.ErrSecret
	}
	k, ok := d.keys[dns.CanonicalName(t.Hdr.Name)]
	if !ok {
		return nil, dns.ErrSecret
	}
	// A key is bound to one algorithm: a message that names another is
	// unsigned as far as this key is concerned (RFC 8945 section 5.2.1).
	if dns.CanonicalName(t.Algorithm) != k.Algorithm {
		return nil, dns.ErrKeyAlg
	}
	switch k.Algorithm {
	case dns.HmacSHA1:
		return hmac.New(sha1.New, k.Secret), nil
	case dns.HmacSHA256:
		return hmac.New(sha256.New, k.Secret), nil
	case dns.HmacSHA512:
		return hmac.New(sha512.New, k.Secret), nil
	}
	return nil, dns.ErrKeyAlg
}

// Generate implements dns.TsigProvider.
func (p tsigProvider) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	h, err := p.key(t)
	if err != nil {
		return nil, err
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify implements dns.TsigProvider. Truncated MACs (RFC 8945 section
// 5.2.2.1) are not accepted: no ACME client sends them.
func (p tsigProvider) Verify(msg []byte, t *dns.TSIG) error {
	want, err := p.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(got, want) {
		return dns.ErrSig
	}
	return nil
}

// signReply gives the reply to a signed request its TSIG record, as
// RFC 8945 section 5.3 says: signed (by the writer, which holds the
// provider) unless the key or the signature was the problem.
func signReply(m *dns.Msg, t *dns.TSIG, tsigErr error) {
	m.Extra = slicesDeleteTSIG(m.Extra)
	code := tsigErrorCode(tsigErr)
	signed := uint64(time.Now().Unix())
	if code == dns.RcodeBadTime {
		// The client's own time, and ours in Other Data, so it can tell
		// its clock is off (RFC 8945 section 5.2.3).
		signed = t.TimeSigned
	}
	tr := &dns.TSIG{
		Hdr:       dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm: t.Algorithm, Fudge: t.Fudge, TimeSigned: signed, OrigId: m.Id, Error: uint16(code),
	}
	if code == dns.RcodeBadTime {
		tr.OtherData = hex.EncodeToString(uint48(uint64(time.Now().Unix())))
		tr.OtherLen = 6
	}
	m.Extra = append(m.Extra, tr)
}

func uint48(v uint64) []byte {
	return []byte{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func slicesDeleteTSIG(extra []dns.RR) []dns.RR {
	out := extra[:0:0]
	for _, rr := range extra {
		if rr.Header().Rrtype != dns.TypeTSIG {
			out = append(out, rr)
		}
	}
	return out
}

// tsigErrorCode is the TSIG record's error for a verification result.
func tsigErrorCode(err error) int {
	switch {
	case err == nil:
		return dns.RcodeSuccess
	case errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		return dns.RcodeBadKey
	case errors.Is(err, dns.ErrTime):
		return dns.RcodeBadTime
	}
	return dns.RcodeBadSig
}

// dispatch sends an UPDATE to the updater when there is one; everything
// else, UPDATE without one included (NOTIMP), is answered from the
// snapshot. While updates are on, a signed query gets a signed answer
// (certbot signs its SOA look-ups with sign_query), and a query whose
// signature fails gets NOTAUTH, as RFC 8945 section 5.2 requires;
// without updates a signature is ignored, as it always was.
func (s *Server) dispatch(w dns.ResponseWriter, r *dns.Msg, src netip.Addr, tcp bool) (*dns.Msg, string, answered) {
	snap := s.snap.Load()
	d := s.dyn.Load()
	if d == nil || d.updater == nil {
		return snap.answer(r, src, tcp, nil)
	}
	t := r.IsTsig()
	var key string
	var tsigErr error
	if t != nil {
		key = dns.CanonicalName(t.Hdr.Name)
		tsigErr = w.TsigStatus()
	}
	var m *dns.Msg
	var zone string
	var ans answered
	if r.Opcode == dns.OpcodeUpdate {
		if len(r.Question) == 1 {
			if z, ok := snap.zones[strings.ToLower(r.Question[0].Name)]; ok {
				zone = z.origin
			}
		}
		m = d.updater.Update(r, key, tsigErr, src)
	} else {
		m, zone, ans = snap.answer(r, src, tcp, nil)
		if t != nil && tsigErr != nil {
			m.Answer, m.Ns, m.Rcode, m.Authoritative = nil, nil, dns.RcodeNotAuth, false
			m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeOPT })
		}
	}
	if t != nil {
		signReply(m, t, tsigErr)
	}
	return m, zone, ans
}

// writeReply sends m. An unsigned TSIG error (BADKEY, BADSIG) is packed
// here rather than by the writer: miekg/dns's signing step zeroes its Time
// Signed, which clients read as clock skew ("clocks are unsynchronized"
// from nsupdate) on top of the real error. RFC 8945 section 5.3.2 wants
// the time present; only the MAC is left out.
func writeReply(w dns.ResponseWriter, m *dns.Msg) error {
	if t := m.IsTsig(); t != nil && (t.Error == dns.RcodeBadKey || t.Error == dns.RcodeBadSig) {
		b, err := m.Pack()
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return w.WriteMsg(m)
}
