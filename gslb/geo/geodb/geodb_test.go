package geodb

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/oschwald/geoip2-golang/v2"
)

const smallCSV = `# a comment, then the header
network,latitude,longitude,country,continent,subdivision,city
81.2.69.0/24,51.51,-0.13,GB,EU,ENG,London
192.0.2.0/24,39.04,-77.49,US,NA,VA,Ashburn

# IPv6, and a row with no subdivision or city
2001:db8:2::/48,50.11,8.68,DE,EU,HE,Frankfurt am Main
2a02:d000::/24,1.29,103.85,SG,AS,,
`

func build(t *testing.T, csv string, opts Options) ([]byte, Stats) {
	t.Helper()
	var out bytes.Buffer
	stats, err := Build(strings.NewReader(csv), &out, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return out.Bytes(), stats
}

func TestBuildRoundTrip(t *testing.T) {
	db, stats := build(t, smallCSV, Options{Source: "small.csv"})
	if want := (Stats{Networks: 4, IPv4: 2, IPv6: 2}); stats != want {
		t.Errorf("stats = %+v, want %+v", stats, want)
	}
	r, err := geoip2.OpenBytes(db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.Metadata()
	if md.DatabaseType != "GeoIP2-City" || md.IPVersion != 6 || md.RecordSize != 28 ||
		md.BuildEpoch != uint(DefaultBuildEpoch) || md.Description["en"] != DefaultDescription {
		t.Errorf("metadata = %+v", md)
	}

	type want struct {
		network, country, continent, continentName, subdivision, city string
		lat, lon                                                      float64
	}
	for _, tc := range []struct {
		addr string
		want want
	}{
		{"81.2.69.142", want{"81.2.69.0/24", "GB", "EU", "Europe", "ENG", "London", 51.51, -0.13}},
		{"81.2.69.0", want{"81.2.69.0/24", "GB", "EU", "Europe", "ENG", "London", 51.51, -0.13}},
		{"192.0.2.1", want{"192.0.2.0/24", "US", "NA", "North America", "VA", "Ashburn", 39.04, -77.49}},
		// An IPv4-mapped address reaches the IPv4 record through the alias.
		{"::ffff:81.2.69.142", want{"::ffff:81.2.69.0/120", "GB", "EU", "Europe", "ENG", "London", 51.51, -0.13}},
		{"2001:db8:2::1", want{"2001:db8:2::/48", "DE", "EU", "Europe", "HE", "Frankfurt am Main", 50.11, 8.68}},
		{"2a02:d0ff:ffff::1", want{"2a02:d000::/24", "SG", "AS", "Asia", "", "", 1.29, 103.85}},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			c, err := r.City(netip.MustParseAddr(tc.addr))
			if err != nil {
				t.Fatal(err)
			}
			if !c.HasData() {
				t.Fatal("not found")
			}
			var sub string
			if len(c.Subdivisions) > 0 {
				sub = c.Subdivisions[0].ISOCode
			}
			got := want{c.Traits.Network.String(), c.Country.ISOCode, c.Continent.Code, c.Continent.Names.English,
				sub, c.City.Names.English, deref(c.Location.Latitude), deref(c.Location.Longitude)}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if c.Location.AccuracyRadius != AccuracyRadius {
				t.Errorf("accuracy_radius = %d", c.Location.AccuracyRadius)
			}
		})
	}

	for _, addr := range []string{"81.2.70.1", "8.8.8.8", "198.51.100.1", "2001:db8:3::1", "2a03::1", "::1"} {
		c, err := r.City(netip.MustParseAddr(addr))
		if err != nil {
			t.Fatal(err)
		}
		if c.HasData() {
			t.Errorf("%s: found %+v, want not found", addr, c)
		}
	}
}

func deref(f *float64) float64 {
	if f == nil {
		return -999
	}
	return *f
}

