package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// runGeodb runs "gslbd geodb ARGS..." in-process.
func runGeodb(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"geodb"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

const geodbTestCSV = `network,latitude,longitude,country,continent,subdivision,city
192.0.2.0/24,39.04,-77.49,US,NA,VA,Ashburn
198.51.100.0/24,50.11,8.68,DE,EU,HE,Frankfurt am Main
2001:db8:30::/48,1.29,103.85,SG,AS,,Singapore
`

func geodbWriteFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGeodbBuildAndLookup(t *testing.T) {
	dir := t.TempDir()
	csv := geodbWriteFile(t, dir, "geo.csv", geodbTestCSV)
	db := filepath.Join(dir, "geo.mmdb")

	code, stdout, stderr := runGeodb("build", "--from", csv, "--out", db)
	if code != exitOK || stderr != "" {
		t.Fatalf("build: exit %d, stderr %q", code, stderr)
	}
	if want := "wrote " + db + ": 3 networks (2 IPv4, 1 IPv6)\n"; stdout != want {
		t.Errorf("build said %q, want %q", stdout, want)
	}
	st, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 so a daemon running as another user can read it", st.Mode().Perm())
	}

	for _, tc := range []struct {
		addr string
		want string
	}{
		{"192.0.2.77", `{
  "network": "192.0.2.0/24",
  "country": "US",
  "continent": "NA",
  "subdivision": "VA",
  "city": "Ashburn",
  "latitude": 39.04,
  "longitude": -77.49
}
`},
		{"2001:db8:30:1::1", `{
  "network": "2001:db8:30::/48",
  "country": "SG",
  "continent": "AS",
  "subdivision": "",
  "city": "Singapore",
  "latitude": 1.29,
  "longitude": 103.85
}
`},
	} {
		code, stdout, stderr := runGeodb("lookup", "--db", db, tc.addr)
		if code != exitOK || stderr != "" {
			t.Errorf("lookup %s: exit %d, stderr %q", tc.addr, code, stderr)
		}
		if stdout != tc.want {
			t.Errorf("lookup %s:\n%s\nwant:\n%s", tc.addr, stdout, tc.want)
		}
	}

	code, stdout, stderr = runGeodb("lookup", "--db", db, "203.0.113.1")
	if code != exitFail || stdout != "" {
		t.Errorf("lookup of an absent address: exit %d, stdout %q", code, stdout)
	}
	if want := "gslbd geodb lookup: 203.0.113.1 is not in " + db + "\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

// TestGeodbBuildBadCSV: every error on stderr, one per line, exit 1, and
// the database that was there is left alone.
func TestGeodbBuildBadCSV(t *testing.T) {
	dir := t.TempDir()
	csv := geodbWriteFile(t, dir, "bad.csv", "network,latitude,longitude,country,continent,subdivision,city\n"+
		"192.0.2.0/24,91.5,0,US,NA,,\n"+
		"192.0.2.0/25,0,0,us,NA,,\n")
	db := geodbWriteFile(t, dir, "geo.mmdb", "old database")
	code, stdout, stderr := runGeodb("build", "--from", csv, "--out", db)
	if code != exitFail || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	want := csv + `:2: latitude: "91.5" is outside -90..90` + "\n" +
		csv + `:3: country: "us" is not a country code; expected an ISO 3166-1 alpha-2 code, 2 upper-case letters such as GB` + "\n"
	if stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
	}
	if b, _ := os.ReadFile(db); string(b) != "old database" {
		t.Errorf("--out was changed by a failed build")
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(tmp) != 0 {
		t.Errorf("left temporary files: %v", tmp)
	}
}

// TestGeodbBuildReplaces: a rebuild renames a new file over the old one,
// keeping its permissions and leaving no temporary file behind.
func TestGeodbBuildReplaces(t *testing.T) {
	dir := t.TempDir()
	csv := geodbWriteFile(t, dir, "geo.csv", geodbTestCSV)
	db := geodbWriteFile(t, dir, "geo.mmdb", "old database")
	if err := os.Chmod(db, 0o640); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Stat(db)
	if code, _, stderr := runGeodb("build", "--from", csv, "--out", db); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	st, _ := os.Stat(db)
	if os.SameFile(old, st) {
		t.Error("the old file was written in place; a reader could see half a database")
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the old file's 0640", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d files, want geo.csv and geo.mmdb", len(entries))
	}
}

func TestGeodbUsage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "x.mmdb")
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, exitUsage, "gslbd geodb: expected a subcommand: build or lookup\n"},
		{[]string{"convert"}, exitUsage, "gslbd geodb: expected a subcommand: build or lookup\n"},
		{[]string{"build", "--from", "x.csv"}, exitUsage, "gslbd geodb build: expected --from FILE.csv --out FILE.mmdb and no other arguments\n"},
		{[]string{"build", "--from", "x.csv", "--out", db, "extra"}, exitUsage, "gslbd geodb build: expected --from FILE.csv --out FILE.mmdb and no other arguments\n"},
		{[]string{"build", "--bogus"}, exitUsage, "gslbd geodb build: unknown flag: --bogus\n"},
		{[]string{"build", "--from", filepath.Join(dir, "missing.csv"), "--out", db}, exitFail,
			"gslbd geodb build: open " + filepath.Join(dir, "missing.csv") + ": no such file or directory\n"},
		{[]string{"lookup", "192.0.2.1"}, exitUsage, "gslbd geodb lookup: expected --db FILE.mmdb and one IP address\n"},
		{[]string{"lookup", "--db", db}, exitUsage, "gslbd geodb lookup: expected --db FILE.mmdb and one IP address\n"},
		{[]string{"lookup", "--db", db, "example.com"}, exitUsage,
			"gslbd geodb lookup: expected an IP address such as 192.0.2.1 or 2001:db8::1, got \"example.com\"\n"},
		{[]string{"lookup", "--db", db, "192.0.2.1"}, exitFail, "gslbd geodb lookup: open " + db + ": no such file or directory\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runGeodb(tc.args...)
			if code != tc.code || stderr != tc.stderr || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stderr %q", code, stdout, stderr, tc.code, tc.stderr)
			}
		})
	}
	if code, stdout, _ := runGeodb("build", "--help"); code != exitOK || stdout != "" {
		t.Errorf("--help: exit %d", code)
	}
}

