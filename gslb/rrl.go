package gslb

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Response rate limiting in the manner of BIND's and Knot's RRL. Each
// response is accounted to a bucket named by the client's prefix (/24,
// /56), its kind and, for answers, the name and type asked for; NXDOMAIN
// is accounted per zone, so random subdomains share one bucket, and
// errors (REFUSED, FORMERR, SERVFAIL) per prefix alone. A bucket earns
// its kind's rate in credit every second, up to one second's worth, and
// each response spends one; while the balance is negative responses are
// dropped, and the balance may fall to -rate×window, so a flood must stop
// for up to a window before its bucket answers again (BIND's accounting).
// Of the dropped responses every slip-th is sent instead as an empty
// truncated one, so a real client behind a spoofed flood retries over
// TCP, which is never limited. A client presenting a valid server cookie
// has proved its address and is never limited either.
//
// The table has a fixed number of slots, four to a set: a bucket not in
// its set replaces the set's least recently used one, so memory does not
// grow with the number of clients, and a forgotten bucket starts full,
// the lenient side.

// rrlKind is the kind of response a bucket counts.
type rrlKind uint8

const (
	rrlAnswer rrlKind = iota // NOERROR, with or without data
	rrlNXDomain
	rrlError
)

// rrlAction is the limiter's verdict on one response.
type rrlAction uint8

const (
	rrlSend rrlAction = iota
	rrlDrop
	rrlSlip // send an empty, truncated response instead
)

// RRLConfig is the limiter's configuration (dns.rrl).
type RRLConfig struct {
	ResponsesPerSecond, NXDomainsPerSecond, ErrorsPerSecond int
	Slip                                                    int
	Window                                                  time.Duration
	IPv4PrefixLength, IPv6PrefixLength                      int
	TableSize                                               int
}

// rrlBucket is 24 bytes; docs/operations.md quotes the table's size.
type rrlBucket struct {
	key     uint64 // 0: empty
	second  int64  // the second the balance was last credited
	balance int32
	drops   uint32
}

const rrlWays = 4

// rrlStripes bounds lock contention between the fast-path readers and
// the full path's workers; sets map to stripes, so one lock guards a set.
const rrlStripes = 256

type rrl struct {
	cfg     RRLConfig
	rates   [3]int32
	floor   [3]int32
	seed    maphash.Seed
	table   []rrlBucket
	sets    uint64
	locks   [rrlStripes]sync.Mutex
	now     func() int64 // seconds
	v4, v6  int
	metrics *Metrics
}

func newRRL(cfg RRLConfig, m *Metrics) *rrl {
	sets := 1
	for sets*rrlWays < cfg.TableSize {
		sets <<= 1
	}
	l := &rrl{cfg: cfg, seed: maphash.MakeSeed(), table: make([]rrlBucket, sets*rrlWays), sets: uint64(sets),
		now: func() int64 { return time.Now().Unix() }, v4: cfg.IPv4PrefixLength, v6: cfg.IPv6PrefixLength, metrics: m}
	window := int32(max(1, cfg.Window/time.Second))
	for k, r := range [3]int{cfg.ResponsesPerSecond, cfg.NXDomainsPerSecond, cfg.ErrorsPerSecond} {
		l.rates[k] = int32(r)
		l.floor[k] = -int32(r) * window
	}
	return l
}

// kindOf is the bucket kind of a response with rcode.
func kindOf(rcode int) rrlKind {
	switch rcode {
	case dns.RcodeSuccess:
		return rrlAnswer
	case dns.RcodeNameError:
		return rrlNXDomain
	}
	return rrlError
}

// check accounts one UDP response to client and says what to do with
// it. name is the lowercase query name, zone the zone it fell in; neither
// is kept. It does not allocate.
func (l *rrl) check(client netip.Addr, rcode int, qtype uint16, name []byte, zone string) rrlAction {
	kind := kindOf(rcode)
	rate := l.rates[kind]
	if rate == 0 {
		return rrlSend
	}
	client = client.Unmap()
	bits := l.v6
	if client.Is4() {
		bits = l.v4
	}
	p, _ := client.Prefix(bits)
	var buf [16 + 1 + 2 + maxNameWire + 2]byte
	a := p.Addr().As16()
	n := copy(buf[:], a[:])
	buf[n] = byte(kind)
	n++
	switch kind {
	case rrlAnswer:
		buf[n], buf[n+1] = byte(qtype>>8), byte(qtype)
		n += 2
		n += copy(buf[n:], name)
	case rrlNXDomain:
		n += copy(buf[n:], zone)
	}
	key := maphash.Bytes(l.seed, buf[:n]) | 1 // never 0, the empty slot
	set := key & (l.sets - 1)
	mu := &l.locks[set%rrlStripes]
	now := l.now()
	mu.Lock()
	ways := l.table[set*rrlWays : set*rrlWays+rrlWays]
	b := &ways[0]
	for i := range ways {
		if ways[i].key == key {
			b = &ways[i]
			break
		}
		if ways[i].second < b.second {
			b = &ways[i]
		}
	}
	if b.key != key {
		*b = rrlBucket{key: key, balance: rate, second: now}
	}
	if elapsed := now - b.second; elapsed > 0 {
		b.balance = int32(min(int64(rate), int64(b.balance)+elapsed*int64(rate)))
		b.second = now
	}
	if b.balance > l.floor[kind] {
		b.balance--
	}
	if b.balance >= 0 {
		mu.Unlock()
		return rrlSend
	}
	b.drops++
	slip := l.cfg.Slip > 0 && b.drops%uint32(l.cfg.Slip) == 0
	mu.Unlock()
	if slip {
		l.metrics.rrlSlipped.Inc()
		return rrlSlip
	}
	l.metrics.rrlDropped.Inc()
	return rrlDrop
}
