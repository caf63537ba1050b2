package session

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/gslbd/gslbd/idgen"
)

// Key names a session: one client prefix (the ECS or source address's
// /24 or /56) for one service. DNS sees resolvers, not users, so this is
// as fine-grained as affinity can honestly be.
type Key struct {
	Service string       // the service's name, fully qualified
	Client  netip.Prefix // masked
}

// String is the key's stable text form, as stores use it.
func (k Key) String() string { return k.Service + "|" + k.Client.String() }

// Session is one client's affinity record, with the fields the origin's
// distributed session manager kept, plus where the client was displaced
// from so that it can go back.
type Session struct {
	ID            idgen.ID          `json:"id"`
	Service       string            `json:"service"`
	Client        netip.Prefix      `json:"client"`
	Datacenter    string            `json:"datacenter"`
	DisplacedFrom string            `json:"displaced_from,omitempty"`
	Created       time.Time         `json:"created"`
	LastAccessed  time.Time         `json:"last_accessed"`
	Data          map[string]string `json:"data,omitempty"`
	// Version is the ID of the write that last changed the datacenter or
	// data, as a replicated store reports it (0: unknown, or a store that
	// keeps none). A writer hands it back with Put, so that a write based
	// on a version another datacenter has since replaced does not undo it.
	Version idgen.ID `json:"version,omitempty"`
}

// Key returns the session's key.
func (s *Session) Key() Key { return Key{Service: s.Service, Client: s.Client} }

// ErrNotFound is returned by Get for a key without a session.
var ErrNotFound = errors.New("session: not found")

// Store keeps sessions. Implementations must be safe for concurrent use
// and must honour ctx's deadline on every call: the DNS path calls
// GetOrCreate with a budget of a few milliseconds.
type Store interface {
	// GetOrCreate returns the session stored under s.Key(), or stores s
	// (with ttl) and returns it when there is none. It is atomic: two
	// instances creating the same key at once get the same session back,
	// and created is true for exactly one of them.
	GetOrCreate(ctx context.Context, s Session, ttl time.Duration) (got Session, created bool, err error)
	// Get returns the session under key, or ErrNotFound.
	Get(ctx context.Context, key Key) (Session, error)
	// Put writes sessions, replacing what is stored, each with ttl; a
	// store should send them in one round trip.
	Put(ctx context.Context, sessions []Session, ttl time.Duration) error
	// Delete removes the session under key; deleting nothing is no error.
	Delete(ctx context.Context, key Key) error
}

// ErrCorrupt wraps a stored value that does not decode as a session. The
// caller treats the key as empty and overwrites it.
var ErrCorrupt = errors.New("session: stored value is not a session")