// TestGeodbLookupWrongFile: lookup says plainly when the file is not a
// MaxMind DB, or is one without City data gslbd could use.
func TestGeodbLookupWrongFile(t *testing.T) {
	dir := t.TempDir()
	notMMDB := geodbWriteFile(t, dir, "geo.csv", geodbTestCSV)
	code, _, stderr := runGeodb("lookup", "--db", notMMDB, "192.0.2.1")
	if code != exitFail || !strings.HasPrefix(stderr, "gslbd geodb lookup: "+notMMDB+" is not a MaxMind DB (.mmdb) file: ") {
		t.Errorf("a CSV: exit %d, stderr %q", code, stderr)
	}

	for _, dbType := range []string{"GeoLite2-ASN", "GeoLite2-Country", "Acme-Custom"} {
		p := writeTypedMMDB(t, dir, dbType)
		code, _, stderr := runGeodb("lookup", "--db", p, "192.0.2.1")
		want := "gslbd geodb lookup: " + p + ` is a "` + dbType + `" database, not a City database ` +
			"(GeoIP2-City, GeoLite2-City, DBIP-City-Lite or one built by gslbd geodb build)\n"
		if code != exitFail || stderr != want {
			t.Errorf("%s: exit %d, stderr %q, want %q", dbType, code, stderr, want)
		}
	}
}

// writeTypedMMDB writes a one-network database of the given type, like
// the ASN and Country databases an operator might pass by mistake.
func writeTypedMMDB(t *testing.T, dir, dbType string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR("192.0.2.0/24")
	if err := tree.Insert(n, mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(64496)}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, dbType+".mmdb")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGeodbDemoDatabase: the committed demo database is what the command
// in configs/demo/README.md builds from the committed CSV, and it places
// the addresses the README and tests use where they say.
func TestGeodbDemoDatabase(t *testing.T) {
	out := filepath.Join(t.TempDir(), "geo.mmdb")
	code, stdout, stderr := runGeodb("build", "--from", "../../configs/demo/geo.csv", "--out", out,
		"--description", "gslbd demo data: made-up locations, not real geolocation")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasSuffix(stdout, ": 24 networks (18 IPv4, 6 IPv6)\n") {
		t.Errorf("build said %q", stdout)
	}
	rebuilt, _ := os.ReadFile(out)
	committed, err := os.ReadFile("../../configs/demo/geo.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt, committed) {
		t.Fatal("configs/demo/geo.mmdb does not match configs/demo/geo.csv; rebuild it with the command in configs/demo/README.md")
	}

	for addr, want := range map[string]string{
		"81.2.69.142":      "GB London",
		"89.160.20.112":    "DE Frankfurt am Main",
		"216.160.83.56":    "US Ashburn",
		"175.16.199.1":     "SG Singapore",
		"202.196.224.1":    "JP Tokyo",
		"200.160.0.1":      "BR São Paulo",
		"1.128.0.1":        "AU Sydney",
		"196.25.0.1":       "ZA Johannesburg",
		"64.71.0.1":        "US San Francisco",
		"192.0.2.1":        "US Ashburn",
		"198.51.100.1":     "DE Frankfurt am Main",
		"203.0.113.1":      "SG Singapore",
		"2600:1f00::1":     "US Ashburn",
		"2a02:d000::1":     "DE Frankfurt am Main",
		"2400:8900::1":     "SG Singapore",
		"2001:db8:10::1":   "US Ashburn",
		"2001:db8:20::1":   "DE Frankfurt am Main",
		"2001:db8:30::1":   "SG Singapore",
		"::ffff:81.2.69.1": "GB London",
	} {
		code, stdout, stderr := runGeodb("lookup", "--db", "../../configs/demo/geo.mmdb", addr)
		if code != exitOK {
			t.Errorf("%s: exit %d: %s", addr, code, stderr)
			continue
		}
		var got geodbLookupResult
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatal(err)
		}
		if s := got.Country + " " + got.City; s != want {
			t.Errorf("%s: %s, want %s", addr, s, want)
		}
	}
}
