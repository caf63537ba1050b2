package geodb

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Header is the CSV's required first row. The columns are fixed, in this
// order, so a file that was written for another layout fails on line 1
// instead of putting longitudes in the latitude field.
const Header = "network,latitude,longitude,country,continent,subdivision,city"

// DatabaseType is written into the metadata. Readers such as
// geoip2-golang choose which lookups they allow by this name, so it must
// be one they know as a City database.
const DatabaseType = "GeoIP2-City"

// DefaultBuildEpoch is the build time written when Options.BuildEpoch is
// zero. mmdbwriter reads zero as "now", which would make every build
// differ; a fixed time makes the output a pure function of the CSV, so a
// committed database can be checked against the CSV beside it. 1 (one
// second after the Unix epoch) is plainly not a real build date.
const DefaultBuildEpoch int64 = 1

// DefaultDescription is the metadata description when Options.Description
// is empty. It names no file, so where the CSV lives does not change the
// output.
const DefaultDescription = "GeoIP2-City-compatible database built by gslbd geodb from CSV"

// AccuracyRadius is the location.accuracy_radius, in kilometres, written
// for every network: a CSV row names a city, not a point.
const AccuracyRadius = 100

// Options controls a build.
type Options struct {
	// Source names the CSV in error messages ("configs/demo/geo.csv:12:
	// ..."). It is not written into the database.
	Source string
	// Description is the metadata description (language "en");
	// DefaultDescription when empty.
	Description string
	// BuildEpoch is the metadata build time, Unix seconds;
	// DefaultBuildEpoch when zero.
	BuildEpoch int64
}

// Stats counts what a build wrote.
type Stats struct {
	Networks int
	IPv4     int
	IPv6     int
}

var continentNames = map[string]string{
	"AF": "Africa",
	"AN": "Antarctica",
	"AS": "Asia",
	"EU": "Europe",
	"NA": "North America",
	"OC": "Oceania",
	"SA": "South America",
}

// ipv6Reserved are the IPv6 networks an IPv6 MaxMind DB does not hold
// data of its own for: ::/96 is where the IPv4 tree lives, and mmdbwriter
// points the others at it, so an IPv4 lookup through any of them lands
// on the IPv4 record. A CSV row inside one would either be refused by
// mmdbwriter or silently be an IPv4 network.
var ipv6Reserved = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("::/96"), "the IPv4 part of the tree"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped addresses, aliased to IPv4"},
	{netip.MustParsePrefix("2001::/32"), "Teredo, aliased to IPv4"},
	{netip.MustParsePrefix("2002::/16"), "6to4, aliased to IPv4"},
}

// row is one valid CSV data row.
type row struct {
	line        int
	prefix      netip.Prefix
	lat, lon    float64
	country     string
	continent   string
	subdivision string
	city        string
}

// lineError is one problem on one line, so errors can be sorted into file
// order however they were found.
type lineError struct {
	source string
	line   int
	msg    string
}

func (e *lineError) Error() string {
	if e.line == 0 {
		return e.source + ": " + e.msg
	}
	return fmt.Sprintf("%s:%d: %s", e.source, e.line, e.msg)
}

// Build reads a CSV of networks and their locations and writes a
// GeoIP2-City-compatible MaxMind DB to out.
//
// The CSV's first row must be Header. Lines starting with # are comments
// and blank lines are skipped. Each row is
//
//	network      a CIDR network, host bits zero (192.0.2.0/24, 2001:db8::/32)
//	latitude     -90..90
//	longitude    -180..180
//	country      ISO 3166-1 alpha-2, upper case (GB)
//	continent    AF AN AS EU NA OC SA
//	subdivision  ISO 3166-2 subdivision code without the country (ENG), or empty
//	city         English city name, or empty
//
// Networks must not overlap. On a bad CSV Build writes nothing and
// returns every problem, joined with errors.Join, one per line, each
// naming the file, the line, the column and what was expected.
func Build(in io.Reader, out io.Writer, opts Options) (Stats, error) {
	if opts.Source == "" {
		opts.Source = "input"
	}
	if opts.Description == "" {
		opts.Description = DefaultDescription
	}
	if opts.BuildEpoch == 0 {
		opts.BuildEpoch = DefaultBuildEpoch
	}
	if opts.BuildEpoch < 0 {
		return Stats{}, fmt.Errorf("build epoch %d is before 1970", opts.BuildEpoch)
	}
	rows, err := parse(in, opts.Source)
	if err != nil {
		return Stats{}, err
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: DatabaseType,
		Description:  map[string]string{"en": opts.Description},
		Languages:    []string{"en"},
		IPVersion:    6,
		RecordSize:   28,
		BuildEpoch:   opts.BuildEpoch,
		// Demo and test data uses the documentation ranges (192.0.2.0/24,
		// 2001:db8::/32), which mmdbwriter otherwise refuses.
		IncludeReservedNetworks: true,
	})
	if err != nil {
		return Stats{}, fmt.Errorf("creating database: %w", err)
	}
	var stats Stats
	for _, r := range rows {
		if err := tree.Insert(ipNet(r.prefix), r.record()); err != nil {
			return Stats{}, &lineError{opts.Source, r.line, fmt.Sprintf("network: %v", err)}
		}
		stats.Networks++
		if r.prefix.Addr().Is4() {
			stats.IPv4++
		} else {
			stats.IPv6++
		}
	}
	if _, err := tree.WriteTo(out); err != nil {
		return Stats{}, fmt.Errorf("writing database: %w", err)
	}
	return stats, nil
}

