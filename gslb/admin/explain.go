package admin

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb"
)

// SnapshotSource gives the snapshot queries are answered from now.
type SnapshotSource interface {
	Snapshot() *gslb.Snapshot
}

// explain answers GET /api/v1/explain?name=&client=[&type=A][&ecs=false]:
// how a query for name from client would be answered, and why. It is a
// read of configuration and state already visible in the answers, so it
// needs no token.
func (h *Handler) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("name")
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		writeError(w, http.StatusBadRequest, "name: expected a domain name such as www.gslb.example.")
		return
	}
	client, err := netip.ParseAddr(q.Get("client"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "client: expected an IP address such as 81.2.69.142, got "+quote(q.Get("client")))
		return
	}
	qtype := dns.TypeA
	if t := q.Get("type"); t != "" {
		var ok bool
		if qtype, ok = dns.StringToType[strings.ToUpper(t)]; !ok {
			writeError(w, http.StatusBadRequest, "type: expected a DNS type such as A or AAAA, got "+quote(t))
			return
		}
	}
	noECS := false
	switch q.Get("ecs") {
	case "", "true":
	case "false":
		noECS = true
	default:
		writeError(w, http.StatusBadRequest, "ecs: expected true or false, got "+quote(q.Get("ecs")))
		return
	}
	writeJSON(w, http.StatusOK, h.opts.Snapshots.Snapshot().ExplainQuery(name, qtype, client, noECS))
}

func quote(s string) string { return `"` + s + `"` }
