// Package idgen issues and decodes the 63-bit Snowflake IDs that gslbd
// stamps on the records it creates, so that IDs from every daemon in a
// deployment are unique without coordination and sort roughly by creation
// time.
//
// The package owns the bit layout, the per-process generator state (last
// issued millisecond and sequence) and the policy for a clock that steps
// backwards. Assigning distinct datacenter and worker numbers to daemons is
// the caller's job: two generators with the same pair and the same clock
// will collide. It imports the standard library only, so any part of the
// daemon can use it without pulling in dependencies.
//
// An ID is a positive int64 laid out from the most significant bit:
//
//	 1 bit   sign, always 0 so IDs stay positive in every language
//	41 bits  milliseconds since the epoch (about 69.7 years)
//	 5 bits  datacenter, 0..31
//	 5 bits  worker, 0..31
//	12 bits  sequence within the millisecond, 0..4095
//
// One generator therefore issues at most 4096 IDs per millisecond; when a
// millisecond's sequence runs out, Next waits for the next millisecond.
//
// IDs serialise as decimal strings in JSON (via encoding.TextMarshaler)
// because JavaScript numbers lose precision above 2^53.
package idgen
