package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/tlsutil"
	"github.com/conclavehq/conclave/test/testutil"
)

// testCA is a certificate authority whose files a test writes under dir.
type testCA struct {
	dir       string
	cert, key []byte
	File      string // the CA certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	cert, key, err := tlsutil.GenerateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatalf("GenerateCA() error = %v", err)
	}
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key}
	ca.File = filepath.Join(ca.dir, "ca.pem")
	writeTestFile(t, ca.File, cert)
	return ca
}

// issue writes a certificate for name (and 127.0.0.1 and ip), signed by
// ca, to dir/<file>.pem and dir/<file>-key.pem, replacing what is there.
// It returns the paths and the certificate's serial number.
func (ca *testCA) issue(t *testing.T, file, name, ip string) (certFile, keyFile string, serial *big.Int) {
	t.Helper()
	cert, key, err := tlsutil.GenerateCert(tlsutil.CertOptions{
		CACert: ca.cert, CAKey: ca.key, Name: name,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(ip)},
	})
	if err != nil {
		t.Fatalf("GenerateCert(%s) error = %v", name, err)
	}
	certFile, keyFile = filepath.Join(ca.dir, file+".pem"), filepath.Join(ca.dir, file+"-key.pem")
	writeTestFile(t, keyFile, key)
	writeTestFile(t, certFile, cert)
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, leaf.SerialNumber
}

// writeTestFile replaces path's contents at once (a rename), so that an
// agent reloading it never reads half a file.
func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serverPortTLS is the tls block of a production server: mutual TLS on the
// server port with verify_server_hostname.
func serverPortTLS(caFile, certFile, keyFile string) string {
	return fmt.Sprintf(`tls {
  defaults {
    ca_file         = %q
    cert_file       = %q
    key_file        = %q
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}
`, caFile, certFile, keyFile)
}

// tlsServers prepares n servers of a TLS cluster signed by ca, with
// bootstrap_expect = n. It does not start them.
func tlsServers(t *testing.T, ca *testCA, prefix string, n int) []*Node {
	t.Helper()
	nodes := startServers(t, prefix, n, n)
	for _, s := range nodes {
		cert, key, _ := ca.issue(t, s.Name, tlsutil.ServerName("dc1"), s.IP)
		s.Extra = serverPortTLS(ca.File, cert, key)
	}
	return nodes
}

// peerCert does a TLS handshake with addr, presenting cert if not nil,
// and returns the certificate the agent presented.
func peerCert(addr string, ca *testCA, cert *tls.Certificate) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: tlsutil.ServerName("dc1")}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tc := c.(*tls.Conn)
	// With TLS 1.3 a refused client certificate shows on the first read.
	tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, err
	}
	return tc.ConnectionState().PeerCertificates[0], nil
}

