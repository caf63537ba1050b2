package gslb

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/gslb/geo"
)

// targets pin client networks and autonomous systems to datacenters or to
// locations, ahead of GeoIP: how operators place offices, mis-located
// ISPs and internal clients.
type targets struct {
	nets []netTarget // longest prefix first
	asns map[uint32]*netTarget
}

type netTarget struct {
	prefix netip.Prefix // for ASN targets, invalid
	asn    uint32
	dcs    []int
	loc    *geo.Location
}

func buildTargets(nets []config.NetworkTarget, asns []config.ASNTarget, dcIndex map[string]int) *targets {
	if len(nets) == 0 && len(asns) == 0 {
		return nil
	}
	t := &targets{asns: map[uint32]*netTarget{}}
	conv := func(ids []string, l *config.Location) ([]int, *geo.Location) {
		var out []int
		for _, id := range ids {
			out = append(out, dcIndex[id])
		}
		if l == nil {
			return out, nil
		}
		return out, &geo.Location{Lat: l.Lat, Lon: l.Lon, Country: l.Country, Continent: l.Continent, Subdivision: l.Subdivision, Found: true}
	}
	for _, n := range nets {
		dcs, loc := conv(n.Datacenters, n.Location)
		t.nets = append(t.nets, netTarget{prefix: n.Prefix, dcs: dcs, loc: loc})
	}
	slices.SortStableFunc(t.nets, func(a, b netTarget) int { return b.prefix.Bits() - a.prefix.Bits() })
	for _, a := range asns {
		dcs, loc := conv(a.Datacenters, a.Location)
		t.asns[a.ASN] = &netTarget{asn: a.ASN, dcs: dcs, loc: loc}
	}
	return t
}

// match finds the target for a client; asn is looked up only when the
// table has ASN entries, since it needs the location.
func (t *targets) match(q *request) *netTarget {
	if t == nil {
		return nil
	}
	for k := range t.nets {
		if t.nets[k].prefix.Contains(q.client) {
			return &t.nets[k]
		}
	}
	if len(t.asns) > 0 {
		if a := q.location().ASN; a != 0 {
			return t.asns[a]
		}
	}
	return nil
}

// narrow returns the scope an answer that matched no target must carry: a
// target inside the prefix the answer would otherwise claim gives other
// clients of that prefix a different answer, so the scope grows to the
// target's length (which may exceed the query's source prefix: RFC 7871
// lets a server say it needed more bits). ASN targets, whose networks are
// not known here, narrow it to the client prefix key.
func (t *targets) narrow(q *request, scope int) int {
	if t == nil {
		return scope
	}
	if len(t.asns) > 0 {
		scope = max(scope, q.keyScope())
	}
	wide, _ := q.client.Prefix(scope)
	for _, n := range t.nets {
		if n.prefix.Bits() > scope && wide.Overlaps(n.prefix) {
			scope = n.prefix.Bits()
		}
	}
	return scope
}

// targetFile is a service's networks_file: its own table, replaced when
// the file changes and kept when a new version does not load.
type targetFile struct {
	path     string
	allowed  []string
	hasASNDB bool
	dcIndex  map[string]int
	cur      atomic.Pointer[targets]
	mu       sync.Mutex // serialises checks
	modTime  time.Time
	size     int64
}

func newTargetFile(path string, allowed []string, hasASNDB bool, dcIndex map[string]int) (*targetFile, error) {
	f := &targetFile{path: path, allowed: allowed, hasASNDB: hasASNDB, dcIndex: dcIndex}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *targetFile) load() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	t, err := config.LoadTargets(f.path, f.allowed, f.hasASNDB)
	if err != nil {
		return err
	}
	built := buildTargets(t.Networks, t.ASN, f.dcIndex)
	f.cur.Store(built)
	// After the store: a reader that sees the new epoch answers from
	// the new table (anscache.go).
	targetFileEpoch.Add(1)
	f.modTime, f.size = st.ModTime(), st.Size()
	return nil
}

// Check reloads the file if it changed. On error the last good table
// keeps serving and the error says why.
func (f *targetFile) Check(log *slog.Logger) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("%s: %w; keeping the last good networks", f.path, err)
	}
	if st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return nil
	}
	if err := f.load(); err != nil {
		f.modTime, f.size = st.ModTime(), st.Size() // report once per version
		return fmt.Errorf("%w; keeping the last good networks", err)
	}
	log.Info("networks file reloaded", "file", f.path)
	return nil
}

// CheckNetworkFiles reloads every service's networks_file that changed.
func (s *Snapshot) CheckNetworkFiles(log *slog.Logger) []error {
	var errs []error
	for _, f := range s.targetFiles {
		if err := f.Check(log); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
