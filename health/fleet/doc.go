// Package fleet makes several gslbd instances act on one view of health.
// It owns what they share through Redis: each instance's verdict on every
// endpoint (published with an expiry of a few intervals), the quorum that
// turns the fresh verdicts into the effective state an instance answers
// with, operator overrides (drain, force up, automatic, with a reason and
// who set it, applied by every instance), the registration keys that
// catch two instances with one name or one idgen datacenter/worker pair,
// and a local state file that carries overrides and the last fleet view
// across a restart without Redis.
//
// It sits on top of health: it reads the Manager's own verdicts and hands
// back effective states and overrides through the Manager's hooks; the
// datacenter state rolls up from them as it does from probes. When Redis
// is lost it keeps the last fleet view for a grace period, then lets the
// instance's own probes decide again, and says which in its Status.
package fleet
