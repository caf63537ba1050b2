package admin

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Sessions is what the admin API needs of client affinity.
type Sessions interface {
	// SessionJSON returns the stored session as a JSON-encodable value,
	// or found=false.
	SessionJSON(ctx context.Context, service string, client netip.Prefix) (v any, found bool, err error)
	DeleteSession(ctx context.Context, service string, client netip.Prefix) error
	// KeyPrefix is the client prefix a session is keyed on.
	KeyPrefix(client netip.Addr) netip.Prefix
}

// registerSessions adds GET and DELETE /api/v1/sessions?client=&service=.
// Both need the token: sessions are about clients, and reading them is as
// sensitive as changing them.
func (h *Handler) registerSessions() {
	if h.opts.Sessions == nil {
		return
	}
	h.mux.Handle("GET /api/v1/sessions", h.Guard(http.HandlerFunc(h.session)))
	h.mux.Handle("DELETE /api/v1/sessions", h.Guard(http.HandlerFunc(h.session)))
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	client, err := netip.ParseAddr(q.Get("client"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "client: expected an IP address, got "+quote(q.Get("client")))
		return
	}
	service := strings.ToLower(dns.Fqdn(q.Get("service")))
	if _, ok := dns.IsDomainName(service); !ok || q.Get("service") == "" {
		writeError(w, http.StatusBadRequest, "service: expected a service name such as www.gslb.example.")
		return
	}
	prefix := h.opts.Sessions.KeyPrefix(client.Unmap())
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if r.Method == http.MethodDelete {
		if err := h.opts.Sessions.DeleteSession(ctx, service, prefix); err != nil {
			writeError(w, http.StatusBadGateway, "deleting the session: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "deleted", "service": service, "client_prefix": prefix.String()})
		return
	}
	v, found, err := h.opts.Sessions.SessionJSON(ctx, service, prefix)
	switch {
	case err != nil && !errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusBadGateway, "reading the session: "+err.Error())
	case err != nil:
		writeError(w, http.StatusGatewayTimeout, "the session store did not answer in time")
	case !found:
		writeError(w, http.StatusNotFound, "no session for "+prefix.String()+" at "+service)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}
