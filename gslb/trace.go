package gslb

import (
	"fmt"
	"net/netip"

	"github.com/gslbd/gslbd/gslb/geo"
)

// Trace is what explain reports: how one query was decided. The DNS path
// passes no trace and pays nothing for it; explain runs the same code with
// one, so the explanation cannot drift from what DNS answers.
type Trace struct {
	Name         string       `json:"name"`
	QType        string       `json:"qtype"`
	Client       netip.Addr   `json:"client"`        // who asked (explain's input, or the packet's source)
	ECS          string       `json:"ecs,omitempty"` // the query's client subnet option
	Located      netip.Addr   `json:"located"`       // the address located: the ECS one when usable
	ClientSource string       `json:"client_source"` // "ecs" or "source"
	ClientPrefix netip.Prefix `json:"client_prefix"` // the prefix hashing and sessions key on
	Location     *TraceLoc    `json:"location,omitempty"`
	Zone         string       `json:"zone,omitempty"`
	Service      string       `json:"service,omitempty"`
	Policy       string       `json:"policy,omitempty"`
	Target       string       `json:"target,omitempty"`  // the network or ASN target the client matched
	Session      string       `json:"session,omitempty"` // what the client's session did to the choice
	Candidates   []Candidate  `json:"candidates,omitempty"`
	Winners      []string     `json:"winners,omitempty"`
	Reason       string       `json:"reason,omitempty"`
	Rcode        string       `json:"rcode"`
	Answer       []string     `json:"answer"`
	ECSScope     *int         `json:"ecs_scope"`
}

// TraceLoc is the client's location as the decision saw it.
type TraceLoc struct {
	Source      string       `json:"source"` // "geoip", "default" or "none"
	Network     netip.Prefix `json:"network,omitzero"`
	Lat         float64      `json:"lat"`
	Lon         float64      `json:"lon"`
	Country     string       `json:"country,omitempty"`
	Continent   string       `json:"continent,omitempty"`
	Subdivision string       `json:"subdivision,omitempty"`
	City        string       `json:"city,omitempty"`
	ASN         uint32       `json:"asn,omitempty"`
}

// Candidate is one datacenter as a policy weighed it.
type Candidate struct {
	Datacenter string       `json:"datacenter"`
	Up         bool         `json:"up"`
	Score      *ScoreDetail `json:"score,omitempty"`
	Chosen     bool         `json:"chosen"`
	Why        string       `json:"why"`
}

// ScoreDetail is how the score policy weighed one datacenter.
type ScoreDetail struct {
	DistanceKM  float64 `json:"distance_km"`
	Load        float64 `json:"load"`
	Capacity    float64 `json:"capacity"`
	LatencyMS   float64 `json:"latency_ms"`
	Terms       Terms   `json:"terms"`
	Score       float64 `json:"score"`
	WithinSlack bool    `json:"within_slack"`
}

// Terms are a score's weighted parts.
type Terms struct {
	Distance float64 `json:"distance"`
	Load     float64 `json:"load"`
	Latency  float64 `json:"latency"`
}

func (t *Trace) setLocation(l geo.Location, haveDB bool) {
	tl := &TraceLoc{Source: "geoip", Network: l.Network, Lat: l.Lat, Lon: l.Lon, Country: l.Country,
		Continent: l.Continent, Subdivision: l.Subdivision, City: l.City, ASN: l.ASN}
	switch {
	case !haveDB:
		tl.Source = "default (no GeoIP database configured)"
	case !l.Found:
		tl.Source = "default (not in the GeoIP database)"
	}
	t.Location = tl
}

func (t *netTarget) describe() string {
	if t.prefix.IsValid() {
		return "network " + t.prefix.String()
	}
	return fmt.Sprintf("AS%d", t.asn)
}
