// Package session owns client affinity: the session records that keep a
// client prefix on the datacenter it was given, the Store interface with a
// memory store (one instance) and, in session/redisstore, a Redis store
// shared by every instance, and the Affinity that the DNS path consults:
// a bounded local cache first, then at most one store round trip within a
// budget, behind a circuit breaker, with writes queued and batched.
//
// It imports idgen (session IDs) and the Prometheus client. It never
// imports go-redis: only session/redisstore does, and only cmd/gslbd
// imports that, so the DNS packages cannot reach Redis but through the
// small interface gslb declares.
package session