// ipNet converts to what mmdbwriter takes. A 4-byte IP puts the network
// in the IPv4 part of the tree (::/96), where IPv4 lookups, and through
// the aliases IPv4-mapped ones, find it.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   net.IP(p.Addr().AsSlice()),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}

// record is the row as MaxMind's City record shapes it.
func (r row) record() mmdbtype.Map {
	rec := mmdbtype.Map{
		"continent": mmdbtype.Map{
			"code":  mmdbtype.String(r.continent),
			"names": mmdbtype.Map{"en": mmdbtype.String(continentNames[r.continent])},
		},
		"country": mmdbtype.Map{"iso_code": mmdbtype.String(r.country)},
		"location": mmdbtype.Map{
			"latitude":        mmdbtype.Float64(r.lat),
			"longitude":       mmdbtype.Float64(r.lon),
			"accuracy_radius": mmdbtype.Uint16(AccuracyRadius),
		},
	}
	if r.city != "" {
		rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(r.city)}}
	}
	if r.subdivision != "" {
		rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(r.subdivision)}}
	}
	return rec
}

// parse reads and checks the whole CSV and returns its rows sorted by
// network, or every problem found.
func parse(in io.Reader, src string) ([]row, error) {
	cr := csv.NewReader(in)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // checked here, to say which columns were expected
	var errs []*lineError
	add := func(line int, format string, args ...any) {
		errs = append(errs, &lineError{src, line, fmt.Sprintf(format, args...)})
	}

	header, err := cr.Read()
	switch {
	case err == io.EOF:
		return nil, &lineError{src, 0, fmt.Sprintf("expected a header row %q, got an empty file", Header)}
	case err != nil:
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, &lineError{src, pe.Line, fmt.Sprintf("header: %v; expected %q", pe.Err, Header)}
		}
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	if line, _ := cr.FieldPos(0); strings.Join(trimAll(header), ",") != Header {
		return nil, &lineError{src, line, fmt.Sprintf("header: expected %q, got %q", Header, strings.Join(header, ","))}
	}

	var rows []row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// The reader goes on with the next record, so one bad quote
			// does not hide the problems after it.
			add(pe.Line, "%v (column %d)", pe.Err, pe.Column)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", src, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != 7 {
			add(line, "expected 7 fields (%s), got %d", Header, len(rec))
			continue
		}
		rec = trimAll(rec)
		r := row{line: line, subdivision: rec[5], city: rec[6]}
		ok := true
		check := func(msg string) {
			if msg != "" {
				add(line, "%s", msg)
				ok = false
			}
		}
		var msg string
		r.prefix, msg = parseNetwork(rec[0])
		check(msg)
		r.lat, msg = parseCoord("latitude", rec[1], 90)
		check(msg)
		r.lon, msg = parseCoord("longitude", rec[2], 180)
		check(msg)
		r.country, msg = rec[3], checkCountry(rec[3])
		check(msg)
		r.continent, msg = rec[4], checkContinent(rec[4])
		check(msg)
		check(checkSubdivision(rec[5]))
		if ok {
			rows = append(rows, r)
		}
	}

	// Overlaps are checked on the rows that parsed; the others are
	// already errors.
	slices.SortFunc(rows, func(a, b row) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.prefix.Bits(), b.prefix.Bits()); c != 0 {
			return c
		}
		return cmp.Compare(a.line, b.line)
	})
	errs = append(errs, overlaps(rows, src)...)

	if len(errs) == 0 && len(rows) == 0 {
		return nil, &lineError{src, 0, "no networks: expected at least one row after the header"}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *lineError) int { return cmp.Compare(a.line, b.line) })
		joined := make([]error, len(errs))
		for i, e := range errs {
			joined[i] = e
		}
		return nil, errors.Join(joined...)
	}
	return rows, nil
}

