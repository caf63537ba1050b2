package config

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Cookies configures DNS cookies (RFC 7873) with the interoperable server
// cookie of RFC 9018.
type Cookies struct {
	Enabled bool `mapstructure:"enabled"`
	// SecretFile holds the 16-byte SipHash key as 32 hex digits, and
	// optionally on a second line the previous key, still accepted while
	// a fleet rolls over. Empty: a random key per process.
	SecretFile string `mapstructure:"secret_file"`

	// Secrets are read from SecretFile at load time: the current key
	// first, then the previous one when given.
	Secrets [][16]byte `mapstructure:"-"`
}

// RRL configures response rate limiting in the manner of BIND and Knot.
type RRL struct {
	Enabled            bool          `mapstructure:"enabled"`
	ResponsesPerSecond int           `mapstructure:"responses_per_second"`
	NXDomainsPerSecond int           `mapstructure:"nxdomains_per_second"`
	ErrorsPerSecond    int           `mapstructure:"errors_per_second"`
	Slip               int           `mapstructure:"slip"`
	Window             time.Duration `mapstructure:"window"`
	IPv4PrefixLength   int           `mapstructure:"ipv4_prefix_length"`
	IPv6PrefixLength   int           `mapstructure:"ipv6_prefix_length"`
	TableSize          int           `mapstructure:"table_size"`
}

// Rate-limiting and cookie defaults; docs/configuration.md lists the same.
const (
	DefaultRRLResponses = 20
	DefaultRRLSlip      = 2
	DefaultRRLWindow    = 15 * time.Second
	DefaultRRLTable     = 65536
	DefaultMaxQuerySize = 4096
	// DefaultAnswerCacheSize is per UDP socket: about 5 MB of memory.
	DefaultAnswerCacheSize = 4096
	// maxAnswerCacheSize bounds it at about 80 MB per socket.
	maxAnswerCacheSize = 1 << 16
)

func defaultRRL() RRL {
	return RRL{
		ResponsesPerSecond: DefaultRRLResponses, NXDomainsPerSecond: DefaultRRLResponses, ErrorsPerSecond: DefaultRRLResponses,
		Slip: DefaultRRLSlip, Window: DefaultRRLWindow, IPv4PrefixLength: 24, IPv6PrefixLength: 56, TableSize: DefaultRRLTable,
	}
}

func (c *Config) validateLimits(v *validator) {
	r := &c.DNS.RRL
	for _, k := range []struct {
		key string
		n   int
	}{{"responses_per_second", r.ResponsesPerSecond}, {"nxdomains_per_second", r.NXDomainsPerSecond}, {"errors_per_second", r.ErrorsPerSecond}} {
		if k.n < 0 || k.n > 1<<20 {
			v.add("dns.rrl."+k.key, "%d is outside 0..1048576 (0: no limit)", k.n)
		}
	}
	if r.Slip < 0 || r.Slip > 10 {
		v.add("dns.rrl.slip", "%d is outside 0..10", r.Slip)
	}
	if r.Window < time.Second || r.Window > time.Hour {
		v.add("dns.rrl.window", "%s is outside 1s..1h", r.Window)
	}
	if r.IPv4PrefixLength < 1 || r.IPv4PrefixLength > 32 {
		v.add("dns.rrl.ipv4_prefix_length", "%d is outside 1..32", r.IPv4PrefixLength)
	}
	if r.IPv6PrefixLength < 1 || r.IPv6PrefixLength > 128 {
		v.add("dns.rrl.ipv6_prefix_length", "%d is outside 1..128", r.IPv6PrefixLength)
	}
	if r.TableSize < 64 || r.TableSize > 1<<24 {
		v.add("dns.rrl.table_size", "%d is outside 64..16777216", r.TableSize)
	}
	if c.DNS.MaxQuerySize < 512 || c.DNS.MaxQuerySize > 65535 {
		v.add("dns.max_query_size", "%d is outside 512..65535", c.DNS.MaxQuerySize)
	}
	if c.DNS.AnswerCacheSize < 0 || c.DNS.AnswerCacheSize > maxAnswerCacheSize {
		v.add("dns.answer_cache_size", "%d is outside 0..%d", c.DNS.AnswerCacheSize, maxAnswerCacheSize)
	}
	ck := &c.DNS.Cookies
	ck.Secrets = nil
	if ck.SecretFile == "" {
		return
	}
	ck.SecretFile = resolvePath(c.File, ck.SecretFile)
	b, err := readSmallFile(ck.SecretFile, 4096)
	if err != nil {
		v.add("dns.cookies.secret_file", "cannot read %s: %v", ck.SecretFile, err)
		return
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 || len(lines) > 2 {
		v.add("dns.cookies.secret_file", "%s holds %d secrets; expected the current one and at most one previous, 32 hex digits each", ck.SecretFile, len(lines))
		return
	}
	for i, l := range lines {
		k, err := parseCookieSecret(l)
		if err != nil {
			v.add("dns.cookies.secret_file", "%s line %d: %v", ck.SecretFile, i+1, err)
			return
		}
		ck.Secrets = append(ck.Secrets, k)
	}
}

func parseCookieSecret(s string) ([16]byte, error) {
	var k [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return k, fmt.Errorf("expected 32 hex digits (a 128-bit SipHash key), got %d characters", len(s))
	}
	copy(k[:], b)
	return k, nil
}
