package session

import (
	"context"
	"sync"
	"time"
)

// MemoryStore keeps sessions in this process: affinity for a single
// instance, and the store of tests. Expired sessions are dropped lazily
// and by a sweep bounded to a slice of the map per call.
type MemoryStore struct {
	mu  sync.Mutex
	m   map[Key]memEntry
	now func() time.Time
}

type memEntry struct {
	s       Session
	expires time.Time
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{m: map[Key]memEntry{}, now: time.Now}
}

func (m *MemoryStore) get(key Key, now time.Time) (Session, bool) {
	e, ok := m.m[key]
	if !ok {
		return Session{}, false
	}
	if now.After(e.expires) {
		delete(m.m, key)
		return Session{}, false
	}
	return e.s, true
}

// GetOrCreate implements Store.
func (m *MemoryStore) GetOrCreate(ctx context.Context, s Session, ttl time.Duration) (Session, bool, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, false, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if got, ok := m.get(s.Key(), now); ok {
		return got, false, nil
	}
	m.m[s.Key()] = memEntry{s: s, expires: now.Add(ttl)}
	m.sweep(now)
	return s, true, nil
}

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, key Key) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.get(key, m.now()); ok {
		return s, nil
	}
	return Session{}, ErrNotFound
}

// Put implements Store.
func (m *MemoryStore) Put(ctx context.Context, sessions []Session, ttl time.Duration) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range sessions {
		m.m[s.Key()] = memEntry{s: s, expires: now.Add(ttl)}
	}
	m.sweep(now)
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(ctx context.Context, key Key) error {
	m.mu.Lock()
	delete(m.m, key)
	m.mu.Unlock()
	return nil
}

// sweep drops a few expired entries per write, so memory follows the
// live sessions without a timer goroutine.
func (m *MemoryStore) sweep(now time.Time) {
	n := 0
	for k, e := range m.m {
		if n++; n > 16 {
			return
		}
		if now.After(e.expires) {
			delete(m.m, k)
		}
	}
}

// Len counts stored sessions, expired ones included until swept.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
