package serverport

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/tlsutil"
	"github.com/conclavehq/conclave/test/testutil"
)

// certs is a CA and the files of the certificates it signed, in a temp dir.
type certs struct {
	dir           string
	caCert, caKey []byte
	caFile        string
}

func newCerts(t *testing.T) *certs {
	t.Helper()
	cert, key, err := tlsutil.GenerateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatalf("GenerateCA() error = %v", err)
	}
	c := &certs{dir: t.TempDir(), caCert: cert, caKey: key}
	c.caFile = c.write(t, "ca.pem", cert)
	return c
}

func (c *certs) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// configurator returns a Configurator presenting a certificate for name
// (signed by c), with every verification on, as a server's.
func (c *certs) configurator(t *testing.T, file, name string) *tlsutil.Configurator {
	t.Helper()
	cert, key, err := tlsutil.GenerateCert(tlsutil.CertOptions{CACert: c.caCert, CAKey: c.caKey, Name: name,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatalf("GenerateCert() error = %v", err)
	}
	conf, err := tlsutil.New(tlsutil.Config{
		CAFile: c.caFile, CertFile: c.write(t, file+".pem", cert), KeyFile: c.write(t, file+"-key.pem", key),
		VerifyIncoming: true, VerifyOutgoing: true, VerifyServerHostname: true, Datacenter: "dc1",
	})
	if err != nil {
		t.Fatalf("tlsutil.New() error = %v", err)
	}
	return conf
}

// tlsMux starts a server port with conf; its internal channel answers
// "ok" behind ServersOnly for /internal/only.
func tlsMux(t *testing.T, conf *tlsutil.Configurator) *Mux {
	t.Helper()
	ip := testutil.IP(t)
	m, err := Listen(net.JoinHostPort(ip, "0"), ip, conf, testutil.Logger(t))
	if err != nil {
		t.Fatalf("Listen() error = %v", err)
	}
	srv := &http.Server{Handler: m.ServersOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}), "/internal/only")}
	done := make(chan struct{})
	go func() { defer close(done); m.Serve() }()
	go srv.Serve(m.Internal())
	t.Cleanup(func() { srv.Close(); m.Close(); <-done })
	return m
}

// raftAccepted dials Raft from conf and reports whether the mux handed
// the connection to Raft.
func raftAccepted(t *testing.T, m *Mux, conf *tlsutil.Configurator) bool {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := m.Raft().Accept(); err == nil {
			accepted <- c
		}
	}()
	stream := RaftStream{d: dialer{conf}}
	c, err := stream.Dial(m.Advertise().String(), 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	select {
	case a := <-accepted:
		a.Close()
		return true
	case <-time.After(time.Second):
		// The mux refuses after the handshake: it closes the connection.
		return false
	}
}

func get(t *testing.T, m *Mux, conf *tlsutil.Configurator, path string, forwarded bool) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Advertise().String()+path, nil)
	if forwarded {
		req.Header.Set(ForwardedHeader, "1")
	}
	resp, err := NewTLSClient(conf).Send(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestServerPortTLS(t *testing.T) {
	ca := newCerts(t)
	srv := ca.configurator(t, "server0", tlsutil.ServerName("dc1"))
	m := tlsMux(t, srv)

	t.Run("a server of this datacenter speaks Raft and calls every route", func(t *testing.T) {
		peer := ca.configurator(t, "server1", tlsutil.ServerName("dc1"))
		if !raftAccepted(t, m, peer) {
			t.Fatal("Raft connection from a server certificate refused, want accepted")
		}
		for _, fwd := range []bool{false, true} {
			if code, err := get(t, m, peer, "/internal/only", fwd); err != nil || code != http.StatusOK {
				t.Errorf("GET /internal/only (forwarded %t) = %d, %v; want 200", fwd, code, err)
			}
		}
	})

	t.Run("a client agent's certificate cannot speak Raft nor act as a server", func(t *testing.T) {
		client := ca.configurator(t, "client0", tlsutil.ClientName("dc1"))
		if raftAccepted(t, m, client) {
			t.Fatal("Raft connection from a client certificate accepted, want refused")
		}
		if code, err := get(t, m, client, "/internal/only", false); err != nil || code != http.StatusForbidden {
			t.Errorf("GET /internal/only = %d, %v; want 403", code, err)
		}
		if code, err := get(t, m, client, "/other", true); err != nil || code != http.StatusForbidden {
			t.Errorf("forwarded GET /other = %d, %v; want 403", code, err)
		}
		if code, err := get(t, m, client, "/other", false); err != nil || code != http.StatusOK {
			t.Errorf("GET /other = %d, %v; want 200 (client agents' own requests pass)", code, err)
		}
	})

	t.Run("another datacenter's server is refused", func(t *testing.T) {
		other := ca.configurator(t, "server-dc2", tlsutil.ServerName("dc2"))
		if raftAccepted(t, m, other) {
			t.Fatal("Raft connection from a dc2 server certificate accepted, want refused")
		}
	})

	t.Run("a certificate of another CA fails the handshake", func(t *testing.T) {
		rogue := newCerts(t).configurator(t, "rogue", tlsutil.ServerName("dc1"))
		if raftAccepted(t, m, rogue) {
			t.Fatal("Raft connection from another CA's certificate accepted, want refused")
		}
		if _, err := get(t, m, rogue, "/other", false); err == nil {
			t.Error("GET /other from another CA's certificate succeeded, want a failed handshake")
		}
	})

	t.Run("plain TCP cannot pick a channel", func(t *testing.T) {
		if raftAccepted(t, m, nil) {
			t.Fatal("plain Raft connection accepted on a TLS server port")
		}
		if _, err := get(t, m, nil, "/other", false); err == nil {
			t.Error("plain GET on a TLS server port succeeded, want an error")
		}
	})

	t.Run("a server dialing a port that presents a client certificate refuses it", func(t *testing.T) {
		impostor := tlsMux(t, ca.configurator(t, "client1", tlsutil.ClientName("dc1")))
		peer := ca.configurator(t, "server2", tlsutil.ServerName("dc1"))
		if raftAccepted(t, impostor, peer) {
			t.Fatal("dialed Raft to a port presenting a client certificate, want the handshake refused")
		}
	})
}
