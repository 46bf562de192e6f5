package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA whose certificates the tests write under dir.
type testCA struct {
	dir          string
	cert, key    []byte
	certFile     string
	pool         *x509.CertPool
	serialPrefix string
}

// newTestCA makes a CA and writes its certificate to dir/<name>-ca.pem.
func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	cert, key, err := GenerateCA(CAOptions{})
	if err != nil {
		t.Fatalf("GenerateCA() error = %v", err)
	}
	ca := &testCA{dir: dir, cert: cert, key: key, serialPrefix: name}
	ca.certFile = writeFile(t, dir, name+"-ca.pem", cert)
	ca.pool = x509.NewCertPool()
	ca.pool.AppendCertsFromPEM(cert)
	return ca
}

// issue makes a certificate for name, signed by ca, and writes it to
// dir/<file>.pem and dir/<file>-key.pem.
func (ca *testCA) issue(t *testing.T, file, name string) (certFile, keyFile string) {
	t.Helper()
	cert, key, err := GenerateCert(CertOptions{
		CACert: ca.cert, CAKey: ca.key, Name: name,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatalf("GenerateCert(%s) error = %v", name, err)
	}
	return writeFile(t, ca.dir, file+".pem", cert), writeFile(t, ca.dir, file+"-key.pem", key)
}

// keyPair loads a certificate the issue method wrote.
func keyPair(t *testing.T, certFile, keyFile string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustNew(t *testing.T, cfg Config) *Configurator {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return c
}

// result is one end of a handshake.
type result struct {
	state tls.ConnectionState
	err   error
}

// handshake runs one TLS handshake over a 127.0.0.1 TCP connection, with
// srv on the accepting end and cli on the dialing end, and returns what
// each end saw. A refusal of the client's certificate shows in the
// server's error (in TLS 1.3 the client has finished by then).
func handshake(t *testing.T, srv, cli *tls.Config) (server, client result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(conn, srv)
		err = s.Handshake()
		done <- result{state: s.ConnectionState(), err: err}
	}()
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(conn, cli)
	client = result{err: c.Handshake()}
	client.state = c.ConnectionState()
	server = <-done
	return server, client
}

// peerName returns the common name of the certificate the peer presented.
func peerName(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return cs.PeerCertificates[0].Subject.CommonName
}

func TestIncomingMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, foreign := newTestCA(t, dir, "ca"), newTestCA(t, dir, "foreign")
	srvCert, srvKey := ca.issue(t, "server", ServerName("dc1"))
	cliCert, cliKey := ca.issue(t, "client", ClientName("dc1"))
	fCert, fKey := foreign.issue(t, "foreign-client", ClientName("dc1"))

	c := mustNew(t, Config{
		CAFile: ca.certFile, CertFile: srvCert, KeyFile: srvKey,
		VerifyIncoming: true, Datacenter: "dc1",
	})
	tests := []struct {
		name   string
		certs  []tls.Certificate
		accept bool
	}{
		{"CA-signed client certificate", []tls.Certificate{keyPair(t, cliCert, cliKey)}, true},
		{"no certificate", nil, false},
		{"certificate of another CA", []tls.Certificate{keyPair(t, fCert, fKey)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cli := &tls.Config{RootCAs: ca.pool, ServerName: "localhost", Certificates: tc.certs}
			srv, client := handshake(t, c.IncomingConfig(), cli)
			if client.err != nil && tc.accept {
				t.Fatalf("client handshake error = %v", client.err)
			}
			if got := srv.err == nil; got != tc.accept {
				t.Fatalf("server handshake error = %v, want accepted %v", srv.err, tc.accept)
			}
			if tc.accept && peerName(srv.state) != ClientName("dc1") {
				t.Errorf("server saw peer %q, want %q", peerName(srv.state), ClientName("dc1"))
			}
		})
	}
}

// TestIncomingWithoutVerify checks that without verify_incoming the
// listener (HTTPS) asks for no certificate.
func TestIncomingWithoutVerify(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, "server", ServerName("dc1"))
	c := mustNew(t, Config{CertFile: srvCert, KeyFile: srvKey, Datacenter: "dc1"})
	srv, cli := handshake(t, c.IncomingConfig(), &tls.Config{RootCAs: ca.pool, ServerName: "localhost"})
	if srv.err != nil || cli.err != nil {
		t.Fatalf("handshake errors = %v, %v; want none", srv.err, cli.err)
	}
}

