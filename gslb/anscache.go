package gslb

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync/atomic"
)

// targetFileEpoch counts the networks_file tables swapped in. A table
// changes what a service answers without a new snapshot, so the answer
// caches start over when it moves; so they do when a GeoIP database is
// reloaded (geo.Locator.Version), which needs no new snapshot either.
var targetFileEpoch atomic.Uint64

// Bounds on what the answer cache keeps: a query longer than
// cacheQueryMax (padding, large options) or an answer longer than
// cacheReplyMax is answered by the fast path every time.
const (
	cacheQueryMax = 256
	cacheReplyMax = 512
)

// answerCache is one UDP reader's memory of the answers the fast path
// wrote: the same query bytes (all but the ID) from the same client
// address, under the same snapshot and networks files, get the same
// answer, because everything an answer depends on is in those: the
// name, type, flags and EDNS options (ECS among them) are in the bytes,
// the client's location and prefix follow from its address, and health,
// load and configuration are in the snapshot. Replaying it skips
// parsing, locating and scoring. It is used by one goroutine only, so it
// needs no lock, and it is two-way set-associative: two queries that
// hash to the same set both stay, a third evicts the one used less
// recently.
//
// What it never holds: queries carrying a COOKIE option (the reply's
// server cookie depends on the time), answers that depended on a session
// (sessions move without a new snapshot), answers the fast path declines
// (DNSSEC OK and the rest go to the full path every time), and anything
// past the bounds above. Rate limiting is applied
// after it, to every answer, replayed or not.
//
// An answer is kept only when its query misses twice with at most one
// other miss in its set between: a one-off query (a client network
// seen once, a random name) costs a look-up in a small array and no copy
// into the large table, whose entries are rarely in the processor's
// caches.
type answerCache struct {
	seed    maphash.Seed
	entries []cachedAnswer // two per set
	// sets holds each set's entry hashes and the hashes of the last
	// queries that missed there, in one cache line: a miss reads no
	// entry.
	sets []cacheSet
	mask uint64 // sets - 1
	// epoch tags entries; a new snapshot or networks file bumps it, and
	// every older entry stops matching.
	epoch  uint64
	snap   *Snapshot
	files  uint64
	geo    uint64 // the snapshot's locator's version
	hits   uint64 // since the last flush to the metrics
	misses uint64
}

type cacheSet struct {
	entry [2]uint64
	seen  [2]uint64 // the last two queries that missed, in turn
	next  uint8     // the seen slot the next miss takes
	mru   uint8     // the way hit or filled last
}

// cachedAnswer is one remembered answer. The fields holding pointers
// come first so that the collector scans only the head of each entry.
type cachedAnswer struct {
	res     fastResult // name is nil here; it is set from name on a hit
	epoch   uint64
	hash    uint64
	src     [16]byte
	qlen    uint16
	rlen    uint16
	nameLen uint16
	query   [cacheQueryMax]byte // the query from its third byte on
	reply   [cacheReplyMax]byte
	name    [maxNameWire + 2]byte
}

func newAnswerCache() *answerCache {
	return &answerCache{seed: maphash.MakeSeed()}
}

// sync readies the cache for a batch answered from s: a different
// snapshot, networks file or GeoIP database empties it (by epoch), and a
// different dns.answer_cache_size reallocates it, which happens on a
// reload only.
func (c *answerCache) sync(s *Snapshot) {
	files, geo := targetFileEpoch.Load(), s.locator.Version()
	if s == c.snap && files == c.files && geo == c.geo {
		return
	}
	if size := cacheSlots(s.answerCacheSize); size != len(c.entries) {
		c.entries, c.sets = nil, nil
		if size > 0 {
			c.entries, c.sets = make([]cachedAnswer, size), make([]cacheSet, size/2)
		}
		c.mask = uint64(size/2) - 1
	}
	c.snap, c.files, c.geo = s, files, geo
	c.epoch++
}

// cacheSlots rounds a configured size up to a power of two, two at
// least (one set).
func cacheSlots(n int) int {
	if n <= 0 {
		return 0
	}
	return max(2, 1<<bits.Len(uint(n-1)))
}

// answer writes the answer to pkt from src into out, from the cache when
// it holds one and else from the fast path, whose answer it remembers;
// the results are fastAnswerCookie's. The result's name is valid until
// the next call.
func (c *answerCache) answer(s *Snapshot, pkt []byte, src netip.Addr, out []byte, sc *fastScratch, jar *cookieJar) (int, fastResult, bool) {
	if len(c.entries) == 0 || len(pkt) < 12 || len(pkt)-2 > cacheQueryMax {
		return s.fastAnswerCookie(pkt, src, out, sc, jar)
	}
	key := pkt[2:]
	addr := src.As16()
	h := maphash.Bytes(c.seed, key) ^ mix(binary.LittleEndian.Uint64(addr[:8])^bits.RotateLeft64(binary.LittleEndian.Uint64(addr[8:]), 32))
	h |= 1 // never 0, an empty way's tag
	set := mix(h) & c.mask
	tags := &c.sets[set]
	for way := range tags.entry {
		if tags.entry[way] != h {
			continue
		}
		e := &c.entries[2*set+uint64(way)]
		if e.epoch == c.epoch && e.hash == h && e.src == addr && int(e.qlen) == len(key) &&
			int(e.rlen) <= len(out) && bytes.Equal(e.query[:e.qlen], key) {
			c.hits++
			tags.mru = uint8(way)
			n := copy(out, e.reply[:e.rlen])
			out[0], out[1] = pkt[0], pkt[1]
			res := e.res
			res.name = e.name[:e.nameLen]
			return n, res, true
		}
	}
	c.misses++
	n, res, ok := s.fastAnswerCookie(pkt, src, out, sc, jar)
	if !ok || res.cookie || res.volatile || n > cacheReplyMax || len(res.name) > maxNameWire+2 {
		return n, res, ok
	}
	if tags.seen[0] != h && tags.seen[1] != h {
		tags.seen[tags.next] = h
		tags.next ^= 1
		return n, res, ok
	}
	// The way that holds this query's stale copy, else the one not used
	// last.
	way := 1 - tags.mru
	if tags.entry[0] == h {
		way = 0
	} else if tags.entry[1] == h {
		way = 1
	}
	tags.entry[way], tags.mru = h, way
	e := &c.entries[2*set+uint64(way)]
	e.epoch, e.hash, e.src = c.epoch, h, addr
	e.qlen = uint16(copy(e.query[:], key))
	e.rlen = uint16(copy(e.reply[:], out[:n]))
	e.nameLen = uint16(copy(e.name[:], res.name))
	e.res = res
	e.res.name = nil
	return n, res, ok
}

// flush adds the look-ups counted since the last flush to the metrics.
func (c *answerCache) flush(m *Metrics) {
	if c.hits > 0 {
		m.answerCacheHits.Add(float64(c.hits))
	}
	if c.misses > 0 {
		m.answerCacheMisses.Add(float64(c.misses))
	}
	c.hits, c.misses = 0, 0
}
