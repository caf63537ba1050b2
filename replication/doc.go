// Package replication carries session state between datacenters, each of
// which has its own Redis. It owns the replicators (one per peer: read the
// peer's change log from a checkpoint kept in the local Redis, apply it
// here), the resync that takes over when the log was trimmed past a
// checkpoint, the roles of active-passive mode and the promote that moves
// them, and the replication metrics and status.
//
// What is stored where, and the scripts that write, log and apply
// atomically, belong to session/redisstore (Replication, Apply, ReadChanges
// and the rest): this package decides when and from where, never how a
// key is laid out. It imports session/redisstore, idgen and the Prometheus
// client; only cmd/gslbd imports it.
//
// # Guarantees
//
// A change is applied here only if its version (the idgen ID of the write
// that made it) is newer than the stored one, in the same script that
// advances the peer's checkpoint: a replicator killed at any point and
// restarted takes no change twice and misses none. Every datacenter
// applies the same rule, so all end with the same value for a key
// whatever order its changes arrive in (last writer wins). Version
// vectors tell concurrent writes from later ones; those are counted and
// logged, not resolved differently.
//
// Every datacenter must list every other as a peer: changes are applied,
// not logged again, so they travel one hop.
package replication
