// Package acme owns ACME DNS-01 challenges for the served zones: it
// parses and applies RFC 2136 UPDATE messages, limited to TXT records at
// _acme-challenge. names, and keeps the resulting records in a Store (a
// file in the instance's state directory here; Redis, shared by the
// fleet, in cmd/gslbd, because packages under gslb must not import
// go-redis). It declares what it serves as plain records; gslb's
// Snapshot.WithACME puts them into the zones, so the normal answer path
// serves them.
//
// Authentication is not done here: the gslb server verifies TSIG and
// tells the Handler which key signed a message and whether the signature
// held. The Handler decides everything else: the zone, the key's right
// to it, prerequisites, and what may change. A message is applied whole
// or not at all.
package acme
