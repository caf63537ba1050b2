package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeFleetHealth is a Health that records who set an override.
type fakeFleetHealth struct{ by, reason string }

func (f *fakeFleetHealth) StatusJSON() any { return map[string]any{} }

func (f *fakeFleetHealth) Override(_, _, _, reason string) error {
	f.reason = reason
	return nil
}

func (f *fakeFleetHealth) OverrideBy(_, _, _, reason, by string) error {
	f.reason, f.by = reason, by
	return nil
}

// TestReadyDetailAndOverrideBy: /readyz carries where answers come from,
// and an override names who set it: the request's by, else the client.
func TestReadyDetailAndOverrideBy(t *testing.T) {
	fh := &fakeFleetHealth{}
	h := New(Options{Gatherer: prometheus.NewRegistry(), Health: fh, AllowUnauthenticated: true,
		ReadyDetail: func() map[string]any { return map[string]any{"view": "grace"} }})
	do := func(method, path, body string) (int, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if code, body := do("GET", "/readyz", ""); code != http.StatusServiceUnavailable || strings.Contains(body, "grace") {
		t.Errorf("starting: got %d %s", code, body)
	}
	h.SetReady()
	if code, body := do("GET", "/readyz", ""); code != 200 || !strings.Contains(body, `"view": "grace"`) || !strings.Contains(body, `"status": "ready"`) {
		t.Errorf("ready: got %d %s", code, body)
	}
	if code, body := do("POST", "/api/v1/datacenters/a/override", `{"state":"down","reason":"r","by":"alice"}`); code != 200 || fh.by != "alice" {
		t.Errorf("override with by: got %d %s, by %q", code, body, fh.by)
	}
	if code, _ := do("POST", "/api/v1/datacenters/a/override", `{"state":"down","reason":"r2"}`); code != 200 || !strings.HasPrefix(fh.by, "api client 192.0.2.1:") {
		t.Errorf("override without by: got %d, by %q, want the client's address", code, fh.by)
	}
}
