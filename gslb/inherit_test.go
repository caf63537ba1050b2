package gslb

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestListenAdoptsInheritedSockets is a restart in miniature: the first
// listener's sockets pass to a second one, a query sent while neither
// reads waits in the kernel's queue, and the second answers it.
func TestListenAdoptsInheritedSockets(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	configured := netip.MustParseAddrPort("127.0.0.1:0")
	lc := ListenConfig{Addrs: []netip.AddrPort{configured}, TCPIdleTimeout: time.Second, TCPMaxConnections: 4}
	first, err := srv.Listen(lc)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*os.File{}
	for _, s := range first.Sockets() {
		f, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		files[s.Name()] = f
	}
	if len(files) != 2 || files["udp 127.0.0.1:0"] == nil || files["tcp 127.0.0.1:0"] == nil {
		t.Fatalf("Sockets() named %v; want udp and tcp 127.0.0.1:0", keys(files))
	}
	udpAddr, tcpAddr := first.Addrs()[0].String(), first.Addrs()[1].String()
	first.close() // the duplicates keep both sockets open

	// Nobody reads now; the kernel keeps the query for the successor.
	conn, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q, _ := query("host.example.test.", dns.TypeA).Pack()
	if _, err := conn.Write(q); err != nil {
		t.Fatal(err)
	}

	lc.Inherited = func(network string, ap netip.AddrPort) *os.File {
		f := files[network+" "+ap.String()]
		delete(files, network+" "+ap.String())
		return f
	}
	second, err := srv.Listen(lc)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 {
		t.Errorf("Listen left inherited sockets %v unused", keys(files))
	}
	if got := second.Addrs(); got[0].String() != udpAddr || got[1].String() != tcpAddr {
		t.Fatalf("successor bound %v; want the inherited %s and %s", got, udpAddr, tcpAddr)
	}
	served := make(chan error, 1)
	go func() { served <- second.Serve() }()
	defer func() {
		_ = second.Shutdown(t.Context())
		<-served
	}()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("the query queued between the two listeners was not answered: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil || len(r.Answer) != 1 {
		t.Fatalf("queued query: got %v, %v; want one answer", r, err)
	}
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	if r, _, err := c.Exchange(query("host.example.test.", dns.TypeA), tcpAddr); err != nil || len(r.Answer) != 1 {
		t.Fatalf("TCP on the inherited listener: got %v, %v", r, err)
	}
}

// TestListenRefusesMismatchedInheritedSocket: a socket bound elsewhere
// than the configuration says must stop start-up, naming both addresses,
// not serve the wrong address quietly.
func TestListenRefusesMismatchedInheritedSocket(t *testing.T) {
	srv, _ := newTestServer(t, testSnapshot(t))
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("127.0.0.2:0")
	_, err = srv.Listen(ListenConfig{
		Addrs: []netip.AddrPort{want}, TCPMaxConnections: 1,
		Inherited: func(network string, ap netip.AddrPort) *os.File {
			if network == "udp" {
				return f
			}
			return nil
		},
	})
	if err == nil || !strings.Contains(err.Error(), "udp 127.0.0.2:0") || !strings.Contains(err.Error(), pc.LocalAddr().String()) {
		t.Fatalf("got %v; want an error naming udp 127.0.0.2:0 and the socket's address %s", err, pc.LocalAddr())
	}
}

func keys(m map[string]*os.File) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
