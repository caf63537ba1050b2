package gslb

import (
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Protection is what stands between the answering logic and the open
// internet: DNS cookies, response rate limiting and the largest query
// accepted. The zero value answers no cookies and limits nothing.
type Protection struct {
	Cookies bool
	// CookieSecrets are the SipHash keys, current first; none: a random
	// key for this process.
	CookieSecrets [][16]byte
	RRL           *RRLConfig // nil: off
	MaxQuerySize  int        // 0: no bound beyond the protocol's
}

type protection struct {
	cookies  *cookieJar // nil: cookies off
	rrl      *rrl       // nil: rate limiting off
	maxQuery int
}

// SetProtection configures cookies, rate limiting and the query size
// bound. It is meant for start-up, before Listen; a rate limiter's table
// is new each call.
func (s *Server) SetProtection(p Protection) {
	pr := &protection{maxQuery: p.MaxQuerySize}
	if p.Cookies {
		pr.cookies = newCookieJar(p.CookieSecrets)
	}
	if p.RRL != nil {
		pr.rrl = newRRL(*p.RRL, s.metrics)
	}
	s.prot.Store(pr)
}

// protect applies cookies and rate limiting to the reply m to r, in place,
// and says whether to send it. It is the full path's share; the fast path
// answers cookies itself (fastAnswerCookie, the same jar) and runs the
// same limiter on what it answers, declining what would be BADCOOKIE.
//
// udpSize is the most the reply may take over UDP: the cookie it adds
// may push an answer that fitted over it, and it is truncated again.
func (p *protection) protect(r, m *dns.Msg, src netip.Addr, tcp bool, zone string, udpSize int) rrlAction {
	verdict := cookieNone
	var raw []byte
	if p.cookies != nil {
		if c := requestCookie(r); c != nil {
			b, err := hex.DecodeString(c.Cookie)
			if err != nil {
				b = nil // never from the wire: miekg/dns hex-encodes what it read
			}
			var fresh bool
			verdict, fresh = p.cookies.check(b, src)
			if verdict == cookieMalformed {
				// RFC 7873 section 5.2.2: FORMERR, without the answer.
				errorReply(m, dns.RcodeFormatError)
				return rrlSend
			}
			raw = b
			if fresh {
				raw = p.cookies.make(nil, b[:clientCookieLen], src)
			}
			if o := m.IsEdns0(); o != nil {
				o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(raw)})
				if !tcp {
					m.Truncate(udpSize)
				}
			}
		}
	}
	if tcp || p.rrl == nil || verdict == cookieValid {
		return rrlSend
	}
	var qtype uint16
	var name []byte
	if len(r.Question) == 1 {
		qtype = r.Question[0].Qtype
		name = []byte(strings.ToLower(r.Question[0].Name))
	}
	act := p.rrl.check(src, m.Rcode, qtype, name, zone)
	if act != rrlSlip {
		return act
	}
	if raw != nil {
		// A client that speaks cookies is told BADCOOKIE with a fresh
		// server cookie instead: it retries with it and, its address now
		// proved, is no longer limited (RFC 7873 section 5.2.3).
		errorReply(m, dns.RcodeBadCookie)
		return rrlSlip
	}
	m.Truncated = true
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	return rrlSlip
}

// errorReply strips m to an error: no records but the OPT (and a TSIG
// the writer signs).
func errorReply(m *dns.Msg, rcode int) {
	m.Rcode = rcode
	m.Authoritative = false
	m.Answer, m.Ns = nil, nil
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if t := rr.Header().Rrtype; t == dns.TypeOPT || t == dns.TypeTSIG {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
}

func requestCookie(r *dns.Msg) *dns.EDNS0_COOKIE {
	o := r.IsEdns0()
	if o == nil {
		return nil
	}
	for _, opt := range o.Option {
		if c, ok := opt.(*dns.EDNS0_COOKIE); ok {
			return c
		}
	}
	return nil
}
