// Package geodb builds GeoIP2-City-compatible MaxMind DB (.mmdb) files from
// a small CSV, so the demo, the tests and operators trying gslbd have a
// City database without a MaxMind account or a download: the same readers
// (geoip2-golang) that open GeoLite2-City open what this package writes.
//
// It owns the CSV format (see Build) and the shape of the records it
// writes, a subset of MaxMind's City record: city.names.en, continent.code,
// continent.names.en, country.iso_code, location.latitude,
// location.longitude, location.accuracy_radius and subdivisions[0].iso_code.
//
// Output is deterministic (sorted input, a fixed build epoch), so a
// database committed beside its CSV can be checked against it byte for
// byte.
//
// This package imports mmdbwriter, which builds the whole search tree in
// memory. It is a build-time and test-time tool only: it is never on the
// DNS path, and the daemon reads databases with a reader, never this.
package geodb
