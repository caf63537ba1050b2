package config

import (
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Config is the whole daemon configuration after decoding, defaults and
// validation. It is plain data: the gslb package builds its immutable
// Snapshot from it, and cmd/gslbd wires listeners from it.
type Config struct {
	// File is the path the configuration was read from; errors name it.
	File string `mapstructure:"-"`

	Instance Instance `mapstructure:"instance"`
	Log      Log      `mapstructure:"log"`
	DNS      DNS      `mapstructure:"dns"`
	HTTP     HTTP     `mapstructure:"http"`
	IDGen    IDGen    `mapstructure:"idgen"`
	GeoIP    GeoIP    `mapstructure:"geoip"`
	Health   Health   `mapstructure:"health"`
	Sessions Sessions `mapstructure:"sessions"`
	ACME     ACME     `mapstructure:"acme"`
	// Drills are scheduled dry-run drills.
	Drills []DrillSchedule `mapstructure:"drills"`
	// HealthChecks are named probe definitions endpoints refer to.
	HealthChecks map[string]*HealthCheck `mapstructure:"health_checks"`
	Datacenters  []Datacenter            `mapstructure:"datacenters"`
	Zones        []Zone                  `mapstructure:"zones"`

	// Replication copies sessions between datacenters' Redis.
	Replication Replication `mapstructure:"replication"`
	// Fleet shares health verdicts and overrides between instances.
	Fleet Fleet `mapstructure:"fleet"`

	sources map[string]string
	// identityDerived: dns.identity.id was not set and took instance.name.
	identityDerived bool
}

// Instance identifies this gslbd process within the fleet.
type Instance struct {
	Name string `mapstructure:"name"`
	// Datacenter is the datacenter this instance runs in, if it is one of
	// the configured ones; informational until sessions and replication.
	Datacenter   string `mapstructure:"datacenter"`
	DatacenterID int    `mapstructure:"datacenter_id"`
	WorkerID     int    `mapstructure:"worker_id"`
	// StateDir is a directory for state the instance keeps across
	// restarts (ACME records without Redis); empty: none.
	StateDir string `mapstructure:"state_dir"`
}

// Log selects the slog handler.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// DNS configures the authoritative listeners.
type DNS struct {
	Listen            []netip.AddrPort `mapstructure:"listen"`
	UDPSize           uint16           `mapstructure:"udp_size"`
	TCPIdleTimeout    time.Duration    `mapstructure:"tcp_idle_timeout"`
	TCPMaxConnections int              `mapstructure:"tcp_max_connections"`
	// MaxQuerySize is the largest query accepted, on UDP and TCP alike.
	MaxQuerySize int `mapstructure:"max_query_size"`
	// AnswerCacheSize is how many UDP answers each socket's reader keeps,
	// replayed for the same query bytes from the same client until the
	// snapshot changes; 0 turns the cache off.
	AnswerCacheSize int      `mapstructure:"answer_cache_size"`
	Cookies         Cookies  `mapstructure:"cookies"`
	RRL             RRL      `mapstructure:"rrl"`
	Identity        Identity `mapstructure:"identity"`
	// HandoverSocket is the Unix socket path on which a running instance
	// hands its listening sockets to its successor; empty: no hand-over.
	HandoverSocket string `mapstructure:"handover_socket"`
}

// Identity controls how the instance names itself to DNS clients.
type Identity struct {
	// ID is the string served as NSID and in id.server/hostname.bind;
	// empty means instance.name.
	ID    string `mapstructure:"id"`
	NSID  bool   `mapstructure:"nsid"`
	Chaos bool   `mapstructure:"chaos"`
}

// HTTP configures the admin and metrics listener.
type HTTP struct {
	Listen                       netip.AddrPort `mapstructure:"listen"`
	TokenFile                    string         `mapstructure:"token_file"`
	AllowUnauthenticatedLoopback bool           `mapstructure:"allow_unauthenticated_loopback"`

	// Token is read from TokenFile at load time so that a missing or empty
	// file is a config error, not a surprise on the first write request.
	Token string `mapstructure:"-"`
}

// IDGen configures the Snowflake generator.
type IDGen struct {
	Epoch             time.Time     `mapstructure:"epoch"`
	MaxClockBackwards time.Duration `mapstructure:"max_clock_backwards"`
}

// GeoIP locates clients. Without a city database every client is at the
// default location, and location-based policies answer the same for all.
type GeoIP struct {
	CityDB string `mapstructure:"city_db"`
	ASNDB  string `mapstructure:"asn_db"`
	// CacheSize bounds the per-prefix location cache (entries).
	CacheSize int `mapstructure:"cache_size"`
	// ReloadInterval is how often the files are checked for replacement.
	ReloadInterval  time.Duration `mapstructure:"reload_interval"`
	DefaultLocation Location      `mapstructure:"default_location"`
}

// Sessions configures client affinity for services with sticky: true.
type Sessions struct {
	// Store is memory (this instance only) or redis (shared).
	Store         string        `mapstructure:"store"`
	TTL           time.Duration `mapstructure:"ttl"`
	MaxLifetime   time.Duration `mapstructure:"max_lifetime"`
	TouchInterval time.Duration `mapstructure:"touch_interval"`
	CacheSize     int           `mapstructure:"cache_size"`
	// Failback: return sends a displaced client home when its datacenter
	// recovers; stay keeps it where it went.
	Failback string `mapstructure:"failback"`
	// PrefixV4 and PrefixV6 are the client prefix lengths sessions are
	// keyed on.
	PrefixV4 int          `mapstructure:"prefix_v4"`
	PrefixV6 int          `mapstructure:"prefix_v6"`
	Redis    SessionRedis `mapstructure:"redis"`
}

// SessionRedis is the shared session store.
type SessionRedis struct {
	Addrs        []string      `mapstructure:"addrs"`
	MasterName   string        `mapstructure:"master_name"`
	Username     string        `mapstructure:"username"`
	PasswordFile string        `mapstructure:"password_file"`
	DB           int           `mapstructure:"db"`
	KeyPrefix    string        `mapstructure:"key_prefix"`
	LookupBudget time.Duration `mapstructure:"lookup_budget"`
	TLS          RedisTLS      `mapstructure:"tls"`

	// Password is read from PasswordFile at load; never logged.
	Password string `mapstructure:"-"`
}

// RedisTLS enables TLS to Redis; certificates are verified by default.
type RedisTLS struct {
	Enabled            bool   `mapstructure:"enabled"`
	ServerName         string `mapstructure:"server_name"`
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// DrillSchedule runs a dry-run drill on a schedule; its outcome is the
// gslb_drill_last_success metric.
type DrillSchedule struct {
	Service string        `mapstructure:"service"`
	Fail    string        `mapstructure:"fail"`
	Probes  []string      `mapstructure:"probes"`
	Every   time.Duration `mapstructure:"every"`
}

// Health tunes probing as a whole.
type Health struct {
	// MaxInFlight bounds probes running at once across all endpoints.
	MaxInFlight int `mapstructure:"max_in_flight"`
	// Jitter spreads each endpoint's probes by up to this fraction of its
	// interval, so endpoints do not march in lockstep.
	Jitter float64 `mapstructure:"jitter"`
	// ColdStartTimeout bounds the first probe round /readyz waits for.
	ColdStartTimeout time.Duration `mapstructure:"cold_start_timeout"`
	// Damping holds a flapping endpoint down: more than MaxTransitions
	// changes within Window, and it must stay healthy for Hold to return.
	Damping Damping `mapstructure:"damping"`
	// TTLFactor shortens the TTL of a service while one of its
	// datacenters is down or changing, never below MinTTL seconds.
	TTLFactor float64   `mapstructure:"ttl_factor"`
	MinTTL    uint32    `mapstructure:"min_ttl"`
	Webhooks  []Webhook `mapstructure:"webhooks"`
}

// Damping configures flap damping.
type Damping struct {
	Window         time.Duration `mapstructure:"window"`
	MaxTransitions int           `mapstructure:"max_transitions"`
	Hold           time.Duration `mapstructure:"hold"`
}

// Webhook receives state-change events as JSON.
type Webhook struct {
	URL     string            `mapstructure:"url"`
	Timeout time.Duration     `mapstructure:"timeout"`
	Headers map[string]string `mapstructure:"headers"`
}

// HealthCheck is one named probe definition.
type HealthCheck struct {
	Type     string        `mapstructure:"type"` // http, https, tcp, dns
	Port     uint16        `mapstructure:"port"`
	Interval time.Duration `mapstructure:"interval"`
	Timeout  time.Duration `mapstructure:"timeout"`
	Rise     int           `mapstructure:"rise"`
	Fall     int           `mapstructure:"fall"`

	// http and https
	Method       string `mapstructure:"method"`
	Path         string `mapstructure:"path"`
	Host         string `mapstructure:"host"`
	ExpectStatus []int  `mapstructure:"expect_status"`
	BodyContains string `mapstructure:"body_contains"`
	BodyLimit    int64  `mapstructure:"body_limit"`
	TLS          TLS    `mapstructure:"tls"`

	// tcp
	Send   string `mapstructure:"send"`
	Expect string `mapstructure:"expect"`

	// dns
	QueryName     string     `mapstructure:"query_name"`
	QueryType     string     `mapstructure:"query_type"`
	ExpectRcode   string     `mapstructure:"expect_rcode"`
	ExpectAddress netip.Addr `mapstructure:"expect_address"`
}

// TLS configures an https probe. Verification is on unless turned off.
type TLS struct {
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
	ServerName         string `mapstructure:"server_name"`
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
}

// Location is a place on Earth with the labels policies match on.
type Location struct {
	Lat         float64 `mapstructure:"lat"`
	Lon         float64 `mapstructure:"lon"`
	Country     string  `mapstructure:"country"`
	Continent   string  `mapstructure:"continent"`
	Subdivision string  `mapstructure:"subdivision"`
}

// Datacenter is a site that can receive clients.
type Datacenter struct {
	ID       string        `mapstructure:"id"`
	Region   string        `mapstructure:"region"`
	Lat      *float64      `mapstructure:"lat"`
	Lon      *float64      `mapstructure:"lon"`
	Capacity float64       `mapstructure:"capacity"`
	Load     float64       `mapstructure:"load"`
	Latency  time.Duration `mapstructure:"latency"`
	// Drain takes the datacenter out of every answer, as if it were down.
	Drain bool `mapstructure:"drain"`
	// MinHealthy is how many endpoints must be up for the datacenter to
	// be up.
	MinHealthy int `mapstructure:"min_healthy"`
	// SlowStart ramps a recovered datacenter's share of new clients up
	// over this window instead of all at once.
	SlowStart time.Duration `mapstructure:"slow_start"`
	Endpoints []Endpoint    `mapstructure:"endpoints"`
}

// Endpoint is one address answered for a datacenter.
type Endpoint struct {
	Address netip.Addr `mapstructure:"address"`
	// Check names a health_checks entry; empty: not probed, always up.
	Check string `mapstructure:"check"`
	// CheckAddress probes elsewhere than the answered address: an IP,
	// or IP:port to override the check's port too.
	CheckAddress string `mapstructure:"check_address"`
}

// Zone is one zone served authoritatively.
type Zone struct {
	Origin   string       `mapstructure:"origin"`
	TTL      *uint32      `mapstructure:"ttl"`
	SOA      SOA          `mapstructure:"soa"`
	NS       []NameServer `mapstructure:"ns"`
	Records  []Record     `mapstructure:"records"`
	Services []Service    `mapstructure:"services"`
}

// SOA holds the zone's start of authority; timers are in seconds, as in a
// zone file, because operators compare them with what dig prints.
type SOA struct {
	MName   string  `mapstructure:"mname"`
	RName   string  `mapstructure:"rname"`
	Serial  uint32  `mapstructure:"serial"`
	Refresh uint32  `mapstructure:"refresh"`
	Retry   uint32  `mapstructure:"retry"`
	Expire  uint32  `mapstructure:"expire"`
	Minimum uint32  `mapstructure:"minimum"`
	TTL     *uint32 `mapstructure:"ttl"`
}

// NameServer is an NS record at the apex, with glue when it lies inside the
// zone.
type NameServer struct {
	Name      string       `mapstructure:"name"`
	Addresses []netip.Addr `mapstructure:"addresses"`
}

// Record is a static resource record; Data is its RDATA in zone-file syntax.
type Record struct {
	Name string  `mapstructure:"name"`
	Type string  `mapstructure:"type"`
	TTL  *uint32 `mapstructure:"ttl"`
	Data string  `mapstructure:"data"`

	rr dns.RR
}

// Service is a name whose answer gslbd computes from datacenters.
type Service struct {
	Name        string   `mapstructure:"name"`
	Policy      string   `mapstructure:"policy"`
	Datacenters []string `mapstructure:"datacenters"`
	TTL         *uint32  `mapstructure:"ttl"`

	// Answers caps the address records per response; 0 means every
	// address of the chosen datacenter. With Spread, the addresses come
	// one each from the Answers best datacenters instead.
	Answers     int    `mapstructure:"answers"`
	Spread      bool   `mapstructure:"spread"`
	WhenAllDown string `mapstructure:"when_all_down"`

	// Score policy (and hybrid, inside a group).
	Weights         *Weights `mapstructure:"weights"`
	DistanceScaleKM *float64 `mapstructure:"distance_scale_km"`
	LatencyScaleMS  *float64 `mapstructure:"latency_scale_ms"`
	Slack           *float64 `mapstructure:"slack"`

	// Weighted policy: datacenter ID to its share.
	Ratios map[string]float64 `mapstructure:"ratios"`
	// Hybrid policy: region groups in order of preference.
	Groups [][]string `mapstructure:"groups"`
	// Geo policy.
	Geo *GeoMap `mapstructure:"geo"`

	// Network targeting, for any policy, checked before GeoIP.
	Networks     []NetworkTarget `mapstructure:"networks"`
	ASN          []ASNTarget     `mapstructure:"asn"`
	NetworksFile string          `mapstructure:"networks_file"`

	// Sticky keeps each client prefix on the datacenter it was given.
	Sticky bool `mapstructure:"sticky"`

	// datacentersDerived: the service did not list datacenters; they were
	// gathered from its groups, geo map or ratios.
	datacentersDerived bool

	owner string
}

// GeoMap sends clients by where they are; the most specific match wins:
// subdivision, then country, then continent, then Default.
type GeoMap struct {
	Subdivisions map[string][]string `mapstructure:"subdivisions"`
	Countries    map[string][]string `mapstructure:"countries"`
	Continents   map[string][]string `mapstructure:"continents"`
	Default      []string            `mapstructure:"default"`
}

// NetworkTarget pins a client network to datacenters (in order) or to a
// location the policy then uses in place of GeoIP's.
type NetworkTarget struct {
	Prefix      netip.Prefix `mapstructure:"prefix"`
	Datacenters []string     `mapstructure:"datacenters"`
	Location    *Location    `mapstructure:"location"`
}

// ASNTarget is a NetworkTarget for an autonomous system.
type ASNTarget struct {
	ASN         uint32    `mapstructure:"asn"`
	Datacenters []string  `mapstructure:"datacenters"`
	Location    *Location `mapstructure:"location"`
}

// Weights weigh the score's terms; lower scores win.
type Weights struct {
	Distance float64 `mapstructure:"distance"`
	Load     float64 `mapstructure:"load"`
	Latency  float64 `mapstructure:"latency"`
}

// Defaults a newcomer meets; docs/configuration.md lists the same values
// and a test keeps the two in step.
const (
	DefaultDNSListen         = "127.0.0.1:5353"
	DefaultUDPSize           = 1232
	DefaultTCPIdleTimeout    = 10 * time.Second
	DefaultTCPMaxConnections = 1000
	DefaultHTTPListen        = "127.0.0.1:9053"
	DefaultMaxClockBackwards = time.Second
	DefaultCapacity          = 1000
	DefaultLatency           = 50 * time.Millisecond
	DefaultZoneTTL           = 300
	DefaultServiceTTL        = 30
	DefaultSOARefresh        = 7200
	DefaultSOARetry          = 3600
	DefaultSOAExpire         = 1209600
	DefaultSOAMinimum        = 300
	DefaultSOATTL            = 3600
	DefaultGeoCacheSize      = 100000
	DefaultGeoReload         = 30 * time.Second
	// DefaultDistanceScaleKM is half the Earth's circumference, the
	// longest great-circle distance, so the distance term never saturates.
	DefaultDistanceScaleKM = 20015
	DefaultLatencyScaleMS  = 1000
	DefaultSlack           = 0.05
)

// DefaultWeights are the score weights when a service sets none.
var DefaultWeights = Weights{Distance: 0.5, Load: 0.3, Latency: 0.2}

// DefaultEpoch is idgen's default epoch, repeated here so config does not
// import idgen only for a constant.
var DefaultEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// defaults returns a Config carrying every top-level default; decoding the
// file on top of it keeps whatever the file does not set.
func defaults() Config {
	return Config{
		Log: Log{Level: "info", Format: "text"},
		DNS: DNS{
			Listen:            []netip.AddrPort{netip.MustParseAddrPort(DefaultDNSListen)},
			UDPSize:           DefaultUDPSize,
			TCPIdleTimeout:    DefaultTCPIdleTimeout,
			TCPMaxConnections: DefaultTCPMaxConnections,
			MaxQuerySize:      DefaultMaxQuerySize,
			AnswerCacheSize:   DefaultAnswerCacheSize,
			Cookies:           Cookies{Enabled: true},
			RRL:               defaultRRL(),
			Identity:          Identity{NSID: true, Chaos: true},
		},
		HTTP:  HTTP{Listen: netip.MustParseAddrPort(DefaultHTTPListen)},
		IDGen: IDGen{Epoch: DefaultEpoch, MaxClockBackwards: DefaultMaxClockBackwards},
		GeoIP: GeoIP{CacheSize: DefaultGeoCacheSize, ReloadInterval: DefaultGeoReload},
		Sessions: Sessions{
			Store: "memory", TTL: time.Hour, MaxLifetime: 24 * time.Hour, TouchInterval: 5 * time.Minute,
			CacheSize: 100000, Failback: "return", PrefixV4: 24, PrefixV6: 56,
			Redis: SessionRedis{Addrs: []string{"127.0.0.1:6379"}, KeyPrefix: "gslb:session:", LookupBudget: 2 * time.Millisecond},
		},
		ACME: defaultACME(),
		Health: Health{
			MaxInFlight: 256, Jitter: 0.1, ColdStartTimeout: 10 * time.Second,
			Damping:   Damping{Window: 5 * time.Minute, MaxTransitions: 4, Hold: 2 * time.Minute},
			TTLFactor: 0.5, MinTTL: 5,
		},
	}
}