// TestBuildDeterministic: the same CSV gives the same bytes, whatever
// order its rows are in, so a committed database can be compared with a
// rebuild.
func TestBuildDeterministic(t *testing.T) {
	a, _ := build(t, smallCSV, Options{})
	b, _ := build(t, smallCSV, Options{})
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same CSV differ")
	}
	lines := strings.Split(strings.TrimSpace(smallCSV), "\n")
	reversed := []string{lines[1]}
	for i := len(lines) - 1; i >= 2; i-- {
		reversed = append(reversed, lines[i])
	}
	c, _ := build(t, strings.Join(reversed, "\n"), Options{})
	if !bytes.Equal(a, c) {
		t.Fatal("reordering the rows changed the database")
	}
	d, _ := build(t, smallCSV, Options{BuildEpoch: 1700000000, Description: "other"})
	if bytes.Equal(a, d) {
		t.Fatal("BuildEpoch and Description are not written")
	}
	r, err := geoip2.OpenBytes(d)
	if err != nil {
		t.Fatal(err)
	}
	if md := r.Metadata(); md.BuildEpoch != 1700000000 || md.Description["en"] != "other" {
		t.Errorf("metadata = %+v", md)
	}
}

// TestBuildDemoDatabaseMatchesCSV: configs/demo/geo.mmdb is exactly what
// its CSV builds to, with the command configs/demo/README.md gives, so the
// committed database cannot drift from the CSV a reader edits.
// demoDescription is the --description configs/demo/README.md builds
// the demo database with.
const demoDescription = "gslbd demo data: made-up locations, not real geolocation"

