package health

import (
	"math"
	"testing"
)

// FuzzParseReport feeds arbitrary health response bodies to parseReport,
// which reads bytes any endpoint (or whatever answers on its address)
// chooses. It must not panic; each figure is NaN (not reported) or a
// finite non-negative number, so that scoring never sees a negative load
// or an infinity; and whitespace around the body changes nothing. (Member
// names match case-insensitively, as encoding/json does: "LOAD" is read.)
func FuzzParseReport(f *testing.F) {
	for _, seed := range []string{
		`{"status":"ok"}`,
		`{"load":0.42,"latency":12.5}`,
		`  {"load": 1e308, "latency": 0}  `,
		`{"load":-1,"latency":-0.5}`,
		`{"load":"high"}`,
		`{"load":1e999}`,
		`{"load":null,"latency":3}`,
		`{"load":0.1,"load":0.9}`,
		`{"load":0.5`,
		`OK`,
		`[1,2,3]`,
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		load, latency := parseReport(body)
		for name, v := range map[string]float64{"load": load, "latency": latency} {
			if !math.IsNaN(v) && (v < 0 || math.IsInf(v, 0)) {
				t.Fatalf("%s %v from %q: want NaN or finite and ≥ 0", name, v, body)
			}
		}
		padded := append(append([]byte(" \n\t"), body...), ' ', '\r', '\n')
		l2, lat2 := parseReport(padded)
		if !same(load, l2) || !same(latency, lat2) {
			t.Fatalf("%q gives %v, %v but with whitespace around it %v, %v", body, load, latency, l2, lat2)
		}
	})
}

func same(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
