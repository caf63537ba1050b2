package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeReplication records what a promote asked for and fails as told.
type fakeReplication struct {
	timeout time.Duration
	force   bool
	err     error
}

func (f *fakeReplication) ReplicationStatus(context.Context) any {
	return map[string]string{"mode": "active-passive", "role": "standby"}
}

func (f *fakeReplication) Promote(_ context.Context, timeout time.Duration, force bool) (any, error) {
	f.timeout, f.force = timeout, force
	return map[string]bool{"promoted": f.err == nil}, f.err
}

func TestReplicationEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name, body  string
		token       string
		err         error
		wantCode    int
		wantTimeout time.Duration
		wantForce   bool
	}{
		{name: "no body", token: "t", wantCode: http.StatusOK},
		{name: "timeout and force", body: `{"timeout": "90s", "force": true}`, token: "t", wantCode: http.StatusOK, wantTimeout: 90 * time.Second, wantForce: true},
		{name: "bad timeout", body: `{"timeout": "soon"}`, token: "t", wantCode: http.StatusBadRequest},
		{name: "unknown field", body: `{"wait": "1s"}`, token: "t", wantCode: http.StatusBadRequest},
		{name: "not drained", token: "t", err: fmt.Errorf("%w: peer dc-a", ErrPromoteTimeout), wantCode: http.StatusGatewayTimeout},
		{name: "busy", token: "t", err: fmt.Errorf("%w: busy", ErrPromoteConflict), wantCode: http.StatusConflict},
		{name: "redis down", token: "t", err: errors.New("connection refused"), wantCode: http.StatusBadGateway},
		{name: "no token", wantCode: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeReplication{err: tc.err}
			h := New(Options{Gatherer: prometheus.NewRegistry(), Replication: f, Token: "t"})
			req := httptest.NewRequest("POST", "/api/v1/replication/promote", strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if tc.wantCode == http.StatusOK && (f.timeout != tc.wantTimeout || f.force != tc.wantForce) {
				t.Errorf("promote asked with timeout %s force %t, want %s %t", f.timeout, f.force, tc.wantTimeout, tc.wantForce)
			}
			if tc.err != nil && !strings.Contains(rec.Body.String(), `"result"`) {
				t.Errorf("a failed promote's body lacks what was done: %s", rec.Body)
			}
		})
	}
	h := New(Options{Gatherer: prometheus.NewRegistry(), Replication: &fakeReplication{}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/replication", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"role": "standby"`) {
		t.Errorf("GET /api/v1/replication: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	New(Options{Gatherer: prometheus.NewRegistry()}).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/replication", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /api/v1/replication without replication: %d, want 404", rec.Code)
	}
}
