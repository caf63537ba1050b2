package gslb

import (
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures the handler alone (no sockets) for the shapes
// of query a GSLB mostly sees. The socket path is measured by make bench.
func BenchmarkServeDNS(b *testing.B) {
	srv, _ := newTestServer(b, testSnapshot(b))
	for _, bc := range []struct {
		name string
		req  *dns.Msg
	}{
		{"static-A", query("host.example.test.", dns.TypeA)},
		{"static-A-edns", query("host.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"service-A", query("www.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"nxdomain", query("nope.example.test.", dns.TypeA, withEDNS(1232, false))},
		{"refused", query("www.example.com.", dns.TypeA)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := &discardWriter{}
			b.ReportAllocs()
			for b.Loop() {
				srv.ServeDNS(w, bc.req)
			}
		})
	}
}

// BenchmarkAnswer isolates answer construction from metrics and writing.
func BenchmarkAnswer(b *testing.B) {
	s := testSnapshot(b)
	req := query("www.example.test.", dns.TypeA, withEDNS(1232, false))
	b.ReportAllocs()
	for b.Loop() {
		s.Answer(req, testClient, false)
	}
}

type discardWriter struct{ recorder }

func (d *discardWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.Pack()
	return err
}