func TestOutgoingVerifyServerHostname(t *testing.T) {
	dir := t.TempDir()
	ca, foreign := newTestCA(t, dir, "ca"), newTestCA(t, dir, "foreign")
	myCert, myKey := ca.issue(t, "me", ServerName("dc1"))
	files := map[string][2]string{}
	for _, p := range []struct {
		file, name string
		ca         *testCA
	}{
		{"server-dc1", ServerName("dc1"), ca},
		{"client-dc1", ClientName("dc1"), ca},
		{"server-dc2", ServerName("dc2"), ca},
		{"foreign-server-dc1", ServerName("dc1"), foreign},
	} {
		cf, kf := p.ca.issue(t, p.file, p.name)
		files[p.file] = [2]string{cf, kf}
	}

	strict := mustNew(t, Config{
		CAFile: ca.certFile, CertFile: myCert, KeyFile: myKey,
		VerifyOutgoing: true, VerifyServerHostname: true, Datacenter: "dc1",
	})
	chainOnly := mustNew(t, Config{
		CAFile: ca.certFile, CertFile: myCert, KeyFile: myKey,
		VerifyOutgoing: true, Datacenter: "dc1",
	})
	tests := []struct {
		peer              string
		strict, chainOnly bool // accepted by each
	}{
		{"server-dc1", true, true},
		{"client-dc1", false, true},
		{"server-dc2", false, true},
		{"foreign-server-dc1", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.peer, func(t *testing.T) {
			peer := mustNew(t, Config{CertFile: files[tc.peer][0], KeyFile: files[tc.peer][1], Datacenter: "dc1"})
			for _, d := range []struct {
				name   string
				c      *Configurator
				accept bool
			}{{"verify_server_hostname", strict, tc.strict}, {"verify_outgoing only", chainOnly, tc.chainOnly}} {
				_, cli := handshake(t, peer.IncomingConfig(), d.c.OutgoingConfig())
				if got := cli.err == nil; got != d.accept {
					t.Errorf("%s: client handshake with %s: error = %v, want accepted %v", d.name, tc.peer, cli.err, d.accept)
				}
				if cli.err == nil {
					if got, want := d.c.IsServer(cli.state), tc.peer == "server-dc1"; got != want {
						t.Errorf("%s: IsServer(%s) = %v, want %v", d.name, tc.peer, got, want)
					}
				}
			}
		})
	}
}

