package gslb

import (
	"sync"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the DNS server's Prometheus series. Label values come from
// configuration and from bounded sets only, never from a query's name or a
// client's address, so a hostile client cannot grow the series count.
type Metrics struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	panics    prometheus.Counter
	malformed *prometheus.CounterVec
	tcpRefuse prometheus.Counter
	cache     sync.Map // seriesKey -> *querySeries
	answers   *prometheus.CounterVec
	answerC   sync.Map // answered -> prometheus.Counter

	// rrlDropped and rrlSlipped carry no labels: a per-client series
	// would let the flood being limited grow the series count.
	rrlDropped prometheus.Counter
	rrlSlipped prometheus.Counter
	tcpEvicted prometheus.Counter

	// answerCacheHits and answerCacheMisses count the UDP readers'
	// answer cache (anscache.go) look-ups, added once per batch.
	answerCacheHits   prometheus.Counter
	answerCacheMisses prometheus.Counter
}

// answer returns the answers counter for a service and datacenter; both
// come from configuration, so the series are bounded.
func (m *Metrics) answer(a answered) prometheus.Counter {
	if c, ok := m.answerC.Load(a); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.answerC.LoadOrStore(a, m.answers.WithLabelValues(a.service, a.datacenter))
	return c.(prometheus.Counter)
}

// NewMetrics registers the DNS series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "requests_total",
			Help: "DNS queries received, by zone, query type and transport.",
		}, []string{"zone", "qtype", "proto"}),
		responses: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "responses_total",
			Help: "DNS responses sent, by zone, query type, response code and transport.",
		}, []string{"zone", "qtype", "rcode", "proto"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "request_duration_seconds",
			Help: "Time from a parsed query to its response being written, by transport.",
			// Answers take microseconds; the upper buckets catch stalls.
			Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25},
		}, []string{"proto"}),
		panics: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "panics_total",
			Help: "Queries whose handling panicked and were answered SERVFAIL.",
		}),
		malformed: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "malformed_requests_total",
			Help: "Packets that could not be parsed as a DNS query, by transport.",
		}, []string{"proto"}),
		answers: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "answers_total",
			Help: "Service answers, by service and the datacenter answered first.",
		}, []string{"service", "datacenter"}),
		tcpRefuse: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "tcp_connections_refused_total",
			Help: "TCP connections closed at once because dns.tcp_max_connections were open.",
		}),
		rrlDropped: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "rrl_dropped_total",
			Help: "UDP responses dropped by response rate limiting (dns.rrl).",
		}),
		rrlSlipped: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "rrl_slipped_total",
			Help: "UDP responses rate limiting replaced with an empty truncated one (dns.rrl.slip).",
		}),
		tcpEvicted: f.NewCounter(prometheus.CounterOpts{
			Namespace: "gslb", Subsystem: "dns", Name: "tcp_connections_evicted_total",
			Help: "Idle TCP connections closed to make room for a new one at dns.tcp_max_connections.",
		}),
	}
	lookups := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gslb", Subsystem: "dns", Name: "answer_cache_lookups_total",
		Help: "UDP fast-path queries looked up in the answer cache (dns.answer_cache_size), by result: hit (the answer was replayed) or miss (it was computed).",
	}, []string{"result"})
	m.answerCacheHits, m.answerCacheMisses = lookups.WithLabelValues("hit"), lookups.WithLabelValues("miss")
	// Both transports start at zero, so a rate is 0 rather than absent.
	for _, proto := range []string{"udp", "tcp"} {
		m.malformed.WithLabelValues(proto)
	}
	return m
}

// seriesKey names one requests/responses pair of series. Looking the
// children up in a sync.Map by this key skips the label hashing and UTF-8
// validation prometheus does on every WithLabelValues, about a quarter of
// the handler's cost.
type seriesKey struct {
	zone  string
	qtype uint16
	rcode int
	proto string
}

type querySeries struct {
	requests  prometheus.Counter
	responses prometheus.Counter
	duration  prometheus.Observer
}

// series returns the children for a query. Keys are bounded as the labels
// are: zones come from config, and callers fold the qtype with qtypeKey.
func (m *Metrics) series(k seriesKey) *querySeries {
	if v, ok := m.cache.Load(k); ok {
		return v.(*querySeries)
	}
	qt := qtypeLabel(k.qtype)
	qs := &querySeries{
		requests:  m.requests.WithLabelValues(k.zone, qt, k.proto),
		responses: m.responses.WithLabelValues(k.zone, qt, rcodeLabel(k.rcode), k.proto),
		duration:  m.duration.WithLabelValues(k.proto),
	}
	v, _ := m.cache.LoadOrStore(k, qs)
	return v.(*querySeries)
}

// noZone labels queries outside every served zone.
const noZone = "none"

// qtypeKey folds every qtype without a label of its own onto 0, so the
// series cache stays as small as the label set.
func qtypeKey(t uint16) uint16 {
	if qtypeLabel(t) == "other" {
		return 0
	}
	return t
}

// qtypeLabel bounds the qtype label to types an operator may want to see;
// every other type counts as "other".
func qtypeLabel(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeTXT, dns.TypeMX, dns.TypeSRV,
		dns.TypeCAA, dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypePTR, dns.TypeHTTPS,
		dns.TypeSVCB, dns.TypeDS, dns.TypeDNSKEY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeHINFO:
		return dns.TypeToString[t]
	}
	return "other"
}

// rcodeLabel bounds the rcode label the same way.
func rcodeLabel(rc int) string {
	if rc == dns.RcodeBadVers {
		// 16 is BADSIG in TSIG and BADVERS in EDNS; TSIG errors travel in
		// the TSIG record, so as a header rcode 16 is always BADVERS.
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok && rc <= dns.RcodeBadCookie {
		return s
	}
	return "other"
}
