package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gslbd/gslbd/gslb/drill"
)

// registerDrills adds POST /api/v1/drills (token-guarded: a live drill
// moves real answers) and GET /api/v1/drills (the history; probe clients
// are the operator's own, not client data).
func (h *Handler) registerDrills() {
	if h.opts.Drills == nil {
		return
	}
	h.mux.Handle("POST /api/v1/drills", h.Guard(http.HandlerFunc(h.runDrill)))
	h.mux.HandleFunc("GET /api/v1/drills", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"drills": h.opts.Drills.History()})
	})
}

func (h *Handler) runDrill(w http.ResponseWriter, r *http.Request) {
	var req drill.Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: expected JSON {\"service\", \"fail\", \"probes\": [...], \"mode\": \"dry-run|live\"}: "+err.Error())
		return
	}
	rep, err := h.opts.Drills.Run(r.Context(), req)
	switch {
	case errors.Is(err, drill.ErrBusy):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}
