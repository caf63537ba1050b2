package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIAuth: every endpoint that writes or reveals client data refuses
// a missing or wrong token with 401 and changes nothing; the read
// endpoints that expose nothing personal stay open.
func TestAPIAuth(t *testing.T) {
	p, b := newHealthEndpoint(t), newHealthEndpoint(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(fmt.Sprintf(healthConfig, p.Listener.Addr(), b.Listener.Addr()),
		"http: {allow_unauthenticated_loopback: true}", "http: {token_file: token}\nsessions: {store: memory}", 1)
	cfg = strings.Replace(cfg, "ttl: 30}", "ttl: 30, sticky: true}", 1)
	d := startDaemon(t, writeConfig(t, dir, cfg))
	base := "http://" + d.http
	guarded := []struct{ method, path, body string }{
		{"POST", "/api/v1/reload", ""},
		{"POST", "/api/v1/datacenters/primary/override", `{"state":"down","reason":"x"}`},
		{"POST", "/api/v1/datacenters/primary/endpoints/192.0.2.1/override", `{"state":"down","reason":"x"}`},
		{"GET", "/api/v1/sessions?client=198.51.100.7&service=www.h.test.", ""},
		{"DELETE", "/api/v1/sessions?client=198.51.100.7&service=www.h.test.", ""},
		{"POST", "/api/v1/drills", `{"service":"www.h.test.","fail":"primary","probes":["1.2.3.4"],"mode":"live"}`},
	}
	for _, g := range guarded {
		for _, auth := range []string{"", "Bearer wrong"} {
			req, _ := http.NewRequest(g.method, base+g.path, strings.NewReader(g.body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: got %d, want 401", g.method, g.path, auth, resp.StatusCode)
			}
		}
	}
	// Nothing changed: primary still answers, no override, no drill ran.
	if a := d.exchange(t, "udp", "www.h.test.", 1); !strings.Contains(a.Answer[0].String(), "192.0.2.1") {
		t.Errorf("after refused writes: %v", a.Answer)
	}
	if o := overrideOf(t, d, "primary"); o != nil {
		t.Errorf("override after refused writes: %v", o)
	}
	if _, hist := httpDo(t, "GET", base+"/api/v1/drills", ""); strings.Contains(hist, `"id"`) {
		t.Errorf("a refused drill ran: %s", hist)
	}
	for _, open := range []string{"/metrics", "/healthz", "/readyz", "/api/v1/status", "/api/v1/drills",
		"/api/v1/explain?name=www.h.test.&client=203.0.113.7"} {
		if code, body := httpDo(t, "GET", base+open, ""); code != 200 {
			t.Errorf("GET %s without a token: got %d %s, want 200", open, code, trim(body))
		}
	}
	// With the token, the session of a client that asked is readable.
	askFrom := func() { d.exchange(t, "udp", "www.h.test.", 1) }
	askFrom()
	code, body := httpDo(t, "GET", base+"/api/v1/sessions?client=127.0.0.1&service=www.h.test.", "Bearer s3cret-token")
	if code != 200 || !strings.Contains(body, `"datacenter": "primary"`) {
		t.Errorf("session with the token: %d %s", code, body)
	}
}
