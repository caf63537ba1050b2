package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// challengePrefix is the label DNS-01 puts before the name validated
// (RFC 8555 section 8.4).
const challengePrefix = "_acme-challenge."

// maxTxtBytes bounds one record's strings: a challenge is a 43-byte
// digest, and the bound keeps a key holder from filling the store.
const maxTxtBytes = 512

// storeTimeout bounds one update's round trip to the store.
const storeTimeout = 5 * time.Second

// Settings are what a reload may change.
type Settings struct {
	// Zones are the served zone origins (lowercase, fully qualified).
	Zones []string
	// KeyZones maps a key name to the zones it may update; a key without
	// an entry, or with an empty list, may update every zone.
	KeyZones map[string][]string
	MaxTTL   uint32
	Lifetime time.Duration
	// MaxPerName and MaxTotal cap the records at one name and in all.
	MaxPerName, MaxTotal int
	// Static reports names the configuration gives data; updates there
	// are refused. Nil: none.
	Static func(name string) bool
}

// Handler applies UPDATE messages to a Store. It implements gslb.Updater.
type Handler struct {
	store    Store
	settings atomic.Pointer[Settings]
	onChange func([]Record)
	log      *slog.Logger
	now      func() time.Time
	// mu orders this instance's updates, so OnChange sees them in the
	// order they were stored.
	mu      sync.Mutex
	metrics metrics
	lastLog atomic.Int64 // unix seconds of the last refusal logged
}

// Options build a Handler.
type Options struct {
	Store Store
	// OnChange receives the live records after every successful update,
	// before the response is sent, so a client that reads NOERROR can
	// query the record at once.
	OnChange   func([]Record)
	Registerer prometheus.Registerer
	Log        *slog.Logger
	Now        func() time.Time // default time.Now
}

type metrics struct {
	updates *prometheus.CounterVec
	records prometheus.Gauge
	errors  prometheus.Counter
}

// results are the label values of gslb_acme_updates_total: the rcode
// answered, lowercase.
var results = []int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeRefused, dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNXRrset, dns.RcodeNotAuth, dns.RcodeNotZone}

// New returns a Handler; Configure must be called before it answers.
func New(o Options) *Handler {
	h := &Handler{store: o.Store, onChange: o.OnChange, log: o.Log, now: o.Now}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.onChange == nil {
		h.onChange = func([]Record) {}
	}
	reg := o.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	h.metrics = metrics{
		updates: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "acme", Name: "updates_total",
			Help: "RFC 2136 UPDATE messages, by the rcode answered (noerror: applied).",
		}, []string{"result"}),
		records: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "gslb", Subsystem: "acme", Name: "records",
			Help: "ACME challenge TXT records this instance serves.",
		}),
		errors: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "acme", Name: "store_errors_total",
			Help: "Failed reads and writes of the ACME record store (file or Redis).",
		}),
	}
	for _, rc := range results {
		h.metrics.updates.WithLabelValues(resultLabel(rc))
	}
	return h
}

func resultLabel(rc int) string { return strings.ToLower(dns.RcodeToString[rc]) }

// Configure replaces the settings; safe while serving.
func (h *Handler) Configure(s Settings) { h.settings.Store(&s) }

// Served reports the records now served, for the records gauge; the
// daemon calls it after every re-read of the store.
func (h *Handler) Served(recs []Record) { h.metrics.records.Set(float64(len(recs))) }

// StoreError counts a failed background read of the store.
func (h *Handler) StoreError() { h.metrics.errors.Inc() }

// rcodeError stops an update with an rcode.
type rcodeError struct {
	rcode int
	why   string
}

func (e *rcodeError) Error() string { return dns.RcodeToString[e.rcode] + ": " + e.why }

func refuse(rcode int, format string, args ...any) error {
	return &rcodeError{rcode: rcode, why: fmt.Sprintf(format, args...)}
}

