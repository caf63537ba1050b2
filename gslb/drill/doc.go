// Package drill runs disaster-recovery drills: it proves that losing a
// datacenter would be survived. A drill checks that the service's other
// datacenters are healthy, simulates the loss (on a private copy of the
// snapshot in dry-run mode, as a short-lived override on this instance in
// live mode), resolves the service for probe clients through the same
// code as DNS, checks that the datacenters taking the moved clients have
// room for them, and restores. Every step is timed and the report kept.
//
// Live overrides live in memory only, so a daemon killed mid-drill comes
// back with none; dry runs touch nothing real.
package drill