func TestBuildDemoDatabaseMatchesCSV(t *testing.T) {
	const dir = "../../../configs/demo/"
	csv, err := os.ReadFile(dir + "geo.csv")
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(dir + "geo.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, _ := build(t, string(csv), Options{Source: "configs/demo/geo.csv", Description: demoDescription})
	if !bytes.Equal(rebuilt, committed) {
		t.Fatal("configs/demo/geo.mmdb does not match configs/demo/geo.csv; rebuild it with the command in configs/demo/README.md")
	}
}

func TestBuildErrors(t *testing.T) {
	const hdr = Header + "\n"
	for _, tc := range []struct {
		name, csv string
		want      []string
	}{
		{"empty", "", []string{`t.csv: expected a header row "network,latitude,longitude,country,continent,subdivision,city", got an empty file`}},
		{"only comments", "# nothing\n", []string{`t.csv: expected a header row "network,latitude,longitude,country,continent,subdivision,city", got an empty file`}},
		{"no rows", hdr, []string{`t.csv: no networks: expected at least one row after the header`}},
		{"wrong header", "# x\nnetwork,lat,lon,country,continent,subdivision,city\n", []string{
			`t.csv:2: header: expected "network,latitude,longitude,country,continent,subdivision,city", got "network,lat,lon,country,continent,subdivision,city"`}},
		{"latitude", hdr + "81.2.69.0/24,91.5,0,GB,EU,,\n", []string{`t.csv:2: latitude: "91.5" is outside -90..90`}},
		{"longitude", hdr + "81.2.69.0/24,0,-180.01,GB,EU,,\n", []string{`t.csv:2: longitude: "-180.01" is outside -180..180`}},
		{"not numbers", hdr + "81.2.69.0/24,north,NaN,GB,EU,,\n", []string{
			`t.csv:2: latitude: "north" is not a number; expected -90..90`,
			`t.csv:2: longitude: "NaN" is outside -180..180`}},
		{"missing", hdr + ",,,,,,\n", []string{
			`t.csv:2: network: missing; expected a CIDR network such as 192.0.2.0/24 or 2001:db8::/32`,
			`t.csv:2: latitude: missing; expected a number in -90..90`,
			`t.csv:2: longitude: missing; expected a number in -180..180`,
			`t.csv:2: country: missing; expected an ISO 3166-1 alpha-2 code, 2 upper-case letters such as GB`,
			`t.csv:2: continent: missing; expected one of AF AN AS EU NA OC SA`}},
		{"codes", hdr + "81.2.69.0/24,0,0,gb,Europe,England,London\n", []string{
			`t.csv:2: country: "gb" is not a country code; expected an ISO 3166-1 alpha-2 code, 2 upper-case letters such as GB`,
			`t.csv:2: continent: "Europe" is not a continent code; expected one of AF AN AS EU NA OC SA`,
			`t.csv:2: subdivision: "England" is not a subdivision code; expected the ISO 3166-2 code after the country, 1 to 3 upper-case letters or digits such as ENG or 13, or empty`}},
		{"not a network", hdr + "81.2.69.0,0,0,GB,EU,,\n81.2.69.0/33,0,0,GB,EU,,\n", []string{
			`t.csv:2: network: "81.2.69.0" is not a CIDR network; expected a CIDR network such as 192.0.2.0/24 or 2001:db8::/32`,
			`t.csv:3: network: "81.2.69.0/33" is not a CIDR network; expected a CIDR network such as 192.0.2.0/24 or 2001:db8::/32`}},
		{"host bits", hdr + "81.2.69.142/24,0,0,GB,EU,,\n2001:db8::1/32,0,0,GB,EU,,\n", []string{
			`t.csv:2: network: "81.2.69.142/24" has host bits set; expected 81.2.69.0/24`,
			`t.csv:3: network: "2001:db8::1/32" has host bits set; expected 2001:db8::/32`}},
		{"mapped and aliased", hdr + "::ffff:81.2.69.0/120,0,0,GB,EU,,\n2002:c000:200::/40,0,0,GB,EU,,\n::/0,0,0,GB,EU,,\n::/100,0,0,GB,EU,,\n", []string{
			`t.csv:2: network: "::ffff:81.2.69.0/120" is an IPv4-mapped IPv6 network; write it as 81.2.69.0/24`,
			`t.csv:3: network: 2002:c000:200::/40 overlaps 2002::/16 (6to4, aliased to IPv4); write IPv4 networks as IPv4`,
			`t.csv:4: network: ::/0 overlaps ::/96 (the IPv4 part of the tree); write IPv4 networks as IPv4`,
			`t.csv:5: network: ::/100 overlaps ::/96 (the IPv4 part of the tree); write IPv4 networks as IPv4`}},
		{"overlaps", hdr +
			"81.2.69.128/25,0,0,GB,EU,,\n" + // 2
			"10.0.0.0/8,0,0,GB,EU,,\n" + // 3
			"81.2.69.0/24,0,0,GB,EU,,\n" + // 4
			"10.1.0.0/16,0,0,GB,EU,,\n" + // 5
			"2001:db8::/32,0,0,GB,EU,,\n" + // 6
			"10.0.0.0/8,0,0,GB,EU,,\n" + // 7
			"2001:db8:ff::/48,0,0,GB,EU,,\n" + // 8
			"11.0.0.0/8,0,0,GB,EU,,\n", // 9: adjacent, fine
			[]string{
				`t.csv:4: network: 81.2.69.0/24 overlaps 81.2.69.128/25 on line 2`,
				`t.csv:5: network: 10.1.0.0/16 overlaps 10.0.0.0/8 on line 3`,
				`t.csv:7: network: 10.0.0.0/8 duplicates 10.0.0.0/8 on line 3`,
				`t.csv:8: network: 2001:db8:ff::/48 overlaps 2001:db8::/32 on line 6`,
			}},
		{"field count and quotes", hdr + "81.2.69.0/24,0,0,GB\n81.2.70.0/24,0,0,GB,EU,,Lon\"don\n81.2.71.0/24,91,0,GB,EU,,\n", []string{
			`t.csv:2: expected 7 fields (network,latitude,longitude,country,continent,subdivision,city), got 4`,
			`t.csv:3: bare " in non-quoted-field (column 28)`,
			`t.csv:4: latitude: "91" is outside -90..90`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Build(strings.NewReader(tc.csv), &out, Options{Source: "t.csv"})
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %d bytes for a bad CSV", out.Len())
			}
		})
	}
}

// TestBuildCSVDetails: quoted fields, spaces around fields, CRLF line
// ends and a city with a comma all read as a person would expect.
func TestBuildCSVDetails(t *testing.T) {
	csv := " network , latitude,longitude,country,continent,subdivision,city\r\n" +
		`81.2.69.0/24, 51.5 ,-0.13,GB,EU,ENG,"London, City of"` + "\r\n"
	db, stats := build(t, csv, Options{})
	if stats.Networks != 1 {
		t.Fatalf("stats = %+v", stats)
	}
	r, err := geoip2.OpenBytes(db)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.City(netip.MustParseAddr("81.2.69.1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.City.Names.English != "London, City of" || *c.Location.Latitude != 51.5 {
		t.Errorf("got %+v", c)
	}
}

func TestBuildWriteError(t *testing.T) {
	_, err := Build(strings.NewReader(smallCSV), failWriter{}, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "writing database: ") || !strings.HasSuffix(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