// Update implements gslb.Updater.
func (h *Handler) Update(r *dns.Msg, key string, tsigErr error, src netip.Addr) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = false
	zone, n, err := h.update(r, key, tsigErr)
	m.Rcode = dns.RcodeSuccess
	if err != nil {
		var re *rcodeError
		if errors.As(err, &re) {
			m.Rcode = re.rcode
		} else {
			m.Rcode = dns.RcodeServerFailure
			h.metrics.errors.Inc()
		}
		h.refusal("ACME update not applied", "rcode", dns.RcodeToString[m.Rcode], "zone", zone, "key", key,
			"client", src.String(), "reason", err.Error())
	} else {
		h.log.Info("ACME update applied", "zone", zone, "key", key, "client", src.String(), "changes", n)
	}
	h.metrics.updates.WithLabelValues(resultLabel(m.Rcode)).Inc()
	return m
}

// refusal logs at most one line a second: an unauthenticated client can
// send refusals as fast as it likes.
func (h *Handler) refusal(msg string, args ...any) {
	now := h.now().Unix()
	last := h.lastLog.Load()
	if now > last && h.lastLog.CompareAndSwap(last, now) {
		h.log.Warn(msg, args...)
	}
}

func (h *Handler) update(r *dns.Msg, key string, tsigErr error) (string, int, error) {
	s := h.settings.Load()
	switch {
	case s == nil:
		return "", 0, refuse(dns.RcodeRefused, "updates are not configured")
	case key == "":
		return "", 0, refuse(dns.RcodeNotAuth, "the update is not signed with TSIG")
	case tsigErr != nil:
		return "", 0, refuse(dns.RcodeNotAuth, "TSIG: %v", tsigErr)
	case len(r.Question) != 1:
		return "", 0, refuse(dns.RcodeFormatError, "the zone section holds %d entries, want 1", len(r.Question))
	}
	q := r.Question[0]
	zone := dns.CanonicalName(q.Name)
	switch {
	case q.Qtype != dns.TypeSOA:
		return zone, 0, refuse(dns.RcodeFormatError, "the zone section's type is %s, want SOA", dns.TypeToString[q.Qtype])
	case q.Qclass != dns.ClassINET || !slices.Contains(s.Zones, zone):
		return zone, 0, refuse(dns.RcodeNotAuth, "%s is not a zone served here", zone)
	}
	if allowed := s.KeyZones[key]; len(allowed) > 0 && !slices.Contains(allowed, zone) {
		return zone, 0, refuse(dns.RcodeNotAuth, "key %s may not update %s", key, zone)
	}
	// Everything that does not depend on the stored records is checked
	// before the store is touched (RFC 2136 section 3.4.1, the prescan).
	for _, rr := range r.Answer {
		if err := s.checkName(zone, rr, "prerequisite"); err != nil {
			return zone, 0, err
		}
		if rr.Header().Ttl != 0 {
			return zone, 0, refuse(dns.RcodeFormatError, "prerequisite %s has TTL %d, want 0", rr.Header().Name, rr.Header().Ttl)
		}
	}
	for _, rr := range r.Ns {
		if err := s.prescan(zone, rr); err != nil {
			return zone, 0, err
		}
	}
	if len(r.Ns) == 0 && len(r.Answer) == 0 {
		return zone, 0, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	stored, err := h.store.Update(ctx, func(cur []Record) ([]Record, error) {
		cur = Live(cur, h.now())
		if err := prerequisites(cur, r.Answer); err != nil {
			return nil, err
		}
		return s.apply(cur, r.Ns, h.now())
	})
	if err != nil {
		return zone, 0, err
	}
	live := Live(stored, h.now())
	h.metrics.records.Set(float64(len(live)))
	h.onChange(live)
	return zone, len(r.Ns), nil
}

// checkName admits only challenge names of the zone, in plain form.
func (s *Settings) checkName(zone string, rr dns.RR, section string) error {
	name := dns.CanonicalName(rr.Header().Name)
	if !dns.IsSubDomain(zone, name) {
		return refuse(dns.RcodeNotZone, "%s %s is outside the zone %s", section, name, zone)
	}
	rest, ok := strings.CutPrefix(name, challengePrefix)
	// Escapes would let two spellings name one owner; no ACME client
	// sends them.
	if !ok || !dns.IsSubDomain(zone, rest) || strings.ContainsRune(name, '\\') {
		return refuse(dns.RcodeRefused, "%s %s is not an _acme-challenge. name", section, name)
	}
	if s.Static != nil && s.Static(name) {
		return refuse(dns.RcodeRefused, "%s %s has records in the configuration", section, name)
	}
	return nil
}

// prescan checks one update RR (RFC 2136 section 3.4.1.3), narrowed to
// what ACME clients send: TXT at challenge names, added, deleted one by
// one, or deleted as a set.
func (s *Settings) prescan(zone string, rr dns.RR) error {
	h := rr.Header()
	if err := s.checkName(zone, rr, "update"); err != nil {
		return err
	}
	switch h.Class {
	case dns.ClassINET:
		txt, ok := rr.(*dns.TXT)
		if h.Rrtype != dns.TypeTXT || !ok {
			return refuse(dns.RcodeRefused, "update adds a %s record; only TXT may be added", dns.TypeToString[h.Rrtype])
		}
		return checkTxt(txt)
	case dns.ClassANY:
		if h.Ttl != 0 || h.Rdlength != 0 {
			return refuse(dns.RcodeFormatError, "RRset deletion for %s must have TTL 0 and no data", h.Name)
		}
		if h.Rrtype != dns.TypeTXT && h.Rrtype != dns.TypeANY {
			return refuse(dns.RcodeRefused, "update deletes %s records; only TXT may be deleted", dns.TypeToString[h.Rrtype])
		}
	case dns.ClassNONE:
		if h.Ttl != 0 {
			return refuse(dns.RcodeFormatError, "RR deletion for %s must have TTL 0", h.Name)
		}
		txt, ok := rr.(*dns.TXT)
		if h.Rrtype != dns.TypeTXT || !ok {
			return refuse(dns.RcodeRefused, "update deletes a %s record; only TXT may be deleted", dns.TypeToString[h.Rrtype])
		}
		return checkTxt(txt)
	default:
		return refuse(dns.RcodeFormatError, "update RR for %s has class %s", h.Name, dns.ClassToString[h.Class])
	}
	return nil
}

func checkTxt(txt *dns.TXT) error {
	n := 0
	for _, s := range txt.Txt {
		n += len(s)
	}
	if len(txt.Txt) == 0 || n > maxTxtBytes {
		return refuse(dns.RcodeRefused, "TXT at %s holds %d strings of %d bytes; want 1 or more, up to %d bytes",
			txt.Hdr.Name, len(txt.Txt), n, maxTxtBytes)
	}
	return nil
}

// prerequisites evaluates RFC 2136 section 3.2 against the stored
// records. Names are challenge names (checked before), where only TXT
// records exist, so every form can be evaluated exactly.
func prerequisites(cur []Record, prereqs []dns.RR) error {
	// Value-dependent prerequisites are compared as whole RRsets, so they
	// are gathered first (section 3.2.5).
	want := map[string][]Record{}
	var order []string
	for _, rr := range prereqs {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		has := recordsAt(cur, name)
		switch h.Class {
		case dns.ClassANY:
			if h.Rdlength != 0 {
				return refuse(dns.RcodeFormatError, "prerequisite for %s has data with class ANY", name)
			}
			if h.Rrtype == dns.TypeANY && len(has) == 0 {
				return refuse(dns.RcodeNameError, "prerequisite: %s is not in use", name)
			}
			if h.Rrtype != dns.TypeANY && (h.Rrtype != dns.TypeTXT || len(has) == 0) {
				return refuse(dns.RcodeNXRrset, "prerequisite: no %s RRset at %s", dns.TypeToString[h.Rrtype], name)
			}
		case dns.ClassNONE:
			if h.Rdlength != 0 {
				return refuse(dns.RcodeFormatError, "prerequisite for %s has data with class NONE", name)
			}
			if h.Rrtype == dns.TypeANY && len(has) > 0 {
				return refuse(dns.RcodeYXDomain, "prerequisite: %s is in use", name)
			}
			if h.Rrtype == dns.TypeTXT && len(has) > 0 {
				return refuse(dns.RcodeYXRrset, "prerequisite: a TXT RRset exists at %s", name)
			}
		case dns.ClassINET:
			txt, ok := rr.(*dns.TXT)
			if !ok {
				return refuse(dns.RcodeNXRrset, "prerequisite: no %s RRset at %s", dns.TypeToString[h.Rrtype], name)
			}
			key := name
			if _, seen := want[key]; !seen {
				order = append(order, key)
			}
			want[key] = addOnce(want[key], Record{Name: name, Txt: txt.Txt})
		default:
			return refuse(dns.RcodeFormatError, "prerequisite for %s has class %s", name, dns.ClassToString[h.Class])
		}
	}
	for _, name := range order {
		has := recordsAt(cur, name)
		if len(has) != len(want[name]) {
			return refuse(dns.RcodeNXRrset, "prerequisite: the TXT RRset at %s differs", name)
		}
		for _, w := range want[name] {
			if !slices.ContainsFunc(has, w.same) {
				return refuse(dns.RcodeNXRrset, "prerequisite: the TXT RRset at %s differs", name)
			}
		}
	}
	return nil
}

func addOnce(set []Record, r Record) []Record {
	if slices.ContainsFunc(set, r.same) {
		return set
	}
	return append(set, r)
}

func recordsAt(cur []Record, name string) []Record {
	var out []Record
	for _, r := range cur {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

// apply performs the prescanned updates in order (RFC 2136 section
// 3.4.2) on a copy of cur and enforces the caps on the result.
func (s *Settings) apply(cur []Record, updates []dns.RR, now time.Time) ([]Record, error) {
	next := slices.Clone(cur)
	for _, rr := range updates {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		switch h.Class {
		case dns.ClassINET:
			rec := Record{Name: name, Txt: slices.Clone(rr.(*dns.TXT).Txt), TTL: min(h.Ttl, s.MaxTTL), Expires: now.Add(s.Lifetime)}
			// A duplicate refreshes TTL and lifetime: a client retrying
			// an add gets a record that lasts from its last attempt.
			if i := slices.IndexFunc(next, rec.same); i >= 0 {
				next[i] = rec
			} else {
				next = append(next, rec)
			}
			// One TTL for the RRset (RFC 2181 section 5.2): the last one
			// added, as BIND does.
			for i := range next {
				if next[i].Name == name {
					next[i].TTL = rec.TTL
				}
			}
		case dns.ClassANY:
			next = slices.DeleteFunc(next, func(r Record) bool { return r.Name == name })
		case dns.ClassNONE:
			del := Record{Name: name, Txt: rr.(*dns.TXT).Txt}
			next = slices.DeleteFunc(next, del.same)
		}
	}
	// A cap refuses growth only: after a reload lowered it, deleting
	// what is over it must still work.
	if len(next) > s.MaxTotal && len(next) > len(cur) {
		return nil, refuse(dns.RcodeRefused, "the update would keep %d records, more than acme.max_records %d", len(next), s.MaxTotal)
	}
	per := map[string]int{}
	for _, r := range next {
		per[r.Name]++
	}
	for name, n := range per {
		if n > s.MaxPerName && n > len(recordsAt(cur, name)) {
			return nil, refuse(dns.RcodeRefused, "the update would keep %d records at %s, more than acme.max_records_per_name %d", n, name, s.MaxPerName)
		}
	}
	return next, nil
}
