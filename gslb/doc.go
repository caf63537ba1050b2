// Package gslb is the authoritative DNS side of gslbd: it owns the zones,
// the services whose answers are computed from datacenters, the immutable
// Snapshot that every query reads, and the miekg/dns handler that serves
// them over UDP and TCP.
//
// The query path reads one *Snapshot through an atomic pointer and never
// takes a lock a writer holds; configuration reloads (and, later, health
// changes) build a new Snapshot and swap it in. This package declares the
// small interfaces it consumes and imports idgen at most: never go-redis,
// never prober code, so that neither can stall or fail a DNS answer.
package gslb
