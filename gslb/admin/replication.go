package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// Replication is what the admin API needs of cross-datacenter
// replication. It is declared here, with plain types, so that admin does
// not link the Redis client the replication package uses.
type Replication interface {
	// ReplicationStatus returns mode, role and every peer's checkpoint
	// and lag, JSON-encodable.
	ReplicationStatus(ctx context.Context) any
	// Promote makes this datacenter the active-passive primary after
	// waiting, up to timeout (0: the configured one), for the peers'
	// changes. The result is shown whether or not err is nil.
	Promote(ctx context.Context, timeout time.Duration, force bool) (result any, err error)
}

// Promote failures the API answers with their own status codes; other
// errors are 502.
var (
	// ErrPromoteConflict: another promote is running, or the mode has no
	// roles (409).
	ErrPromoteConflict = errors.New("promote refused")
	// ErrPromoteTimeout: the peers were not fenced or drained in time and
	// the role is unchanged (504).
	ErrPromoteTimeout = errors.New("promote timed out")
)

// registerReplication adds GET /api/v1/replication (no client data: open
// like the status page) and POST /api/v1/replication/promote (a role
// change: token-guarded).
func (h *Handler) registerReplication() {
	if h.opts.Replication == nil {
		return
	}
	h.mux.HandleFunc("GET /api/v1/replication", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		writeJSON(w, http.StatusOK, h.opts.Replication.ReplicationStatus(ctx))
	})
	h.mux.Handle("POST /api/v1/replication/promote", h.Guard(http.HandlerFunc(h.promote)))
}

// promoteRequest is the optional body of a promote.
type promoteRequest struct {
	Timeout string `json:"timeout"`
	Force   bool   `json:"force"`
}

func (h *Handler) promote(w http.ResponseWriter, r *http.Request) {
	var req promoteRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, `body: expected JSON {"timeout": "30s", "force": false}, both optional: `+err.Error())
		return
	}
	var timeout time.Duration
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "timeout: expected a positive duration such as 30s, got "+quote(req.Timeout))
			return
		}
		timeout = d
	}
	res, err := h.opts.Replication.Promote(r.Context(), timeout, req.Force)
	code := http.StatusOK
	switch {
	case err == nil:
		writeJSON(w, code, res)
		return
	case errors.Is(err, ErrPromoteConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrPromoteTimeout):
		code = http.StatusGatewayTimeout
	default:
		code = http.StatusBadGateway
	}
	writeJSON(w, code, map[string]any{"error": err.Error(), "result": res})
}
