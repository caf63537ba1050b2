// Package redisstore keeps gslbd's sessions in Redis, so that every
// instance of a deployment gives a client the same datacenter. It
// implements session.Store on a go-redis UniversalClient: one server,
// Sentinel (Options.MasterName) or Cluster (several Options.Addrs).
//
// It owns the Redis side of sessions: the key layout (Options.KeyPrefix
// followed by session.Key.String()), the value encoding (the session's
// JSON), the get-or-create script, and the client's timeouts; and, with
// Options.Replication, the Redis side of replication (replication.go):
// versioned values, the change log written in the same script as each
// write, the apply script that moves a peer's checkpoint with what it
// applies, and the role hash of active-passive. It imports
// session, idgen (through session) and go-redis. Only cmd/gslbd imports it:
// the DNS packages reach sessions through session's interfaces and must
// never link go-redis.
//
// # Timeouts
//
// The DNS path calls GetOrCreate with a deadline of a couple of
// milliseconds, and a stalled Redis must cost a query no more than that.
// So the client has ContextTimeoutEnabled, which makes go-redis use the
// context's deadline for the socket deadlines (without it, go-redis
// ignores the context for socket I/O and waits out ReadTimeout);
// MaxRetries -1, so a failed command is not sent again; one dial attempt
// per connection instead of go-redis's five; short Read, Write and Pool
// timeouts as ceilings for calls without a deadline; and no optional
// handshake commands (CLIENT SETINFO, maintenance notifications), because
// a connection dialled on the DNS path does its handshake inside the
// query's budget.
//
// New does not connect: gslbd must start while Redis is down, and the
// first calls then fail fast. After PoolSize failed dials go-redis stops
// dialling on the caller's path altogether and returns the last dial error
// at once, while a background goroutine redials about once a second; so
// calls recover up to a second after Redis does.
//
// A call that runs out of time returns an error that matches
// context.DeadlineExceeded with errors.Is, whether go-redis noticed the
// context or the socket deadline first. It may still take effect: the
// command was sent, and a stalled Redis runs it when it recovers, so a
// GetOrCreate that timed out may have created the session. go-redis
// closes the connection the reply was due on, so a late reply is never
// read as the answer to a later command.
package redisstore
