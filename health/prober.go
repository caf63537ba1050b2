package health

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Prober makes one attempt against one target, within ctx's deadline.
// Retries and smoothing are the scheduler's and the state machine's job.
type Prober interface {
	Probe(ctx context.Context, target netip.AddrPort) Result
}

// Result is one probe's outcome.
type Result struct {
	OK  bool
	RTT time.Duration
	// Load and LatencyMS are what an HTTP health response reported in its
	// JSON body; NaN when it reported nothing.
	Load      float64
	LatencyMS float64
	Err       error
}

func failed(start time.Time, format string, args ...any) Result {
	return Result{RTT: time.Since(start), Load: math.NaN(), LatencyMS: math.NaN(), Err: fmt.Errorf(format, args...)}
}

func succeeded(start time.Time) Result {
	return Result{OK: true, RTT: time.Since(start), Load: math.NaN(), LatencyMS: math.NaN()}
}
