package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// Health is what the admin API needs of health checking: the status of
// everything, and operator overrides.
type Health interface {
	// Status returns a JSON-encodable view of every datacenter and endpoint.
	StatusJSON() any
	Override(datacenter, endpoint, state, reason string) error
}

// OverriderBy is a Health that records who set an override.
type OverriderBy interface {
	OverrideBy(datacenter, endpoint, state, reason, by string) error
}

// OverrideRequest is the body of an override: state is up, down or auto.
type OverrideRequest struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
	// By names who set it, where the fleet keeps that; optional.
	By string `json:"by,omitempty"`
}

func (h *Handler) registerHealth() {
	if h.opts.Health == nil {
		return
	}
	h.mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"time":   time.Now().UTC(),
			"ready":  h.ready.Load(),
			"health": h.opts.Health.StatusJSON(),
		})
	})
	h.mux.Handle("POST /api/v1/datacenters/{dc}/override", h.Guard(http.HandlerFunc(h.override)))
	h.mux.Handle("POST /api/v1/datacenters/{dc}/endpoints/{endpoint}/override", h.Guard(http.HandlerFunc(h.override)))
}

// override forces a datacenter or an endpoint up or down (drain), or back
// to automatic; the next answer reflects it.
func (h *Handler) override(w http.ResponseWriter, r *http.Request) {
	var req OverrideRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: expected JSON {\"state\": \"up|down|auto\", \"reason\": \"...\"}: "+err.Error())
		return
	}
	req.State = strings.ToLower(req.State)
	if req.State != "up" && req.State != "down" && req.State != "auto" {
		writeError(w, http.StatusBadRequest, "state: expected up, down or auto, got "+quote(req.State))
		return
	}
	if req.State != "auto" && strings.TrimSpace(req.Reason) == "" {
		writeError(w, http.StatusBadRequest, "reason: required, so the next operator knows why")
		return
	}
	var err error
	if ob, ok := h.opts.Health.(OverriderBy); ok {
		by := req.By
		if by == "" {
			by = "api client " + r.RemoteAddr
		}
		err = ob.OverrideBy(r.PathValue("dc"), r.PathValue("endpoint"), req.State, req.Reason, by)
	} else {
		err = h.opts.Health.Override(r.PathValue("dc"), r.PathValue("endpoint"), req.State, req.Reason)
	}
	if err != nil {
		code := http.StatusBadRequest
		if strings.Contains(err.Error(), "no datacenter") || strings.Contains(err.Error(), "has no endpoint") {
			code = http.StatusNotFound
		}
		writeError(w, code, strings.TrimPrefix(err.Error(), "health: "))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "state": req.State})
}
