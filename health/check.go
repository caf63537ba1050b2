package health

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// Check is one probe definition, as the configuration's health_checks
// describe it.
type Check struct {
	Name     string
	Type     string // http, https, tcp, dns
	Port     uint16
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int

	Method       string
	Path         string
	Host         string
	ExpectStatus []int
	BodyContains string
	BodyLimit    int64
	TLS          TLSConfig

	Send   string
	Expect string

	QueryName     string
	QueryType     uint16
	ExpectRcode   int
	ExpectAddress netip.Addr
}

// TLSConfig is an https check's TLS settings; verification is on unless
// InsecureSkipVerify.
type TLSConfig struct {
	InsecureSkipVerify bool
	ServerName         string
	CAFile             string
	CertFile, KeyFile  string
}

func (t TLSConfig) build() (*tls.Config, error) {
	c := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("health: %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// NewProber returns the prober for a check. Probers of one check share
// their HTTP transport, so connections are reused across endpoints.
func NewProber(c *Check) (Prober, error) {
	switch c.Type {
	case "http", "https":
		return newHTTPProber(c)
	case "tcp":
		return &tcpProber{send: []byte(c.Send), expect: []byte(c.Expect)}, nil
	case "dns":
		return &dnsProber{name: c.QueryName, qtype: c.QueryType, rcode: c.ExpectRcode, address: c.ExpectAddress}, nil
	}
	return nil, fmt.Errorf("health: unknown check type %q", c.Type)
}
