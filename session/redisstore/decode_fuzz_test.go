package redisstore

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/gslbd/gslbd/session"
)

// FuzzDecode feeds arbitrary stored values to decode: what a GET returns
// is whatever any client of the same Redis wrote under the key, another
// version of gslbd or a person with redis-cli. It must not panic; it
// either refuses the value as session.ErrCorrupt, so that the caller
// replaces it, or returns a session for exactly the key asked about, with
// a datacenter, that encodes and decodes back to the same.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"id":"1","service":"www.example.test.","client":"81.2.69.0/24","datacenter":"dc-a","created":"2026-01-02T03:04:05Z","last_accessed":"2026-01-02T03:04:05Z"}`,
		`{"service":"www.example.test.","client":"81.2.69.0/24","datacenter":"dc-a","displaced_from":"dc-b","data":{"k":"v"},"version":"7","future_field":[1,2]}`,
		`{"service":"www.example.test.","client":"81.2.69.0/24"}`,
		`{"service":"other.example.test.","client":"81.2.69.0/24","datacenter":"dc-a"}`,
		`{"service":"www.example.test.","client":"81.2.69.7/24","datacenter":"dc-a"}`,
		`{"service":"www.example.test.","client":"not a prefix","datacenter":"dc-a"}`,
		`null`, `{}`, `[]`, `"string"`, ``,
	} {
		f.Add([]byte(seed))
	}
	k := session.Key{Service: "www.example.test.", Client: netip.MustParsePrefix("81.2.69.0/24")}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decode(b, k)
		if err != nil {
			if !errors.Is(err, session.ErrCorrupt) {
				t.Fatalf("%q: error %v is not ErrCorrupt", b, err)
			}
			return
		}
		if s.Key() != k || s.Datacenter == "" {
			t.Fatalf("%q: decoded %+v for key %v", b, s, k)
		}
		again, err := encode(s)
		if err != nil {
			t.Fatalf("%q: decoded %+v does not encode: %v", b, s, err)
		}
		s2, err := decode(again, k)
		if err != nil || s2.Datacenter != s.Datacenter || s2.ID != s.ID || s2.Version != s.Version || s2.DisplacedFrom != s.DisplacedFrom {
			t.Fatalf("%q: round trip %s gives %+v, %v; want %+v", b, again, s2, err, s)
		}
	})
}
