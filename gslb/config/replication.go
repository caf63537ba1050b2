package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// ReplicationModes lists replication.mode's values.
var ReplicationModes = []string{"off", "active-passive", "active-active"}

// Replication defaults, applied when a key is unset.
const (
	DefaultReplicationNamespace = "gslb:repl:"
	DefaultReplicationMaxLen    = 100000
	DefaultReplicationBatch     = 500
	DefaultPromoteTimeout       = 5 * time.Minute
	DefaultTombstoneTTL         = time.Hour
)

// Replication copies session state between datacenters, each with its own
// Redis (docs/replication.md).
type Replication struct {
	// Mode is off, active-passive or active-active; empty means off.
	Mode string `mapstructure:"mode"`
	// Role is this datacenter's starting role in active-passive: primary
	// or standby. Once a promote has run, the role stored in Redis rules.
	Role string `mapstructure:"role"`
	// Namespace prefixes the change log and replication state keys.
	Namespace string `mapstructure:"namespace"`
	// MaxLen bounds the change log (entries, approximately).
	MaxLen int64 `mapstructure:"max_len"`
	// Batch is the number of log entries read and applied at once.
	Batch int `mapstructure:"batch"`
	// PromoteTimeout bounds a promote's wait when its request gives none.
	PromoteTimeout time.Duration `mapstructure:"promote_timeout"`
	// TombstoneTTL is how long a deleted session's tombstone is kept.
	TombstoneTTL time.Duration     `mapstructure:"tombstone_ttl"`
	Peers        []ReplicationPeer `mapstructure:"peers"`
}

// ReplicationPeer is another datacenter's Redis, read across the WAN.
type ReplicationPeer struct {
	Datacenter   string   `mapstructure:"datacenter"`
	Addrs        []string `mapstructure:"addrs"`
	MasterName   string   `mapstructure:"master_name"`
	Username     string   `mapstructure:"username"`
	PasswordFile string   `mapstructure:"password_file"`
	DB           int      `mapstructure:"db"`
	TLS          RedisTLS `mapstructure:"tls"`

	// Password is read from PasswordFile at load; never logged.
	Password string `mapstructure:"-"`
}

// Enabled reports whether replication is on.
func (r *Replication) Enabled() bool { return r.Mode != "" && r.Mode != "off" }

func (c *Config) validateReplication(v *validator) {
	r := &c.Replication
	if r.Mode == "" {
		r.Mode = "off"
	}
	r.Namespace = cmpDefault(r.Namespace, DefaultReplicationNamespace)
	r.MaxLen = cmpDefault(r.MaxLen, DefaultReplicationMaxLen)
	r.Batch = cmpDefault(r.Batch, DefaultReplicationBatch)
	r.PromoteTimeout = cmpDefault(r.PromoteTimeout, DefaultPromoteTimeout)
	r.TombstoneTTL = cmpDefault(r.TombstoneTTL, DefaultTombstoneTTL)
	if !slices.Contains(ReplicationModes, r.Mode) {
		v.add("replication.mode", "%s", oneOf(r.Mode, ReplicationModes))
		return
	}
	if !r.Enabled() {
		if len(r.Peers) > 0 {
			v.add("replication.peers", "peers are listed but replication.mode is off")
		}
		return
	}
	s := &c.Sessions
	if s.Store != "redis" {
		v.add("replication.mode", "%s needs sessions.store redis: it copies the Redis session store", r.Mode)
	} else if len(s.Redis.Addrs) > 1 && s.Redis.MasterName == "" {
		v.add("replication.mode", "%s needs sessions.redis to be one server or Sentinel, not a Cluster: a write and its change log entry must be one script on one node", r.Mode)
	}
	if c.Instance.Datacenter == "" {
		v.add("instance.datacenter", "is required with replication.mode %s: it names this datacenter to its peers", r.Mode)
	}
	switch {
	case r.Mode == "active-passive" && r.Role != "primary" && r.Role != "standby":
		v.add("replication.role", "%s", oneOf(r.Role, []string{"primary", "standby"}))
	case r.Mode == "active-active" && r.Role != "":
		v.add("replication.role", "%q is for active-passive; in active-active every datacenter writes", r.Role)
	}
	if strings.HasPrefix(r.Namespace, s.Redis.KeyPrefix) || strings.HasPrefix(s.Redis.KeyPrefix, r.Namespace) {
		v.add("replication.namespace", "%q overlaps sessions.redis.key_prefix %q; a resync would take one for the other", r.Namespace, s.Redis.KeyPrefix)
	}
	if r.MaxLen < 1000 {
		v.add("replication.max_len", "expected at least 1000, got %d", r.MaxLen)
	}
	if r.Batch < 1 || r.Batch > 10000 {
		v.add("replication.batch", "%d is outside 1..10000", r.Batch)
	}
	if r.PromoteTimeout < 0 {
		v.add("replication.promote_timeout", "expected a positive duration, got %s", r.PromoteTimeout)
	}
	if r.TombstoneTTL < time.Second {
		v.add("replication.tombstone_ttl", "expected at least 1s, got %s", r.TombstoneTTL)
	}
	if len(r.Peers) == 0 {
		v.add("replication.peers", "expected at least one peer datacenter")
	}
	seen := map[string]int{}
	for i := range r.Peers {
		p := &r.Peers[i]
		path := fmt.Sprintf("replication.peers[%d]", i)
		switch {
		case p.Datacenter == "":
			v.add(path+".datacenter", "is required")
		case !identifier.MatchString(p.Datacenter):
			v.add(path+".datacenter", "%q must be lowercase letters, digits, '-', '_' or '.', starting with a letter or digit", p.Datacenter)
		case p.Datacenter == c.Instance.Datacenter:
			v.add(path+".datacenter", "%q is this instance's own datacenter (instance.datacenter); list only the others", p.Datacenter)
		default:
			if j, dup := seen[p.Datacenter]; dup {
				v.add(path+".datacenter", "%q is already replication.peers[%d]", p.Datacenter, j)
			} else {
				seen[p.Datacenter] = i
			}
		}
		if len(p.Addrs) == 0 {
			v.add(path+".addrs", "expected at least one host:port")
		}
		for j, a := range p.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				v.add(fmt.Sprintf("%s.addrs[%d]", path, j), "%q is not host:port", a)
			}
		}
		if len(p.Addrs) > 1 && p.MasterName == "" {
			v.add(path+".addrs", "several addresses without master_name would be a Cluster, which replication cannot use")
		}
		if p.DB < 0 {
			v.add(path+".db", "%d is negative", p.DB)
		}
		if p.PasswordFile != "" {
			p.PasswordFile = resolvePath(c.File, p.PasswordFile)
			b, err := readSmallFile(p.PasswordFile, 4096)
			if err != nil {
				v.add(path+".password_file", "cannot read %s: %v", p.PasswordFile, err)
			} else {
				p.Password = strings.TrimSpace(string(b))
			}
		}
		validateTLSFiles(v, c.File, path+".tls", &p.TLS.CAFile, &p.TLS.CertFile, &p.TLS.KeyFile)
	}
}

func cmpDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