// TestIsServerIncoming checks IsServer on the accepting end, where the
// server port must refuse a client agent's certificate posing as a
// server.
func TestIsServerIncoming(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, "server", ServerName("dc1"))
	c := mustNew(t, Config{
		CAFile: ca.certFile, CertFile: srvCert, KeyFile: srvKey,
		VerifyIncoming: true, Datacenter: "dc1",
	})
	for _, tc := range []struct {
		name string
		want bool
	}{
		{ServerName("dc1"), true},
		{ClientName("dc1"), false},
		{ServerName("dc2"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf, kf := ca.issue(t, "peer", tc.name)
			cli := &tls.Config{RootCAs: ca.pool, ServerName: "localhost", Certificates: []tls.Certificate{keyPair(t, cf, kf)}}
			srv, _ := handshake(t, c.IncomingConfig(), cli)
			if srv.err != nil {
				t.Fatalf("server handshake error = %v", srv.err)
			}
			if got := c.IsServer(srv.state); got != tc.want {
				t.Errorf("IsServer(peer %s) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
	if c.IsServer(tls.ConnectionState{}) {
		t.Error("IsServer(no handshake) = true, want false")
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	certFile, keyFile := ca.issue(t, "agent", "first."+Domain)
	c := mustNew(t, Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: keyFile, Datacenter: "dc1"})
	cli := &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}
	served := func() string {
		t.Helper()
		srv, client := handshake(t, c.IncomingConfig(), cli)
		if srv.err != nil || client.err != nil {
			t.Fatalf("handshake errors = %v, %v", srv.err, client.err)
		}
		return peerName(client.state)
	}
	// One config, made before the reload, as a listener keeps it.
	if got := served(); got != "first."+Domain {
		t.Fatalf("served %q before reload, want first.%s", got, Domain)
	}

	// Replace the files, as an operator does, then reload.
	newCert, newKey := ca.issue(t, "second", "second."+Domain)
	mustRename(t, newCert, certFile)
	mustRename(t, newKey, keyFile)
	if got := served(); got != "first."+Domain {
		t.Errorf("served %q after replacing the files without reload, want first.%s", got, Domain)
	}
	if err := c.Reload(); err != nil {
		t.Fatalf("Reload() error = %v", err)
	}
	if got := served(); got != "second."+Domain {
		t.Errorf("served %q after Reload, want second.%s", got, Domain)
	}

	// A key that does not match: the reload fails, naming the files, and
	// the previous certificate is still served.
	_, otherKey := ca.issue(t, "third", "third."+Domain)
	mustRename(t, otherKey, keyFile)
	err := c.Reload()
	if err == nil || !strings.Contains(err.Error(), certFile) || !strings.Contains(err.Error(), "keeping the previous") {
		t.Errorf("Reload() with a mismatched key error = %v, want one naming %s", err, certFile)
	}
	if got := served(); got != "second."+Domain {
		t.Errorf("served %q after a failed Reload, want second.%s", got, Domain)
	}

	// A missing file is named too.
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	err = c.Reload()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Reload() with a missing file error = %v, want fs.ErrNotExist naming %s", err, certFile)
	}
	if got := served(); got != "second."+Domain {
		t.Errorf("served %q after a failed Reload, want second.%s", got, Domain)
	}
}

// TestReloadCA checks that a reloaded CA applies to the next handshake,
// both to client certificates and to servers dialed.
func TestReloadCA(t *testing.T) {
	dir := t.TempDir()
	oldCA, newCA := newTestCA(t, dir, "old"), newTestCA(t, dir, "new")
	caFile := filepath.Join(dir, "ca.pem")
	writeFile(t, dir, "ca.pem", oldCA.cert)
	srvCert, srvKey := oldCA.issue(t, "server", ServerName("dc1"))
	c := mustNew(t, Config{
		CAFile: caFile, CertFile: srvCert, KeyFile: srvKey,
		VerifyIncoming: true, VerifyOutgoing: true, VerifyServerHostname: true, Datacenter: "dc1",
	})
	incoming, outgoing := c.IncomingConfig(), c.OutgoingConfig()

	nCert, nKey := newCA.issue(t, "new-server", ServerName("dc1"))
	newPeer := mustNew(t, Config{CAFile: newCA.certFile, CertFile: nCert, KeyFile: nKey, Datacenter: "dc1"})
	cli := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{keyPair(t, nCert, nKey)}}

	if srv, _ := handshake(t, incoming, cli); srv.err == nil {
		t.Fatal("client certificate of the new CA accepted before the CA was reloaded")
	}
	if _, client := handshake(t, newPeer.IncomingConfig(), outgoing); client.err == nil {
		t.Fatal("server of the new CA accepted before the CA was reloaded")
	}
	writeFile(t, dir, "ca.pem", append(append([]byte{}, oldCA.cert...), newCA.cert...))
	if err := c.Reload(); err != nil {
		t.Fatalf("Reload() error = %v", err)
	}
	if srv, _ := handshake(t, incoming, cli); srv.err != nil {
		t.Errorf("client certificate of the new CA after Reload: server error = %v", srv.err)
	}
	if _, client := handshake(t, newPeer.IncomingConfig(), outgoing); client.err != nil {
		t.Errorf("server of the new CA after Reload: client error = %v", client.err)
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func TestMinVersionAndCipherSuites(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, "server", ServerName("dc1"))

	tls13 := mustNew(t, Config{CertFile: srvCert, KeyFile: srvKey, MinVersion: tls.VersionTLS13})
	cli12 := &tls.Config{RootCAs: ca.pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12}
	if srv, _ := handshake(t, tls13.IncomingConfig(), cli12); srv.err == nil {
		t.Error("TLS 1.2 client accepted by a TLS 1.3 minimum")
	}
	if srv, cli := handshake(t, tls13.IncomingConfig(), &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}); srv.err != nil ||
		cli.state.Version != tls.VersionTLS13 {
		t.Errorf("TLS 1.3 client: error %v, version %x; want TLS 1.3", srv.err, cli.state.Version)
	}

	want := uint16(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
	suites := mustNew(t, Config{CertFile: srvCert, KeyFile: srvKey, CipherSuites: []uint16{want}})
	cli := cli12.Clone()
	cli.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	if srv, _ := handshake(t, suites.IncomingConfig(), cli); srv.err == nil {
		t.Error("client offering only a suite the server does not allow was accepted")
	}
	cli.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, want}
	if srv, _ := handshake(t, suites.IncomingConfig(), cli); srv.err != nil || srv.state.CipherSuite != want {
		t.Errorf("handshake: error %v, suite %s; want %s", srv.err, tls.CipherSuiteName(srv.state.CipherSuite), tls.CipherSuiteName(want))
	}
	// The outgoing side honours them too.
	if _, c := handshake(t, tls13.IncomingConfig(), mustNew(t, Config{MinVersion: tls.VersionTLS12}).OutgoingConfig()); c.err != nil ||
		c.state.Version != tls.VersionTLS13 {
		t.Errorf("outgoing handshake: error %v, version %x", c.err, c.state.Version)
	}
	out := mustNew(t, Config{CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}).OutgoingConfig()
	out.MaxVersion = tls.VersionTLS12
	if _, c := handshake(t, suites.IncomingConfig(), out); c.err == nil {
		t.Error("outgoing config offering only a suite the server refuses connected")
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	certFile, keyFile := ca.issue(t, "agent", ServerName("dc1"))
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name   string
		cfg    Config
		is     error
		naming string
	}{
		{"verify_incoming without CA", Config{CertFile: certFile, KeyFile: keyFile, VerifyIncoming: true}, ErrNoCA, ""},
		{"verify_outgoing without CA", Config{VerifyOutgoing: true}, ErrNoCA, ""},
		{"verify_incoming without certificate", Config{CAFile: ca.certFile, VerifyIncoming: true}, ErrNoCertificate, ""},
		{"missing CA", Config{CAFile: missing}, fs.ErrNotExist, missing},
		{"missing key", Config{CertFile: certFile, KeyFile: missing}, fs.ErrNotExist, missing},
		{"CA is a key", Config{CAFile: keyFile}, nil, keyFile},
		{"CA directory without files", Config{CAPath: t.TempDir()}, nil, "CA directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil {
				t.Fatal("New() error = nil")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("New() error = %v, want errors.Is %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("New() error = %v, want it to name %s", err, tc.naming)
			}
		})
	}
	// A CA directory is read.
	caDir := filepath.Join(dir, "cas")
	if err := os.Mkdir(caDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, caDir, "ca.pem", ca.cert)
	if _, err := New(Config{CAPath: caDir, VerifyOutgoing: true}); err != nil {
		t.Errorf("New(CAPath) error = %v", err)
	}
}

