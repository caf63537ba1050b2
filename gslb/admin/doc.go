// Package admin is gslbd's HTTP listener: Prometheus metrics, liveness and
// readiness, and the write API (reload now; drains, drills and sessions as
// they arrive), every write behind one bearer-token guard.
//
// It knows the daemon only through the small interfaces it declares, so
// the handlers can be tested without a DNS server behind them.
package admin
