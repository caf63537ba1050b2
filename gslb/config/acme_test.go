package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestACMEKeys: secret files as tsig-keygen writes them and as a bare
// base64 line both load; names and algorithms are canonical.
func TestACMEKeys(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("0123456789abcdef0123456789abcdef")
	files := map[string]string{
		"bind.key": "key \"acme-key\" {\n\talgorithm hmac-sha512;\n\tsecret \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\";\n};\n",
		"bare.key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "gslbd.yaml")
	cfg, err := Parse(file, []byte(`
instance: {state_dir: state}
acme:
  enabled: true
  tsig_keys:
    - {name: Acme-Key, algorithm: HMAC-SHA512., secret_file: bind.key, zones: [Example.Test]}
    - {name: other., secret_file: bare.key}
datacenters:
  - {id: dc-a, endpoints: [{address: 192.0.2.1}]}
zones:
  - origin: example.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [192.0.2.53]}]
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.ACME.TSIGKeys
	if k[0].Name != "acme-key." || k[0].Algorithm != "hmac-sha512" || !bytes.Equal(k[0].Key, secret) || k[0].Zones[0] != "example.test." {
		t.Errorf("BIND key file: got %+v", k[0])
	}
	if k[1].Algorithm != "hmac-sha256" || !bytes.Equal(k[1].Key, secret) {
		t.Errorf("bare secret file: got %+v", k[1])
	}
	if cfg.Instance.StateDir != filepath.Join(dir, "state") {
		t.Errorf("instance.state_dir: got %s, want it relative to the file", cfg.Instance.StateDir)
	}
	if cfg.ACME.MaxTTL != DefaultACMEMaxTTL || cfg.ACME.RecordLifetime != DefaultACMERecordLifetime {
		t.Errorf("defaults: got %+v", cfg.ACME)
	}
}
