// Package health owns probing: the http, https, tcp and dns probers, the
// scheduler that runs them on their intervals with jitter and a global
// bound on probes in flight, and each endpoint's state (rise/fall
// thresholds, flap damping, round-trip EWMA, jitter, loss and link
// quality). It rolls endpoints up into datacenter state, applies
// operator overrides, and publishes an immutable View after every change.
// A layer above it (health/fleet) may read its verdicts, replace them
// with a fleet's and limit which endpoints it probes (external.go).
//
// It imports idgen (events carry Snowflake IDs), the Prometheus client and
// the probers' protocol libraries; never gslb. The DNS side never waits on
// it: the daemon turns each View into a new gslb snapshot. Events also go
// to operators' webhooks, from a bounded queue that never blocks a probe.
package health
