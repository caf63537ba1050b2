package config

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestBadFixtures loads every file in testdata/bad and compares the error
// lines with the "# want:" comments the file carries: each problem is
// reported, one line each, naming the file and the key.
func TestBadFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want := wantLines(t, file)
			_, err := Load(file, Options{})
			if err == nil {
				t.Fatalf("got no error, want %d", len(want))
			}
			var got []string
			for _, e := range Errors(err) {
				got = append(got, e.Error())
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
			}
		})
	}
}

func wantLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			want = append(want, file+": "+w)
		}
	}
	return want
}

func TestDefaults(t *testing.T) {
	cfg, err := Load("testdata/good/minimal.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	z := cfg.Zones[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"dns.listen", cfg.DNS.Listen[0].String(), DefaultDNSListen},
		{"dns.udp_size", cfg.DNS.UDPSize, uint16(DefaultUDPSize)},
		{"dns.tcp_idle_timeout", cfg.DNS.TCPIdleTimeout, DefaultTCPIdleTimeout},
		{"dns.identity.nsid", cfg.DNS.Identity.NSID, true},
		{"dns.identity.id", cfg.DNS.Identity.ID, cfg.Instance.Name},
		{"http.listen", cfg.HTTP.Listen.String(), DefaultHTTPListen},
		{"idgen.epoch", cfg.IDGen.Epoch, DefaultEpoch},
		{"log.level", cfg.Log.Level, "info"},
		{"zones[0].origin", z.Origin, "example.test."},
		{"zones[0].ttl", *z.TTL, uint32(DefaultZoneTTL)},
		{"zones[0].soa.mname", z.SOA.MName, "ns1.example.test."},
		{"zones[0].soa.rname", z.SOA.RName, "hostmaster.example.test."},
		{"zones[0].soa.refresh", z.SOA.Refresh, uint32(DefaultSOARefresh)},
		{"zones[0].soa.minimum", z.SOA.Minimum, uint32(DefaultSOAMinimum)},
		{"zones[0].soa.ttl", *z.SOA.TTL, uint32(DefaultSOATTL)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if cfg.Instance.Name == "" {
		t.Errorf("instance.name: got empty, want the host name")
	}
}

// TestOverrides: environment variables and flags override the file, also
// for keys the file does not set, and are parsed by the key's type.
func TestOverrides(t *testing.T) {
	t.Setenv("GSLBD_DNS_UDP_SIZE", "1400")
	t.Setenv("GSLBD_DNS_LISTEN", "127.0.0.1:5300, [::1]:5300")
	t.Setenv("GSLBD_DNS_TCP_IDLE_TIMEOUT", "3s")
	t.Setenv("GSLBD_LOG_LEVEL", "warn")
	t.Setenv("GSLBD_INSTANCE_NAME", "from-env")
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("log.level", "", "")
	if err := fs.Parse([]string{"--log.level=debug"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("testdata/good/minimal.yaml", Options{Flags: fs, Set: []string{"instance.worker_id=7", "dns.identity.chaos=false"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DNS.UDPSize != 1400 {
		t.Errorf("dns.udp_size: got %d, want 1400 from the environment", cfg.DNS.UDPSize)
	}
	if len(cfg.DNS.Listen) != 2 || cfg.DNS.Listen[1].String() != "[::1]:5300" {
		t.Errorf("dns.listen: got %v, want two addresses from a comma-separated variable", cfg.DNS.Listen)
	}
	if cfg.DNS.TCPIdleTimeout != 3*time.Second {
		t.Errorf("dns.tcp_idle_timeout: got %s, want 3s", cfg.DNS.TCPIdleTimeout)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level: got %q, want the flag's debug over the environment's warn", cfg.Log.Level)
	}
	if cfg.Instance.Name != "from-env" || cfg.DNS.Identity.ID != "from-env" {
		t.Errorf("instance.name: got %q (identity %q), want from-env for both", cfg.Instance.Name, cfg.DNS.Identity.ID)
	}
	if cfg.Instance.WorkerID != 7 || cfg.DNS.Identity.Chaos {
		t.Errorf("--set: got worker %d chaos %t, want 7 false", cfg.Instance.WorkerID, cfg.DNS.Identity.Chaos)
	}
}

func TestOverrideErrors(t *testing.T) {
	t.Setenv("GSLBD_DNS_UDP_SIZE", "big")
	t.Setenv("GSLBD_LOG_FORMAT", "xml")
	_, err := Load("testdata/good/minimal.yaml", Options{Set: []string{"zones=x", "nokey"}})
	var got []string
	for _, e := range Errors(err) {
		got = append(got, e.Error())
	}
	slices.Sort(got)
	want := []string{
		`environment GSLBD_DNS_UDP_SIZE: dns.udp_size: expected a whole number 0..65535, got string "big"`,
		`environment GSLBD_LOG_FORMAT: log.format: "xml" is not one of text, json`,
		`flag --set: expected key.path=value, got "nokey"`,
		`flag --set: zones: unknown key (or one inside a list, which only the file can set)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n got  %q\n want %q", got, want)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "gslbd.yaml")
	// A relative token_file resolves against the config file's directory.
	cfg, err := Parse(file, append(base, []byte("http: {token_file: token}\n")...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Token != "s3cret" {
		t.Errorf("token: got %q, want s3cret with the newline trimmed", cfg.HTTP.Token)
	}
	_, err = Parse(file, append(base, []byte("http: {token_file: empty}\n")...), Options{})
	if err == nil || !strings.Contains(err.Error(), "http.token_file: "+filepath.Join(dir, "empty")+" is empty") {
		t.Errorf("empty token file: got %v, want an error naming http.token_file", err)
	}
	_, err = Parse(file, append(base, []byte("http: {token_file: missing}\n")...), Options{})
	if err == nil || !strings.Contains(err.Error(), "http.token_file: cannot read") {
		t.Errorf("missing token file: got %v, want an error naming http.token_file", err)
	}
}

// TestValuesKeepCase: viper folds keys, never values.
func TestValuesKeepCase(t *testing.T) {
	base, _ := os.ReadFile("testdata/good/minimal.yaml")
	cfg, err := Parse("x.yaml", append(base, []byte("datacenters: [{id: dc-a, region: EU-Central, endpoints: [{address: 192.0.2.1}]}]\ninstance: {name: GSLB-One}\n")...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datacenters[0].Region != "EU-Central" || cfg.Instance.Name != "GSLB-One" {
		t.Errorf("got region %q name %q, want the case written", cfg.Datacenters[0].Region, cfg.Instance.Name)
	}
}

func TestKeysHaveEnvNames(t *testing.T) {
	keys := Keys()
	for _, want := range []string{"dns.udp_size", "dns.listen", "http.token_file", "dns.identity.nsid", "idgen.epoch", "instance.worker_id"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys(): %s missing", want)
		}
	}
	if got := EnvName("dns.identity.nsid"); got != "GSLBD_DNS_IDENTITY_NSID" {
		t.Errorf("EnvName: got %s, want GSLBD_DNS_IDENTITY_NSID", got)
	}
}

// FuzzLoadConfig: whatever the bytes, Parse returns a config or an error,
// never panics, and a config it returns passes validation again.
func FuzzLoadConfig(f *testing.F) {
	for _, pattern := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "../../configs/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse("fuzz.yaml", b, Options{})
		if err != nil {
			if len(Errors(err)) == 0 {
				t.Fatalf("an error with no lines: %v", err)
			}
			return
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("accepted config fails validation again: %v", err)
		}
	})
}

func TestKeepRestartOnly(t *testing.T) {
	base, _ := os.ReadFile("testdata/good/minimal.yaml")
	running, err := Parse("x.yaml", append(base, []byte("instance: {name: old}\nhttp: {listen: 0.0.0.0:9053}\n")...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	edited := append(base, []byte("instance: {name: new}\nhttp: {listen: 127.0.0.1:9053, allow_unauthenticated_loopback: true}\nlog: {level: debug}\n")...)
	for round := range 2 {
		next, err := Parse("x.yaml", edited, Options{})
		if err != nil {
			t.Fatal(err)
		}
		changed := next.KeepRestartOnly(running)
		slices.Sort(changed)
		want := []string{"http.allow_unauthenticated_loopback", "http.listen", "instance"}
		if !slices.Equal(changed, want) {
			t.Errorf("round %d: changed keys: got %v, want %v", round, changed, want)
		}
		if next.HTTP.AllowUnauthenticatedLoopback || next.HTTP.Listen.String() != "0.0.0.0:9053" {
			t.Errorf("round %d: got http %+v, want the running listener without the loopback exception", round, next.HTTP)
		}
		if next.Instance.Name != "old" || next.DNS.Identity.ID != "old" {
			t.Errorf("round %d: got name %q identity %q, want both old", round, next.Instance.Name, next.DNS.Identity.ID)
		}
		if next.Log.Level != "debug" {
			t.Errorf("round %d: log.level: got %q, want debug (reloadable)", round, next.Log.Level)
		}
		running = next // what the daemon does after a successful reload
	}
}
