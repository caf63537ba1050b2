package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/spf13/pflag"

	// Renamed: the command's function is geodb, as every command's
	// function is named for it.
	geodbpkg "github.com/gslbd/gslbd/gslb/geo/geodb"
)

// geodb builds City databases from CSV (for the demo, tests and trying
// gslbd without a MaxMind account) and looks addresses up in any City
// database, so an operator can see what gslbd will see for a client.
func geodb(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "build" && args[0] != "lookup") {
		fmt.Fprintf(stderr, "gslbd geodb: expected a subcommand: build or lookup\n")
		return exitUsage
	}
	if args[0] == "build" {
		return geodbBuild(args[1:], stdout, stderr)
	}
	return geodbLookup(args[1:], stdout, stderr)
}

func geodbBuild(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("geodb build", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the CSV to read (header: "+geodbpkg.Header+")")
	out := fs.String("out", "", "the .mmdb to write, atomically (a new file renamed over the old)")
	desc := fs.String("description", "", "the database's metadata description (default \""+geodbpkg.DefaultDescription+"\")")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *from == "" || *out == "" || fs.NArg() != 0 {
		fmt.Fprintf(stderr, "gslbd geodb build: expected --from FILE.csv --out FILE.mmdb and no other arguments\n")
		return exitUsage
	}
	in, err := os.Open(*from)
	if err != nil {
		fmt.Fprintf(stderr, "gslbd geodb build: %v\n", err)
		return exitFail
	}
	defer in.Close()
	// Build into memory first: a bad CSV must leave --out alone, and the
	// demo-sized databases this is for are small.
	var db bytes.Buffer
	stats, err := geodbpkg.Build(in, &db, geodbpkg.Options{Source: *from, Description: *desc})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	if err := geodbWriteAtomic(*out, db.Bytes()); err != nil {
		fmt.Fprintf(stderr, "gslbd geodb build: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "wrote %s: %s (%d IPv4, %d IPv6)\n", *out, plural(stats.Networks, "network"), stats.IPv4, stats.IPv6)
	return exitOK
}

// geodbWriteAtomic writes data to a temporary file in path's directory and
// renames it over path, so a daemon (or geoip reader) opening path sees
// the old database or the new one, never half of one. The same directory
// keeps the rename on one file system, where it is atomic.
func geodbWriteAtomic(path string, data []byte) error {
	mode := fs.FileMode(0o644) // the daemon may run as another user than the builder
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		done = true
		return err
	}
	done = true
	return nil
}

// geodbLookupResult is what lookup prints: the fields gslbd uses to place
// a client, in a fixed order. Latitude and longitude are null when the
// record has no location, which gslbd cannot place.
type geodbLookupResult struct {
	Network     string   `json:"network"`
	Country     string   `json:"country"`
	Continent   string   `json:"continent"`
	Subdivision string   `json:"subdivision"`
	City        string   `json:"city"`
	Latitude    *float64 `json:"latitude"`
	Longitude   *float64 `json:"longitude"`
}

func geodbLookup(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("geodb lookup", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("db", "", "the City database (.mmdb) to look in")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *file == "" || fs.NArg() != 1 {
		fmt.Fprintf(stderr, "gslbd geodb lookup: expected --db FILE.mmdb and one IP address\n")
		return exitUsage
	}
	addr, err := netip.ParseAddr(fs.Arg(0))
	if err != nil || addr.Zone() != "" {
		fmt.Fprintf(stderr, "gslbd geodb lookup: expected an IP address such as 192.0.2.1 or 2001:db8::1, got %q\n", fs.Arg(0))
		return exitUsage
	}
	res, err := geodbLookupCity(*file, addr)
	if err != nil {
		fmt.Fprintf(stderr, "gslbd geodb lookup: %v\n", err)
		return exitFail
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return exitOK
}

func geodbLookupCity(file string, addr netip.Addr) (*geodbLookupResult, error) {
	// Read whole and checked by type as the daemon loads geoip.city_db,
	// so a file this accepts is one the daemon accepts.
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	r, err := geoip2.OpenBytes(b)
	var unknown geoip2.UnknownDatabaseTypeError
	switch {
	case errors.As(err, &unknown):
		return nil, geodbNotCity(file, unknown.DatabaseType)
	case err != nil:
		return nil, fmt.Errorf("%s is not a MaxMind DB (.mmdb) file: %v", file, err)
	}
	defer r.Close()
	// geoip2 allows City lookups in Country databases too, but those have
	// no location, which is what gslbd needs.
	if t := r.Metadata().DatabaseType; !strings.Contains(t, "City") {
		return nil, geodbNotCity(file, t)
	}
	// The daemon looks IPv4-mapped clients up as IPv4; so does this.
	addr = addr.Unmap()
	c, err := r.City(addr)
	var invalid geoip2.InvalidMethodError
	switch {
	case errors.As(err, &invalid):
		return nil, geodbNotCity(file, invalid.DatabaseType)
	case err != nil:
		return nil, fmt.Errorf("looking up %s in %s: %v", addr, file, err)
	case !c.HasData():
		return nil, fmt.Errorf("%s is not in %s", addr, file)
	}
	res := &geodbLookupResult{
		Network:   c.Traits.Network.String(),
		Country:   c.Country.ISOCode,
		Continent: c.Continent.Code,
		City:      c.City.Names.English,
		Latitude:  c.Location.Latitude,
		Longitude: c.Location.Longitude,
	}
	if len(c.Subdivisions) > 0 {
		res.Subdivision = c.Subdivisions[0].ISOCode
	}
	return res, nil
}

func geodbNotCity(file, dbType string) error {
	return fmt.Errorf("%s is a %q database, not a City database (GeoIP2-City, GeoLite2-City, DBIP-City-Lite or one built by gslbd geodb build)", file, dbType)
}