// TestHTTPS serves HTTP/2 over IncomingConfig with net/http, as the HTTPS
// listener will: mutual TLS, and a reload that applies to the next
// connection.
func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	certFile, keyFile := ca.issue(t, "agent", "first."+Domain)
	cliCert, cliKey := ca.issue(t, "cli", ClientName("dc1"))
	c := mustNew(t, Config{CAFile: ca.certFile, CertFile: certFile, KeyFile: keyFile, VerifyIncoming: true, Datacenter: "dc1"})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
		}),
		TLSConfig:         c.IncomingConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })

	get := func(certs []tls.Certificate) (*http.Response, error) {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.pool, ServerName: "localhost", Certificates: certs},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := client.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Header.Set("Body", string(body))
		return resp, nil
	}
	certs := []tls.Certificate{keyPair(t, cliCert, cliKey)}
	resp, err := get(certs)
	if err != nil {
		t.Fatalf("GET with a client certificate: %v", err)
	}
	if resp.Proto != "HTTP/2.0" || resp.Header.Get("Body") != ClientName("dc1") || resp.TLS.PeerCertificates[0].Subject.CommonName != "first."+Domain {
		t.Errorf("GET: proto %s, body %q, server %s; want HTTP/2.0, %s, first.%s",
			resp.Proto, resp.Header.Get("Body"), resp.TLS.PeerCertificates[0].Subject.CommonName, ClientName("dc1"), Domain)
	}
	if _, err := get(nil); err == nil {
		t.Error("GET without a client certificate succeeded")
	}

	newCert, newKey := ca.issue(t, "second", "second."+Domain)
	mustRename(t, newCert, certFile)
	mustRename(t, newKey, keyFile)
	if err := c.Reload(); err != nil {
		t.Fatalf("Reload() error = %v", err)
	}
	resp, err = get(certs)
	if err != nil {
		t.Fatalf("GET after Reload: %v", err)
	}
	if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "second."+Domain {
		t.Errorf("GET after Reload: server presented %s, want second.%s", got, Domain)
	}
}
