package redisstore

import (
	"encoding/json"
	"testing"

	"github.com/redis/go-redis/v9"
)

// FuzzParseChange feeds arbitrary change-log entries to parseChange: a
// replica reads them from a peer datacenter's Redis, so their fields are
// whatever was written there. It must not panic, and an entry it accepts
// must be safe to render, as parseChange promises: the value a script
// builds from it (the header then the body) is JSON, which Get decodes
// whole (a value that is not would be taken for corrupt and replaced),
// and the header pattern reads it back into exactly the same fields, as a
// resync (valueChange) does.
func FuzzParseChange(f *testing.F) {
	const body = `"id":"1","service":"www.example.test.","client":"81.2.69.0/24","datacenter":"dc-a"}`
	f.Add("put", "s|www.example.test.|81.2.69.0/24", "17", "dc-a", "abc123", "dc-a=17", body, "3600000", "1")
	f.Add("del", "s|www.example.test.|81.2.69.0/24", "18", "dc-b", "-", "dc-a=17;dc-b=18", `"deleted":true}`, "0", "2")
	f.Add("promote", "", "19", "dc-b", "", "", "", "", "3")
	f.Add("put", "k", "0", "dc-a", "d", "dc-a=1", body, "1", "1")            // version 0
	f.Add("put", "k", "01", "dc-a", "d", "dc-a=1", body, "1", "1")           // leading zero
	f.Add("put", "k", "1", `dc"a`, "d", "dc-a=1", body, "1", "1")            // quote in origin
	f.Add("put", "k", "1", "dc-a", "d", "dc-a=0", body, "1", "1")            // vv version 0
	f.Add("put", "k", "1", "dc-a", "d", "dc-a=1", `}`, "1", "1")             // empty object
	f.Add("put", "k", "1", "dc-a", "d", "dc-a=1", `"a":1}garbage`, "1", "1") // trailing bytes
	f.Add("put", "k", "1", "dc-a", "d", "dc-a=1", body, "-5", "1")           // negative TTL
	f.Add("put", "k", "1", "dc-a\n", "d\x00", "dc-a=1", body, "1", "1")      // control characters
	f.Add("rename", "k", "1", "dc-a", "d", "dc-a=1", body, "1", "1")         // unknown op
	f.Fuzz(func(t *testing.T, op, key, v, o, d, vv, b, ttl, n string) {
		m := redis.XMessage{ID: "1700000000000-0", Values: map[string]any{
			"op": op, "key": key, "v": v, "o": o, "d": d, "vv": vv, "body": b, "ttl": ttl, "n": n,
		}}
		c, err := parseChange(m)
		if err != nil {
			return
		}
		if c.N <= 0 || c.Version == "0" || !digits.MatchString(c.Version) {
			t.Fatalf("accepted n %d, version %q", c.N, c.Version)
		}
		if c.Op == "promote" {
			return
		}
		if c.TTL < 0 || len(c.Body) > maxChangeBody || !json.Valid([]byte("{"+c.Body)) {
			t.Fatalf("accepted ttl %d, body %q", c.TTL, c.Body)
		}
		value := `{"version":"` + c.Version + `","origin":"` + c.Origin + `","digest":"` + c.Digest + `","vv":"` + c.VV + `",` + c.Body
		if !json.Valid([]byte(value)) {
			t.Fatalf("accepted change renders as %q, which is not JSON", value)
		}
		back, ok := valueChange(c.Key, value)
		if !ok || back.Version != c.Version || back.Origin != c.Origin || back.Digest != c.Digest || back.VV != c.VV || back.Body != c.Body {
			t.Fatalf("value %q reads back as %+v (ok %t), want the change's fields %+v", value, back, ok, c)
		}
	})
}
