package gslb

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestSipHash24Reference(t *testing.T) {
	// The SipHash paper's vectors: key 00..0f, messages 00..(n-1).
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	if got := sipHash24(&key, nil); got != 0x726fdb47dd0e0e31 {
		t.Errorf("empty message: %#x", got)
	}
	if got := sipHash24(&key, msg); got != 0xa129ca6149be45e5 {
		t.Errorf("15-byte message: %#x", got)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key16(t *testing.T, s string) [16]byte {
	return [16]byte(mustHex(t, s))
}

// The worked examples of RFC 9018 Appendix A, query and reply cookies
// byte for byte.
func TestCookieRFC9018Vectors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keys    []string // current first
		client  string
		query   string
		now     uint32
		verdict cookieVerdict
		fresh   bool
		reply   string
	}{
		{"A.1 learning a new server cookie", []string{"e5e973e5a6b2a43f48e7dc849e37bfcf"}, "198.51.100.100",
			"2464c4abcf10c957", 1559731985, cookieClientOnly, true,
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480"},
		{"A.2 a renewed server cookie 40 minutes later", []string{"e5e973e5a6b2a43f48e7dc849e37bfcf"}, "198.51.100.100",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559734385, cookieValid, true,
			"2464c4abcf10c957010000005cf7a871d4a564a1442aca77"},
		// The request's cookie was made at 1559727985, 1h52m before the
		// reply: past RFC 9018's hour, so stale here (its hash is checked
		// at its own time below); the reply is the vector's.
		{"A.3 another client with reserved bytes set", []string{"e5e973e5a6b2a43f48e7dc849e37bfcf"}, "203.0.113.203",
			"fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", 1559734700, cookieInvalid, true,
			"fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e"},
		{"A.3 at the time it was made", []string{"e5e973e5a6b2a43f48e7dc849e37bfcf"}, "203.0.113.203",
			"fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", 1559727985, cookieValid, false, ""},
		{"A.4 IPv6 with a rolled-over secret", []string{"445536bcd2513298075a5d379663c962", "dd3bdf9344b678b185a6f5cb60fca715"},
			"2001:db8:220:1:59de:d0f4:8769:82b8",
			"22681ab97d52c298010000005cf7c57926556bd0934c72f8", 1559741961, cookieValid, true,
			"22681ab97d52c298010000005cf7c609a6bb79d16625507a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keys [][16]byte
			for _, k := range tc.keys {
				keys = append(keys, key16(t, k))
			}
			j := newCookieJar(keys)
			j.now = func() uint32 { return tc.now }
			client := netip.MustParseAddr(tc.client)
			q := mustHex(t, tc.query)
			v, fresh := j.check(q, client)
			if v != tc.verdict || fresh != tc.fresh {
				t.Fatalf("check = %d fresh %v, want %d fresh %v", v, fresh, tc.verdict, tc.fresh)
			}
			if tc.reply == "" {
				return
			}
			if got := hex.EncodeToString(j.make(nil, q[:8], client)); got != tc.reply {
				t.Errorf("reply cookie %s, want %s", got, tc.reply)
			}
		})
	}
}

func TestCookieCheck(t *testing.T) {
	j := newCookieJar(nil)
	now := uint32(1_700_000_000)
	j.now = func() uint32 { return now }
	a := netip.MustParseAddr("192.0.2.1")
	cc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	good := j.make(nil, cc, a)
	for _, tc := range []struct {
		name  string
		opt   []byte
		from  netip.Addr
		at    uint32
		want  cookieVerdict
		fresh bool
	}{
		{"client only", cc, a, now, cookieClientOnly, true},
		{"too short", cc[:7], a, now, cookieMalformed, false},
		{"server part of 7 bytes", append(append([]byte{}, cc...), 1, 2, 3, 4, 5, 6, 7), a, now, cookieMalformed, false},
		{"longer than 40", make([]byte, 41), a, now, cookieMalformed, false},
		{"valid", good, a, now, cookieValid, false},
		{"valid, from another address", good, netip.MustParseAddr("192.0.2.2"), now, cookieInvalid, true},
		{"valid, from its IPv4-mapped form", good, netip.MustParseAddr("::ffff:192.0.2.1"), now, cookieValid, false},
		{"31 minutes old: renewed", good, a, now + 31*60, cookieValid, true},
		{"61 minutes old: stale", good, a, now + 61*60, cookieInvalid, true},
		{"4 minutes ahead", good, a, now - 4*60, cookieValid, false},
		{"6 minutes ahead", good, a, now - 6*60, cookieInvalid, true},
		{"a server cookie of another length", append(append([]byte{}, good...), 0), a, now, cookieInvalid, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j.now = func() uint32 { return tc.at }
			v, fresh := j.check(tc.opt, tc.from)
			if v != tc.want || fresh != tc.fresh {
				t.Errorf("check = %d fresh %v, want %d fresh %v", v, fresh, tc.want, tc.fresh)
			}
		})
	}
}
