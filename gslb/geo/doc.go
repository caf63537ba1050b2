// Package geo locates DNS clients: it reads GeoIP2/GeoLite2-compatible City
// (and optionally ASN) databases with github.com/oschwald/geoip2-golang,
// caches results per client prefix, and swaps in a replaced database file
// without disturbing queries.
//
// Databases are read into memory rather than memory-mapped: a file
// overwritten in place (not renamed) would otherwise change under a live
// mapping and crash the process. A file that vanishes or does not parse
// leaves the last good database serving.
//
// It imports neither the DNS code nor anything that waits on the network;
// the DNS path calls Locate, which takes only short per-shard cache locks.
package geo
