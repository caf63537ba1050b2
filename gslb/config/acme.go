package config

import (
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ACME lets ACME clients (certbot, lego) prove control of names in the
// served zones with DNS-01: TXT records under _acme-challenge. names, added
// and removed by RFC 2136 UPDATE messages signed with TSIG.
type ACME struct {
	Enabled  bool      `mapstructure:"enabled"`
	TSIGKeys []TSIGKey `mapstructure:"tsig_keys"`
	// MaxTTL bounds the TTL an update may give a record; longer ones are
	// served with MaxTTL.
	MaxTTL uint32 `mapstructure:"max_ttl"`
	// RecordLifetime removes a record this long after it was added, so a
	// challenge its client forgot to delete does not stay forever.
	RecordLifetime    time.Duration `mapstructure:"record_lifetime"`
	MaxRecordsPerName int           `mapstructure:"max_records_per_name"`
	MaxRecords        int           `mapstructure:"max_records"`
}

// TSIGKey is a shared secret an ACME client signs its updates with.
type TSIGKey struct {
	// Name is the key's name as clients send it (canonical: lowercase,
	// fully qualified).
	Name string `mapstructure:"name"`
	// Algorithm is hmac-sha256 (default), hmac-sha512 or hmac-sha1.
	Algorithm  string `mapstructure:"algorithm"`
	Secret     string `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret_file"`
	// Zones the key may update; empty: every zone.
	Zones []string `mapstructure:"zones"`

	// Key is the decoded secret, read from Secret or SecretFile at load
	// time; never logged.
	Key []byte `mapstructure:"-"`
}

// TSIGAlgorithms lists the accepted algorithms; the first is the default.
var TSIGAlgorithms = []string{"hmac-sha256", "hmac-sha512", "hmac-sha1"}

// ACME defaults.
const (
	DefaultACMEMaxTTL            = 300
	DefaultACMERecordLifetime    = 24 * time.Hour
	DefaultACMEMaxRecordsPerName = 10
	DefaultACMEMaxRecords        = 1000
	// minTSIGSecret is 128 bits: shorter secrets can be guessed offline
	// from one signed message.
	minTSIGSecret = 16
)

func defaultACME() ACME {
	return ACME{MaxTTL: DefaultACMEMaxTTL, RecordLifetime: DefaultACMERecordLifetime,
		MaxRecordsPerName: DefaultACMEMaxRecordsPerName, MaxRecords: DefaultACMEMaxRecords}
}

// bindSecret finds the secret in a BIND key file, as tsig-keygen writes it.
var bindSecret = regexp.MustCompile(`secret\s+"([^"]*)"\s*;`)

func (c *Config) validateACME(v *validator) {
	if c.Instance.StateDir != "" {
		c.Instance.StateDir = resolvePath(c.File, c.Instance.StateDir)
		if fi, err := os.Stat(c.Instance.StateDir); err != nil {
			v.add("instance.state_dir", "cannot use %s: %v", c.Instance.StateDir, err)
		} else if !fi.IsDir() {
			v.add("instance.state_dir", "%s is not a directory", c.Instance.StateDir)
		}
	}
	a := &c.ACME
	if a.Enabled && c.Sessions.Store != "redis" && c.Instance.StateDir == "" {
		v.add("acme.enabled", "records must outlive a restart: set instance.state_dir, or sessions.store: redis to share them")
	}
	if a.Enabled && len(a.TSIGKeys) == 0 {
		v.add("acme.tsig_keys", "expected at least one key when acme.enabled is true; unsigned updates are never accepted")
	}
	if a.MaxTTL < 1 || a.MaxTTL > 86400 {
		v.add("acme.max_ttl", "%d is outside 1..86400", a.MaxTTL)
	}
	if a.RecordLifetime < time.Minute || a.RecordLifetime > 30*24*time.Hour {
		v.add("acme.record_lifetime", "expected a duration from 1m to 720h, got %s", a.RecordLifetime)
	}
	if a.MaxRecordsPerName < 1 || a.MaxRecordsPerName > 100 {
		v.add("acme.max_records_per_name", "%d is outside 1..100", a.MaxRecordsPerName)
	}
	if a.MaxRecords < 1 || a.MaxRecords > 100000 {
		v.add("acme.max_records", "%d is outside 1..100000", a.MaxRecords)
	}
	zones := map[string]bool{}
	for _, z := range c.Zones {
		zones[z.Origin] = true
	}
	for i := range a.TSIGKeys {
		k := &a.TSIGKeys[i]
		p := fmt.Sprintf("acme.tsig_keys[%d]", i)
		k.Name = canonicalName(k.Name)
		if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "." {
			v.add(p+".name", "%q is not a key name such as acme-key.", k.Name)
		}
		for j := range i {
			if a.TSIGKeys[j].Name == k.Name {
				v.add(p+".name", "%s is already acme.tsig_keys[%d]", k.Name, j)
			}
		}
		k.Algorithm = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(k.Algorithm)), ".")
		if k.Algorithm == "" {
			k.Algorithm = TSIGAlgorithms[0]
		}
		if !slices.Contains(TSIGAlgorithms, k.Algorithm) {
			v.add(p+".algorithm", "%s", oneOf(k.Algorithm, TSIGAlgorithms))
		}
		k.Key = nil
		switch {
		case k.Secret != "" && k.SecretFile != "":
			v.add(p, "secret and secret_file are both set; use one")
		case k.Secret != "":
			k.Key = decodeSecret(v, p+".secret", "the secret", k.Secret)
		case k.SecretFile != "":
			k.SecretFile = resolvePath(c.File, k.SecretFile)
			b, err := readSmallFile(k.SecretFile, 4096)
			if err != nil {
				v.add(p+".secret_file", "cannot read %s: %v", k.SecretFile, err)
				break
			}
			s := strings.TrimSpace(string(b))
			if m := bindSecret.FindStringSubmatch(s); m != nil {
				s = m[1]
			}
			k.Key = decodeSecret(v, p+".secret_file", k.SecretFile, s)
		default:
			v.add(p, "expected secret or secret_file (a base64 secret, as tsig-keygen or openssl rand -base64 32 prints)")
		}
		for j, z := range k.Zones {
			k.Zones[j] = canonicalName(z)
			if !zones[k.Zones[j]] {
				v.add(fmt.Sprintf("%s.zones[%d]", p, j), "%s is not one of the configured zones", k.Zones[j])
			}
		}
	}
}

func decodeSecret(v *validator, path, what, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	switch {
	case err != nil:
		v.add(path, "%s is not base64: %v", what, err)
		return nil
	case len(b) < minTSIGSecret:
		v.add(path, "%s decodes to %d bytes; expected at least %d", what, len(b), minTSIGSecret)
		return nil
	}
	return b
}
