package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gslbd/gslbd/gslb/drill"
)

// Reloader reloads the configuration and reports the outcome; the error
// lists every problem when the new configuration was refused.
type Reloader interface {
	Reload(ctx context.Context) error
}

// ReloaderFunc adapts a function to Reloader.
type ReloaderFunc func(ctx context.Context) error

// Reload calls f.
func (f ReloaderFunc) Reload(ctx context.Context) error { return f(ctx) }

// Options wire the handlers to the daemon.
type Options struct {
	Gatherer  prometheus.Gatherer
	Reloader  Reloader
	Snapshots SnapshotSource
	Health    Health
	Sessions  Sessions
	Drills    *drill.Runner
	// Replication, if not nil, serves /api/v1/replication.
	Replication Replication
	// Token guards every write; empty means writes are refused unless
	// AllowUnauthenticated is set (which config permits only on loopback).
	Token                string
	AllowUnauthenticated bool
	// Page feeds the status page at GET /.
	Page PageOptions
	// ReadyDetail, if not nil, adds where answers come from to /readyz.
	ReadyDetail func() map[string]any
}

// Handler serves the admin API.
type Handler struct {
	mux   *http.ServeMux
	ready atomic.Bool
	opts  Options
	guard atomic.Pointer[guard]
}

// guard is swapped whole on reload, so a token rotation never pairs the
// new token with the old policy.
type guard struct {
	token                bool
	allowUnauthenticated bool
	// sum is compared instead of the token itself so the comparison takes
	// the same time whatever the lengths involved.
	sum [sha256.Size]byte
}

// New returns the admin handler; it reports not ready until SetReady.
func New(opts Options) *Handler {
	h := &Handler{mux: http.NewServeMux(), opts: opts}
	h.SetToken(opts.Token, opts.AllowUnauthenticated)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.Handle("POST /api/v1/reload", h.Guard(http.HandlerFunc(h.reload)))
	if opts.Snapshots != nil {
		h.mux.HandleFunc("GET /api/v1/explain", h.explain)
	}
	h.registerHealth()
	h.registerSessions()
	h.registerDrills()
	h.registerReplication()
	h.registerPage()
	return h
}

// Handle registers a route; writes must be wrapped in Guard.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// SetToken replaces the bearer token (a reload may rotate it).
func (h *Handler) SetToken(token string, allowUnauthenticated bool) {
	g := &guard{token: token != "", allowUnauthenticated: allowUnauthenticated}
	if token != "" {
		g.sum = sha256.Sum256([]byte(token))
	}
	h.guard.Store(g)
}

// SetReady marks the daemon ready for traffic; it stays ready after that.
func (h *Handler) SetReady() { h.ready.Store(true) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) readyz(w http.ResponseWriter, _ *http.Request) {
	if !h.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	body := map[string]any{"status": "ready"}
	if h.opts.ReadyDetail != nil {
		for k, v := range h.opts.ReadyDetail() {
			body[k] = v
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// Guard admits a request that carries the configured bearer token, or any
// request when unauthenticated writes were explicitly allowed.
func (h *Handler) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := h.guard.Load()
		if !g.token {
			if g.allowUnauthenticated {
				next.ServeHTTP(w, r)
				return
			}
			writeError(w, http.StatusForbidden, "writes are disabled: set http.token_file (or http.allow_unauthenticated_loopback on a loopback listener)")
			return
		}
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		sum := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(sum[:], g.sum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gslbd"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ReloadResult is the body of POST /api/v1/reload.
type ReloadResult struct {
	Status string   `json:"status"`
	Errors []string `json:"errors,omitempty"`
}

func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	err := h.opts.Reloader.Reload(r.Context())
	if err == nil {
		writeJSON(w, http.StatusOK, ReloadResult{Status: "ok"})
		return
	}
	res := ReloadResult{Status: "error"}
	for _, e := range unjoin(err) {
		res.Errors = append(res.Errors, e.Error())
	}
	writeJSON(w, http.StatusUnprocessableEntity, res)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
