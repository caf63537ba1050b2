package session

import (
	"sync"
	"time"
)

const cacheShards = 64

// cache is the bounded local copy of sessions the DNS path reads first.
type cache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[Key]cached
}

type cached struct {
	s       Session
	written time.Time
}

func newCache(size int) *cache {
	c := &cache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = map[Key]cached{}
	}
	return c
}

func (c *cache) shard(k Key) *cacheShard {
	a := k.Client.Addr().As16()
	h := uint32(2166136261)
	for _, b := range a {
		h = (h ^ uint32(b)) * 16777619
	}
	for i := 0; i < len(k.Service); i++ {
		h = (h ^ uint32(k.Service[i])) * 16777619
	}
	return &c.shards[h%cacheShards]
}

func (c *cache) get(k Key) (cached, bool) {
	s := c.shard(k)
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	return e, ok
}

func (c *cache) put(k Key, e cached) {
	s := c.shard(k)
	s.mu.Lock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	s.m[k] = e
	s.mu.Unlock()
}

func (c *cache) del(k Key) {
	s := c.shard(k)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}
