package agent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/tlsutil"
	"github.com/conclavehq/conclave/config"
)

// TestHTTPSOnly: with ports.http = -1 and ports.https the agent serves its
// API over TLS only, and agent/self shows the addresses.
func TestHTTPSOnly(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey, err := tlsutil.GenerateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := tlsutil.GenerateCert(tlsutil.CertOptions{CACert: caCert, CAKey: caKey,
		Name: tlsutil.ServerName("dc1"), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile := write("server.pem", cert), write("server-key.pem", key)
	a := testAgent(t, "https", func(c *config.Config) {
		c.Ports.HTTP, c.Ports.HTTPS = -1, 0
		c.TLS.HTTPS = config.TLSConfig{CertFile: certFile, KeyFile: keyFile}
		c.BootstrapExpect = 1
	})
	if got := a.HTTPAddr(); got != "" {
		t.Errorf("HTTPAddr() = %q with ports.http = -1, want empty", got)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caCert)
	// The certificate is for 127.0.0.1 and the agent's own loopback
	// address is another: name the server explicitly.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		RootCAs: pool, ServerName: tlsutil.ServerName("dc1")}}}
	resp, err := client.Get("https://" + a.HTTPSAddr() + "/v1/agent/self")
	if err != nil {
		t.Fatalf("GET /v1/agent/self over HTTPS: %v", err)
	}
	defer resp.Body.Close()
	var self api.Self
	if err := json.NewDecoder(resp.Body).Decode(&self); err != nil {
		t.Fatal(err)
	}
	if got := self.Stats["agent"]["https_addr"]; got != a.HTTPSAddr() || self.Stats["agent"]["http_addr"] != "" {
		t.Errorf("agent/self http_addr %q https_addr %q, want \"\" and %q", self.Stats["agent"]["http_addr"], got, a.HTTPSAddr())
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTPS answered over %s, want HTTP/2", resp.Proto)
	}
}
