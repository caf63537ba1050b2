package geo

import (
	"encoding/binary"
	"net/netip"
	"sync"
)

const (
	cacheShardBits = 6
	cacheShards    = 1 << cacheShardBits
)

// cache is a bounded map from client prefix to location, split into
// shards so that concurrent queries rarely meet on one lock. When a shard
// is full an arbitrary entry makes room: the working set of a GSLB is the
// resolvers that ask it, which fits, and a scan-resistant policy is not
// worth a lock held longer.
type cache struct {
	perShard int
	shards   [cacheShards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[uint64]Location // by cacheKey
}

func newCache(size int) *cache {
	c := &cache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]Location)
	}
	return c
}

// cacheKey packs a client prefix into one word: a map keyed by it hashes
// and compares 8 bytes, where a netip.Prefix key costs a hash of the
// whole struct and a field-by-field compare, the largest part of a
// look-up in a cache of many networks. IPv4 keys have the top bit set;
// an IPv6 /56 fits below it. Only KeyPrefix's prefixes have a key.
func cacheKey(p netip.Prefix) (uint64, bool) {
	a := p.Addr()
	switch {
	case a.Is4() && p.Bits() == KeyBits4:
		b := a.As4()
		return 1<<63 | uint64(binary.BigEndian.Uint32(b[:]))>>(32-KeyBits4), true
	case a.Is6() && p.Bits() == KeyBits6:
		b := a.As16()
		return binary.BigEndian.Uint64(b[:8]) >> (64 - KeyBits6), true
	}
	return 0, false
}

func (c *cache) shard(k uint64) *shard {
	// Fibonacci hashing: /24s that differ in one byte land apart.
	return &c.shards[(k*0x9e3779b97f4a7c15)>>(64-cacheShardBits)]
}

func (c *cache) get(p netip.Prefix) (Location, bool) {
	k, ok := cacheKey(p)
	if !ok {
		return Location{}, false
	}
	s := c.shard(k)
	s.mu.Lock()
	loc, ok := s.m[k]
	s.mu.Unlock()
	return loc, ok
}

func (c *cache) put(p netip.Prefix, loc Location) {
	k, ok := cacheKey(p)
	if !ok {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	s.m[k] = loc
	s.mu.Unlock()
}

// len counts the entries, for tests and the entries gauge.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
