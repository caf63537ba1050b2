package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
	"github.com/gslbd/gslbd/session/redisstore"
	"github.com/gslbd/gslbd/session/redisstore/redistest"
)

// TestReplicationPeerTLS: a peer's Redis across the WAN speaks only TLS,
// wants a client certificate and a password; gslbd reads it with the
// peer's tls and password_file keys, and its sessions arrive.
func TestReplicationPeerTLS(t *testing.T) {
	own := redistest.Start(t)
	own.RequireReal(t)
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "peer-password"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	peerAddr := startTLSRedis(t, dir, pki)

	ids, err := idgen.New(idgen.Config{Datacenter: 1, Worker: 9})
	if err != nil {
		t.Fatal(err)
	}
	writer, err := redisstore.New(redisstore.Options{Addrs: []string{peerAddr}, Password: "s3cret", TLS: pki.client,
		ReadTimeout: time.Second, Replication: &redisstore.Replication{Datacenter: "dc-a", IDs: ids}})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	id, _ := ids.Next()
	now := time.Now()
	s := session.Session{ID: id, Service: "www.s.test.", Datacenter: "dc-a",
		Client: netip.MustParsePrefix("203.0.113.0/24"), Created: now, LastAccessed: now}
	if err := writer.Put(context.Background(), []session.Session{s}, time.Hour); err != nil {
		t.Fatalf("writing to the TLS peer: %v", err)
	}

	cfg := fmt.Sprintf(`
instance: {name: gslb-b, datacenter: dc-b, datacenter_id: 2}
http: {allow_unauthenticated_loopback: true}
sessions:
  store: redis
  redis: {addrs: ["%s"], lookup_budget: 50ms}
replication:
  mode: active-active
  peers:
    - datacenter: dc-a
      addrs: ["%s"]
      password_file: peer-password
      tls: {enabled: true, server_name: redis.dc-a.test, ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}
datacenters:
  - {id: dc-a, endpoints: [{address: 192.0.2.1}]}
  - {id: dc-b, endpoints: [{address: 192.0.2.2}]}
zones:
  - origin: s.test.
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, policy: failover, datacenters: [dc-a, dc-b], sticky: true}
`, own.Addr(), peerAddr)
	b := startDaemon(t, writeConfig(t, dir, cfg))
	eventually(t, "dc-a's session at dc-b, read over TLS", func() bool {
		code, _ := httpDo(t, "GET", "http://"+b.http+"/api/v1/sessions?client=203.0.113.9&service=www.s.test.", "")
		return code == http.StatusOK
	})
	if st := getReplStatus(t, b); st.Peers[0].State != "streaming" {
		t.Errorf("status: %+v", st)
	}
}

type testPKI struct {
	client *tls.Config // for the test's own writer
}

// newTestPKI writes a CA, a server certificate for redis.dc-a.test and
// 127.0.0.1, and a client certificate, as PEM files in dir.
func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, dns []string, ips []net.IP) tls.Certificate {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "EC PRIVATE KEY", kder)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	issue("server", 2, x509.ExtKeyUsageServerAuth, []string{"redis.dc-a.test"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	client := issue("client", 3, x509.ExtKeyUsageClientAuth, nil, nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{client: &tls.Config{RootCAs: pool, ServerName: "redis.dc-a.test", Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12}}
}

// startTLSRedis runs a redis-server that listens only with TLS, requires
// client certificates and a password, until the test ends.
func startTLSRedis(t *testing.T, dir string, pki testPKI) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server-key.pem"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "yes",
		"--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", dir)
	log, err := os.Create(filepath.Join(dir, "redis-tls.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	eventually(t, "the TLS redis-server to answer", func() bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 200 * time.Millisecond}, "tcp", addr, pki.client)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr
}