// TestTLSClusterFormsAndForwards: three servers with mutual TLS and
// verify_server_hostname on the server port form a cluster, a write
// through a follower is forwarded to the leader over TLS, and the server
// port speaks TLS only.
func TestTLSClusterFormsAndForwards(t *testing.T) {
	ca := newTestCA(t)
	nodes := tlsServers(t, ca, "tls", 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 30*time.Second, nodes...)
	leader, followers := leaderAndFollowers(t, nodes)

	c := NewKVClient(10*time.Second, 2)
	defer c.Close()
	mustPut(t, c, followers[0], "tls/key", []byte("over tls"), "", true)
	for _, n := range nodes {
		testutil.WaitFor(t, 10*time.Second, func() error {
			p, _, err := c.Get(n, "tls/key", "stale")
			switch {
			case err != nil:
				return err
			case p == nil || string(p.Value) != "over tls":
				return fmt.Errorf("stale GET tls/key via %s = %v, want %q", n.Name, p, "over tls")
			}
			return nil
		})
	}

	// A client agent with a client certificate sends its requests to a
	// server over TLS; the server forwards writes to the leader.
	agent := NewNode(t, "tlsclient", 0)
	agent.Client = true
	agent.Join = []string{nodes[0].SerfAddr()}
	cert, key, _ := ca.issue(t, "tlsclient", tlsutil.ClientName("dc1"), agent.IP)
	agent.Extra = serverPortTLS(ca.File, cert, key)
	agent.Start()
	testutil.WaitFor(t, 20*time.Second, func() error {
		_, err := c.Put(agent, "tls/client", []byte("from a client agent"), "")
		return err
	})
	if p, _, err := c.Get(leader, "tls/client", ""); err != nil || p == nil || string(p.Value) != "from a client agent" {
		t.Errorf("GET tls/client via %s = %v, %v; want the client agent's write", leader.Name, p, err)
	}

	// The server port presents the server's certificate to a client with
	// a certificate of the CA, refuses one without, and a plain connection
	// cannot pick a channel: a forwarded request in plain text gets no
	// answer.
	cliCert, cliKey, _ := ca.issue(t, "cli", tlsutil.ClientName("dc1"), leader.IP)
	pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peerCert(leader.RaftAddr(), ca, nil); err == nil {
		t.Errorf("TLS handshake with %s's server port without a client certificate succeeded", leader.Name)
	}
	if cert, err := peerCert(leader.RaftAddr(), ca, &pair); err != nil {
		t.Errorf("TLS handshake with %s's server port: %v", leader.Name, err)
	} else if cert.Subject.CommonName != tlsutil.ServerName("dc1") {
		t.Errorf("%s's server port presented %q, want %q", leader.Name, cert.Subject.CommonName, tlsutil.ServerName("dc1"))
	}
	conn, err := net.DialTimeout("tcp", leader.RaftAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "FGET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(7 * time.Second))
	var buf [64]byte
	if n, _ := conn.Read(buf[:]); strings.HasPrefix(string(buf[:n]), "HTTP/") {
		t.Errorf("a plain request on the TLS server port was answered: %q", buf[:n])
	}
}

// TestTLSIntrudersNeverJoinRaft: with mutual TLS and
// verify_server_hostname, a server whose certificate is signed by another
// CA, and one that presents a client agent's certificate of the cluster's
// CA, both started with retry_join at the cluster, may become gossip
// members (gossip encryption is separate) but never get the cluster's
// data, and the servers log why they refuse them.
func TestTLSIntrudersNeverJoinRaft(t *testing.T) {
	ca := newTestCA(t)
	nodes := tlsServers(t, ca, "ok", 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 30*time.Second, nodes...)
	leader, _ := leaderAndFollowers(t, nodes)
	c := NewKVClient(10*time.Second, 2)
	defer c.Close()
	mustPut(t, c, leader, "secret", []byte("s3cr3t"), "", true)

	// rogue trusts its own CA and presents a server name signed by it.
	rogueCA := newTestCA(t)
	rogue := NewNode(t, "rogue", 0)
	cert, key, _ := rogueCA.issue(t, "rogue", tlsutil.ServerName("dc1"), rogue.IP)
	rogue.Extra = serverPortTLS(rogueCA.File, cert, key)
	// impostor has the cluster's CA and a client agent's certificate.
	impostor := NewNode(t, "impostor", 0)
	cert, key, _ = ca.issue(t, "impostor", tlsutil.ClientName("dc1"), impostor.IP)
	impostor.Extra = serverPortTLS(ca.File, cert, key)
	intruders := []*Node{rogue, impostor}
	for _, n := range intruders {
		n.Join = []string{nodes[0].SerfAddr()}
		n.Start()
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		var members []api.Member
		if err := leader.Get("/v1/agent/members", &members); err != nil {
			return err
		}
		seen := 0
		for _, m := range members {
			if (m.Name == "rogue" || m.Name == "impostor") && m.Status == api.MemberStatusAlive {
				seen++
			}
		}
		if seen != 2 {
			return fmt.Errorf("%d of the intruders are alive gossip members, want 2", seen)
		}
		return nil
	})

	// For a while after they became members, neither may receive the
	// cluster's log: no key, no leader, nothing applied.
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		conf, err := leader.Configuration()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range conf.Servers {
			if s.Node == rogue.Name || s.Node == impostor.Name {
				t.Fatalf("%s is in the leader's Raft configuration (voter %t) at %s", s.Node, s.Voter, s.Address)
			}
		}
		for _, n := range intruders {
			if p, _, err := c.Get(n, "secret", "stale"); err == nil && p != nil {
				t.Fatalf("%s read the key %q from its replica", n.Name, p.Value)
			}
			if l := n.Leader(); l != "" {
				t.Fatalf("%s knows the leader %s: it is taking part in Raft", n.Name, l)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Neither ever entered the Raft configuration (checked above, every
	// 200 ms of the window): the reconciler probes a new server's
	// identity over the server port before AddVoter, and the TLS
	// handshake of that probe fails for both.

	// The cluster still commits.
	mustPut(t, c, leader, "after", []byte("ok"), "", true)

	logs := leader.Logs()
	for _, want := range []string{rogue.RaftAddr(), impostor.RaftAddr()} {
		if !strings.Contains(logs, want) {
			t.Errorf("the leader's log never names %s", want)
		}
	}
	shown := 0
	for _, l := range strings.Split(logs, "\n") {
		if shown < 6 && (strings.Contains(l, rogue.RaftAddr()) || strings.Contains(l, impostor.RaftAddr())) {
			t.Logf("leader: %.300s", l)
			shown++
		}
	}
	if !strings.Contains(logs, "certificate signed by unknown authority") {
		t.Error("the leader's log does not say the rogue's certificate is signed by an unknown authority")
	}
	if !strings.Contains(logs, "not server.dc1.conclave") && !strings.Contains(logs, tlsutil.ClientName("dc1")) {
		t.Error("the leader's log does not say the impostor's certificate is not for server.dc1.conclave")
	}
}

// httpsNode prepares a single server that serves its API over HTTPS only,
// with verify_incoming, signed by ca. It returns the node and the paths
// of its certificate and key, which tests replace.
func httpsNode(t *testing.T, ca *testCA) (n *Node, certFile, keyFile string) {
	t.Helper()
	n = NewNode(t, "https", 1)
	n.HTTPS = true
	certFile, keyFile, _ = ca.issue(t, "https", tlsutil.ServerName("dc1"), n.IP)
	n.Extra = fmt.Sprintf(`tls {
  defaults {
    ca_file   = %q
    cert_file = %q
    key_file  = %q
  }
  https {
    verify_incoming = true
  }
}
`, ca.File, certFile, keyFile)
	return n, certFile, keyFile
}

// TestHTTPSVerifyIncoming: with ports.http = -1 nothing serves plain HTTP;
// the HTTPS API with verify_incoming refuses a client without a
// certificate and serves the CLI given -ca-file, -client-cert and
// -client-key.
func TestHTTPSVerifyIncoming(t *testing.T) {
	ca := newTestCA(t)
	n, _, _ := httpsNode(t, ca)
	n.Start()
	cliCert, cliKey, _ := ca.issue(t, "cli", tlsutil.ClientName("dc1"), n.IP)
	cli := func(args ...string) (string, string, int) {
		return n.CLI(append(args[:1:1], append([]string{"-http-addr=https://" + n.HTTPAddr(), "-ca-file=" + ca.File,
			"-client-cert=" + cliCert, "-client-key=" + cliKey}, args[1:]...)...)...)
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		if out, errOut, code := cli("members"); code != 0 || !strings.Contains(out, "https") {
			return fmt.Errorf("conclave members = %d, %q, %q", code, out, errOut)
		}
		return nil
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.cert)
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, err := noCert.Get("https://" + n.HTTPAddr() + "/v1/agent/self"); err == nil {
		resp.Body.Close()
		t.Errorf("GET /v1/agent/self over HTTPS without a client certificate = %d, want a refused handshake", resp.StatusCode)
	}
	if _, errOut, code := n.CLI("members", "-http-addr=https://"+n.HTTPAddr(), "-ca-file="+ca.File); code == 0 {
		t.Error("conclave members without -client-cert succeeded, want refused")
	} else if !strings.Contains(errOut, "certificate") {
		t.Errorf("conclave members without -client-cert: stderr %q, want the TLS error", errOut)
	}

	out, errOut, code := cli("info")
	if code != 0 {
		t.Fatalf("conclave info = %d: %s", code, errOut)
	}
	if !strings.Contains(out, "https_addr = "+n.HTTPAddr()) {
		t.Errorf("conclave info does not show https_addr = %s:\n%s", n.HTTPAddr(), out)
	}

	// Plain HTTP is off: nothing listens on its default port, and the HTTPS
	// port does not answer plain HTTP.
	for _, addr := range []string{net.JoinHostPort(n.IP, "8500")} {
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on %s with ports.http = -1", addr)
		}
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + n.HTTPAddr() + "/v1/agent/self"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain GET on the HTTPS port = 200, want refused")
		}
		resp.Body.Close()
	}
}

// TestTLSReload: a replaced certificate is served on the next connection
// after SIGHUP and after "conclave reload"; a broken file on reload keeps
// the certificate being served, and "conclave reload" says which file.
func TestTLSReload(t *testing.T) {
	ca := newTestCA(t)
	n, certFile, keyFile := httpsNode(t, ca)
	n.Start()
	cliCert, cliKey, _ := ca.issue(t, "cli", tlsutil.ClientName("dc1"), n.IP)
	pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	served := func() (*big.Int, error) {
		cert, err := peerCert(n.HTTPAddr(), ca, &pair)
		if err != nil {
			return nil, err
		}
		return cert.SerialNumber, nil
	}
	reload := func() (string, int) {
		_, errOut, code := n.CLI("reload", "-http-addr=https://"+n.HTTPAddr(), "-ca-file="+ca.File,
			"-client-cert="+cliCert, "-client-key="+cliKey)
		return errOut, code
	}
	testutil.WaitFor(t, 20*time.Second, func() error { _, err := served(); return err })
	waitServed := func(want *big.Int) {
		t.Helper()
		testutil.WaitFor(t, 10*time.Second, func() error {
			got, err := served()
			if err != nil {
				return err
			}
			if got.Cmp(want) != 0 {
				return fmt.Errorf("served serial %x, want %x", got, want)
			}
			return nil
		})
	}

	_, _, second := ca.issue(t, "https", tlsutil.ServerName("dc1"), n.IP)
	if err := syscall.Kill(n.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitServed(second)

	_, _, third := ca.issue(t, "https", tlsutil.ServerName("dc1"), n.IP)
	if errOut, code := reload(); code != 0 {
		t.Fatalf("conclave reload = %d: %s", code, errOut)
	}
	if got, err := served(); err != nil || got.Cmp(third) != 0 {
		t.Fatalf("after conclave reload the next connection got serial %x (%v), want %x", got, err, third)
	}

	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, certFile, []byte("not a certificate\n"))
	errOut, code := reload()
	if code != 1 || !strings.Contains(errOut, "Reload failed") || !strings.Contains(errOut, certFile) {
		t.Errorf("conclave reload with a broken certificate = %d, %q; want 1 naming %s", code, errOut, certFile)
	}
	if strings.Contains(errOut, strings.TrimSpace(string(keyPEM))) {
		t.Error("the reload error shows the key")
	}
	if err := syscall.Kill(n.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if strings.Count(n.Logs(), "reload failed") < 2 {
			return errors.New("no second \"reload failed\" in the log")
		}
		return nil
	})
	if got, err := served(); err != nil || got.Cmp(third) != 0 {
		t.Errorf("after a failed reload the next connection got serial %x (%v), want the previous %x", got, err, third)
	}
	if strings.Contains(n.Logs(), "PRIVATE KEY") {
		t.Error("the agent's log shows a private key")
	}
}
