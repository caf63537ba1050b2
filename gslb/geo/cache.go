package geo

import (
	"net/netip"
	"sync"
)

const cacheShards = 64

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
	m  map[netip.Prefix]Location
}

func newCache(size int) *cache {
	c := &cache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[netip.Prefix]Location)
	}
	return c
}

func (c *cache) shard(p netip.Prefix) *shard {
	a := p.Addr().As16()
	h := uint32(2166136261) // FNV-1a: cheap, and spreads /24s that differ in one byte
	for _, b := range a {
		h = (h ^ uint32(b)) * 16777619
	}
	return &c.shards[h%cacheShards]
}

func (c *cache) get(p netip.Prefix) (Location, bool) {
	s := c.shard(p)
	s.mu.Lock()
	loc, ok := s.m[p]
	s.mu.Unlock()
	return loc, ok
}

func (c *cache) put(p netip.Prefix, loc Location) {
	s := c.shard(p)
	s.mu.Lock()
	if _, ok := s.m[p]; !ok && len(s.m) >= c.perShard {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[p] = loc
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
