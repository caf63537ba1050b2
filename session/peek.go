package session

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// peekTimeout bounds an explain's look-up: explain runs off the query
// path, so it may wait for the store, but not indefinitely.
const peekTimeout = time.Second

// Peek looks a client's session up without creating, refreshing or
// caching anything: explain asks it, and asking why must not change the
// answer (nor let an unauthenticated GET pin clients). found is false when
// there is no fresh session; ok is false when the store could not say.
func (a *Affinity) Peek(service string, client netip.Prefix) (dc, displacedFrom string, found, ok bool) {
	key := Key{Service: service, Client: client}
	now := a.o.Now()
	if e, hit := a.cache.get(key); hit && a.fresh(&e.s, now) {
		return e.s.Datacenter, e.s.DisplacedFrom, true, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), peekTimeout)
	defer cancel()
	s, err := a.o.Store.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", "", false, true
	case err != nil:
		return "", "", false, false
	case !a.fresh(&s, now):
		return "", "", false, true
	}
	return s.Datacenter, s.DisplacedFrom, true, true
}
