package acme

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Record is one challenge TXT record.
type Record struct {
	Name    string    `json:"name"` // lowercase, fully qualified
	Txt     []string  `json:"txt"`
	TTL     uint32    `json:"ttl"`
	Expires time.Time `json:"expires"`
}

// RR returns the record as served.
func (r Record) RR() dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: r.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: r.TTL},
		Txt: slices.Clone(r.Txt)}
}

// same reports whether r and o are the same RR: owner and RDATA, not TTL
// (RFC 2136 section 1.1.1).
func (r Record) same(o Record) bool { return r.Name == o.Name && slices.Equal(r.Txt, o.Txt) }

// RRs returns the records as served.
func RRs(recs []Record) []dns.RR {
	out := make([]dns.RR, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.RR())
	}
	return out
}

// Live returns the records that have not expired at now, in a new slice.
func Live(recs []Record, now time.Time) []Record {
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		if r.Expires.After(now) {
			out = append(out, r)
		}
	}
	return out
}

// Store keeps the records. Implementations are safe for concurrent use.
type Store interface {
	// Load returns the stored records, expired ones possibly included.
	Load(ctx context.Context) ([]Record, error)
	// Update reads the stored records, calls apply with them and stores
	// what it returns, as one transaction: when apply fails, or another
	// writer changed the records meanwhile and the retry fails, nothing
	// is stored. It returns what was stored.
	Update(ctx context.Context, apply func(cur []Record) ([]Record, error)) ([]Record, error)
}

// FileStore keeps the records in one JSON file, replaced atomically (a
// temporary file renamed over it), so a crash leaves the old set or the
// new one, never a torn file.
type FileStore struct {
	path string
	mu   sync.Mutex
}

// StateFile is the file's name in the state directory.
const StateFile = "acme-records.json"

// NewFileStore returns a store in dir, which must exist.
func NewFileStore(dir string) *FileStore { return &FileStore{path: filepath.Join(dir, StateFile)} }

type fileFormat struct {
	Records []Record `json:"records"`
}

// Load implements Store; a missing file is an empty set.
func (f *FileStore) Load(context.Context) ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read()
}

func (f *FileStore) read() ([]Record, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("acme: reading %s: %w", f.path, err)
	}
	var ff fileFormat
	if err := json.Unmarshal(b, &ff); err != nil {
		return nil, fmt.Errorf("acme: %s is not a record file: %w", f.path, err)
	}
	return ff.Records, nil
}

// Update implements Store.
func (f *FileStore) Update(_ context.Context, apply func([]Record) ([]Record, error)) ([]Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.read()
	if err != nil {
		return nil, err
	}
	next, err := apply(cur)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(fileFormat{Records: next}, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(f.path, b); err != nil {
		return nil, fmt.Errorf("acme: writing %s: %w", f.path, err)
	}
	return next, nil
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".acme-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	// Synced before the rename, or a power loss could leave the new name
	// pointing at an empty file.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the rename itself, durable
		d.Close()
	}
	return nil
}
