package config

import (
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FleetQuorums lists fleet.quorum's values.
var FleetQuorums = []string{"majority", "any-up", "all-up", "local"}

// Fleet defaults, applied when a key is unset.
const (
	DefaultFleetKeyPrefix    = "gslb:fleet:"
	DefaultFleetInterval     = time.Second
	DefaultFleetGrace        = 30 * time.Second
	DefaultFleetMaxClockSkew = time.Second
	DefaultFleetProbers      = 3
	// FleetStateFile is the state file's name under instance.state_dir.
	FleetStateFile = "fleet-state.json"
)

// Fleet makes the instances that share sessions.redis act on one view of
// health (docs/fleet.md).
type Fleet struct {
	Enabled bool `mapstructure:"enabled"`
	// Quorum turns the instances' fresh verdicts on an endpoint into its
	// state: majority, any-up, all-up or local.
	Quorum string `mapstructure:"quorum"`
	// MinVerdicts is the fewest fresh verdicts a fleet decision needs;
	// with fewer an endpoint follows this instance's probes.
	MinVerdicts int `mapstructure:"min_verdicts"`
	// Interval is how often verdicts are published and read.
	Interval time.Duration `mapstructure:"interval"`
	// VerdictTTL is how long a published verdict counts.
	VerdictTTL time.Duration `mapstructure:"verdict_ttl"`
	// Grace is how long the last fleet view outlives a lost Redis.
	Grace        time.Duration `mapstructure:"grace"`
	MaxClockSkew time.Duration `mapstructure:"max_clock_skew"`
	KeyPrefix    string        `mapstructure:"key_prefix"`
	// ProbeSharing divides probing among the live instances, so that each
	// endpoint is probed by ProbersPerEndpoint of them.
	ProbeSharing       bool `mapstructure:"probe_sharing"`
	ProbersPerEndpoint int  `mapstructure:"probers_per_endpoint"`
}

func (c *Config) validateFleet(v *validator) {
	f := &c.Fleet
	f.Quorum = cmpDefault(f.Quorum, "majority")
	f.MinVerdicts = cmpDefault(f.MinVerdicts, 1)
	f.Interval = cmpDefault(f.Interval, DefaultFleetInterval)
	f.VerdictTTL = cmpDefault(f.VerdictTTL, 3*f.Interval)
	f.Grace = cmpDefault(f.Grace, DefaultFleetGrace)
	f.MaxClockSkew = cmpDefault(f.MaxClockSkew, min(DefaultFleetMaxClockSkew, f.VerdictTTL/4))
	f.KeyPrefix = cmpDefault(f.KeyPrefix, DefaultFleetKeyPrefix)
	f.ProbersPerEndpoint = cmpDefault(f.ProbersPerEndpoint, DefaultFleetProbers)
	if !slices.Contains(FleetQuorums, f.Quorum) {
		v.add("fleet.quorum", "%s", oneOf(f.Quorum, FleetQuorums))
	}
	if f.MinVerdicts < 1 {
		v.add("fleet.min_verdicts", "expected at least 1, got %d", f.MinVerdicts)
	}
	if f.Interval < 10*time.Millisecond {
		v.add("fleet.interval", "expected at least 10ms, got %s", f.Interval)
	}
	if f.VerdictTTL < 2*f.Interval {
		v.add("fleet.verdict_ttl", "%s is less than two fleet.interval (%s): one late round would make every verdict stale", f.VerdictTTL, f.Interval)
	}
	if f.Grace < 0 {
		v.add("fleet.grace", "expected a duration of zero or more, got %s", f.Grace)
	}
	if f.MaxClockSkew <= 0 || f.MaxClockSkew >= f.VerdictTTL {
		v.add("fleet.max_clock_skew", "expected a positive duration below fleet.verdict_ttl (%s), got %s", f.VerdictTTL, f.MaxClockSkew)
	}
	if f.ProbersPerEndpoint < 1 {
		v.add("fleet.probers_per_endpoint", "expected at least 1, got %d", f.ProbersPerEndpoint)
	}
	if f.ProbeSharing && f.Quorum != "local" && f.MinVerdicts > f.ProbersPerEndpoint {
		v.add("fleet.min_verdicts", "%d cannot be met: with fleet.probe_sharing only fleet.probers_per_endpoint (%d) instances probe an endpoint", f.MinVerdicts, f.ProbersPerEndpoint)
	}
	if f.ProbeSharing && f.Quorum == "local" {
		v.add("fleet.probe_sharing", "cannot go with fleet.quorum local: an instance would answer from endpoints it does not probe")
	}
	if !f.Enabled {
		return
	}
	if r := c.Sessions.Redis; len(r.Addrs) == 0 {
		v.add("sessions.redis.addrs", "expected at least one host:port: fleet.enabled shares health through this Redis")
	} else if len(r.Addrs) > 1 && r.MasterName == "" {
		v.add("fleet.enabled", "needs sessions.redis to be one server or Sentinel, not a Cluster: a round writes several keys in one transaction")
	}
	for _, o := range []struct{ key, prefix string }{
		{"sessions.redis.key_prefix", c.Sessions.Redis.KeyPrefix}, {"replication.namespace", c.Replication.Namespace},
	} {
		if o.prefix != "" && (strings.HasPrefix(f.KeyPrefix, o.prefix) || strings.HasPrefix(o.prefix, f.KeyPrefix)) {
			v.add("fleet.key_prefix", "%q overlaps %s %q", f.KeyPrefix, o.key, o.prefix)
		}
	}
}

// FleetStatePath is the fleet's state file, or "" without
// instance.state_dir.
func (c *Config) FleetStatePath() string {
	if c.Instance.StateDir == "" {
		return ""
	}
	return filepath.Join(c.Instance.StateDir, FleetStateFile)
}
