package gslb

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"time"
)

// DNS cookies (RFC 7873) with the interoperable server cookie of RFC
// 9018: version 1, three reserved bytes, a 32-bit timestamp and a
// SipHash-2-4 of client cookie | version | reserved | timestamp | client
// address, keyed by the server secret. Every instance of an anycast set
// configured with the same secret makes and accepts the same cookies,
// whichever implementation it runs.

const (
	clientCookieLen = 8
	serverCookieLen = 16 // the RFC 9018 layout; other lengths never verify
	// cookieMaxAge and cookieMaxSkew are RFC 9018 section 4.3's bounds on
	// a server cookie's timestamp; cookieRefresh is when a valid one is
	// replaced by a fresh one rather than echoed.
	cookieMaxAge  = 3600
	cookieMaxSkew = 300
	cookieRefresh = 1800
)

// cookieVerdict classifies a query's COOKIE option.
type cookieVerdict uint8

const (
	cookieNone       cookieVerdict = iota // no option
	cookieMalformed                       // a length RFC 7873 section 5.2.2 rejects: FORMERR
	cookieClientOnly                      // a client cookie alone: learn a server cookie
	cookieInvalid                         // a server cookie that does not verify, or is stale
	cookieValid                           // a server cookie we made for this client, in date
)

// cookieJar makes and checks server cookies. keys[0] makes them; every
// key checks them, so a fleet can roll its secret over without turning
// every client's cookie invalid at once.
type cookieJar struct {
	keys [][16]byte
	now  func() uint32
}

// newCookieJar uses the configured secrets, or a random one for this
// process when none is configured.
func newCookieJar(secrets [][16]byte) *cookieJar {
	j := &cookieJar{keys: secrets, now: func() uint32 { return uint32(time.Now().Unix()) }}
	if len(j.keys) == 0 {
		var k [16]byte
		_, _ = rand.Read(k[:]) // crypto/rand does not fail on Linux
		j.keys = [][16]byte{k}
	}
	return j
}

// check classifies opt, the COOKIE option's data, sent from client. fresh
// says whether the reply needs a newly made server cookie rather than an
// echo of the one sent.
func (j *cookieJar) check(opt []byte, client netip.Addr) (v cookieVerdict, fresh bool) {
	switch {
	case len(opt) == clientCookieLen:
		return cookieClientOnly, true
	case len(opt) < clientCookieLen+8 || len(opt) > clientCookieLen+32:
		return cookieMalformed, false
	case len(opt) != clientCookieLen+serverCookieLen || opt[8] != 1:
		return cookieInvalid, true
	}
	now := j.now()
	ts := binary.BigEndian.Uint32(opt[12:])
	// Serial-number arithmetic (RFC 1982) on the timestamp, as RFC 9018
	// asks, so the 2106 wrap-around is no cliff.
	age := int32(now - ts)
	if age > cookieMaxAge || age < -cookieMaxSkew {
		return cookieInvalid, true
	}
	for i, k := range j.keys {
		if cookieHash(&k, opt[:16], client) == binary.LittleEndian.Uint64(opt[16:]) {
			return cookieValid, i > 0 || age > cookieRefresh
		}
	}
	return cookieInvalid, true
}

// make appends the COOKIE option's data for a reply: the client cookie
// and a server cookie made now.
func (j *cookieJar) make(dst []byte, clientCookie []byte, client netip.Addr) []byte {
	var in [16]byte
	copy(in[:8], clientCookie)
	in[8] = 1
	binary.BigEndian.PutUint32(in[12:], j.now())
	h := cookieHash(&j.keys[0], in[:], client)
	dst = append(dst, in[:]...)
	return binary.LittleEndian.AppendUint64(dst, h)
}

// cookieHash is SipHash-2-4 over the first 16 bytes of the option
// (client cookie, version, reserved, timestamp) and the client's address
// (4 bytes for IPv4, 16 for IPv6). Its 8 bytes go on the wire little
// endian, as the reference implementation writes them.
func cookieHash(key *[16]byte, head []byte, client netip.Addr) uint64 {
	var msg [32]byte
	n := copy(msg[:], head[:16])
	client = client.Unmap()
	if client.Is4() {
		a := client.As4()
		n += copy(msg[n:], a[:])
	} else {
		a := client.As16()
		n += copy(msg[n:], a[:])
	}
	return sipHash24(key, msg[:n])
}

// sipHash24 is SipHash-2-4 (Aumasson and Bernstein) with a 128-bit key.
func sipHash24(key *[16]byte, m []byte) uint64 {
	k0 := binary.LittleEndian.Uint64(key[:8])
	k1 := binary.LittleEndian.Uint64(key[8:])
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	length := len(m)
	for len(m) >= 8 {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		round()
		v0 ^= w
		m = m[8:]
	}
	var last [8]byte
	copy(last[:], m)
	last[7] = byte(length)
	w := binary.LittleEndian.Uint64(last[:])
	v3 ^= w
	round()
	round()
	v0 ^= w
	v2 ^= 0xff
	for range 4 {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}