// overlaps finds rows whose networks overlap an earlier one in sorted
// order. rows is sorted by address, then prefix length, so two networks
// either nest or are disjoint, and a network overlaps some earlier one
// exactly when it overlaps the earlier one that reaches furthest. Each
// problem is reported on the later of the two lines, naming the other.
func overlaps(rows []row, src string) []*lineError {
	var errs []*lineError
	var cover *row
	for i := range rows {
		r := &rows[i]
		if cover != nil && cover.prefix.Overlaps(r.prefix) {
			first, second := cover, r
			if first.line > second.line {
				first, second = second, first
			}
			verb := "overlaps"
			if first.prefix == second.prefix {
				verb = "duplicates"
			}
			errs = append(errs, &lineError{src, second.line,
				fmt.Sprintf("network: %s %s %s on line %d", second.prefix, verb, first.prefix, first.line)})
			continue // r is inside cover, so cover still reaches furthest
		}
		cover = r
	}
	return errs
}

func trimAll(fields []string) []string {
	for i, f := range fields {
		fields[i] = strings.TrimSpace(f)
	}
	return fields
}

func parseNetwork(s string) (netip.Prefix, string) {
	const want = "expected a CIDR network such as 192.0.2.0/24 or 2001:db8::/32"
	if s == "" {
		return netip.Prefix{}, "network: missing; " + want
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Sprintf("network: %q is not a CIDR network; %s", s, want)
	}
	if p.Addr().Is4In6() {
		if p.Bits() >= 96 {
			v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
			return p, fmt.Sprintf("network: %q is an IPv4-mapped IPv6 network; write it as %s", s, v4)
		}
	}
	if m := p.Masked(); m != p {
		return p, fmt.Sprintf("network: %q has host bits set; expected %s", s, m)
	}
	if p.Addr().Is6() {
		for _, r := range ipv6Reserved {
			if r.prefix.Overlaps(p) {
				return p, fmt.Sprintf("network: %s overlaps %s (%s); write IPv4 networks as IPv4", p, r.prefix, r.what)
			}
		}
	}
	return p, ""
}

func parseCoord(name, s string, limit float64) (float64, string) {
	if s == "" {
		return 0, fmt.Sprintf("%s: missing; expected a number in -%g..%g", name, limit, limit)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Sprintf("%s: %q is not a number; expected -%g..%g", name, s, limit, limit)
	}
	if !(v >= -limit && v <= limit) { // also catches NaN
		return 0, fmt.Sprintf("%s: %q is outside -%g..%g", name, s, limit, limit)
	}
	return v, ""
}

func checkCountry(s string) string {
	const want = "expected an ISO 3166-1 alpha-2 code, 2 upper-case letters such as GB"
	if s == "" {
		return "country: missing; " + want
	}
	if len(s) != 2 || !isUpper(s[0]) || !isUpper(s[1]) {
		return fmt.Sprintf("country: %q is not a country code; %s", s, want)
	}
	return ""
}

func checkContinent(s string) string {
	const want = "expected one of AF AN AS EU NA OC SA"
	if s == "" {
		return "continent: missing; " + want
	}
	if _, ok := continentNames[s]; !ok {
		return fmt.Sprintf("continent: %q is not a continent code; %s", s, want)
	}
	return ""
}

// checkSubdivision accepts the part of an ISO 3166-2 code after the
// country and the dash (ENG for GB-ENG, 13 for JP-13), as MaxMind writes
// subdivisions[].iso_code.
func checkSubdivision(s string) string {
	if s == "" {
		return ""
	}
	ok := len(s) <= 3
	for i := 0; i < len(s) && ok; i++ {
		ok = isUpper(s[i]) || (s[i] >= '0' && s[i] <= '9')
	}
	if !ok {
		return fmt.Sprintf("subdivision: %q is not a subdivision code; expected the ISO 3166-2 code after the country, 1 to 3 upper-case letters or digits such as ENG or 13, or empty", s)
	}
	return ""
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
