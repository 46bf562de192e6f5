package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// tlsEnv lists the variables TLSConfig falls back to.
var tlsEnv = []string{
	CACertEnv, ConsulCACertEnv, CAPathEnv, ConsulCAPathEnv,
	ClientCertEnv, ConsulClientCertEnv, ClientKeyEnv, ConsulClientKeyEnv,
	HTTPSSLEnv, ConsulHTTPSSLEnv, HTTPSSLVerifyEnv, ConsulHTTPSSLVerifyEnv,
	TLSServerNameEnv, ConsulTLSServerNameEnv, HTTPAddrEnv, ConsulHTTPAddrEnv,
}

func clearTLSEnv(t *testing.T) {
	t.Helper()
	for _, k := range tlsEnv {
		t.Setenv(k, "")
	}
}

// newTLSAgent starts an HTTPS server that answers GET /v1/status/leader,
// and writes its certificate to a CA file. With clientCAs, it requires a
// client certificate signed by them.
func newTLSAgent(t *testing.T, clientCAs *x509.CertPool) (srv *httptest.Server, caFile string) {
	t.Helper()
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`"127.0.0.1:8300"`))
	}))
	if clientCAs != nil {
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	}
	// Refused handshakes are what some tests expect; keep them out of the
	// test output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

func leader(t *testing.T, cfg Config) error {
	t.Helper()
	c, err := NewClientConfig(cfg)
	if err != nil {
		return err
	}
	_, err = c.Leader()
	return err
}

func TestClientTLS(t *testing.T) {
	srv, caFile := newTLSAgent(t, nil)
	hostPort := strings.TrimPrefix(srv.URL, "https://")
	tests := []struct {
		name    string
		cfg     Config
		env     map[string]string
		wantErr string
	}{
		{name: "CA file", cfg: Config{Address: srv.URL, TLS: TLSConfig{CAFile: caFile}}},
		{name: "no CA", cfg: Config{Address: srv.URL}, wantErr: "certificate signed by unknown authority"},
		{name: "CONCLAVE_CACERT", cfg: Config{Address: srv.URL}, env: map[string]string{CACertEnv: caFile}},
		{name: "CONSUL_CACERT", cfg: Config{Address: srv.URL}, env: map[string]string{ConsulCACertEnv: caFile}},
		{
			name: "flag over CONCLAVE_CACERT", cfg: Config{Address: srv.URL, TLS: TLSConfig{CAFile: caFile}},
			env: map[string]string{CACertEnv: filepath.Join(t.TempDir(), "missing.pem")},
		},
		{
			name: "CONCLAVE_CACERT over CONSUL_CACERT", cfg: Config{Address: srv.URL},
			env: map[string]string{CACertEnv: filepath.Join(t.TempDir(), "missing.pem"), ConsulCACertEnv: caFile}, wantErr: "missing.pem",
		},
		{name: "CA path", cfg: Config{Address: srv.URL, TLS: TLSConfig{CAPath: filepath.Dir(caFile)}}},
		{name: "CONCLAVE_HTTP_SSL", cfg: Config{Address: hostPort}, env: map[string]string{HTTPSSLEnv: "true", CACertEnv: caFile}},
		{name: "CONSUL_HTTP_SSL", cfg: Config{Address: hostPort}, env: map[string]string{ConsulHTTPSSLEnv: "1", CACertEnv: caFile}},
		{name: "bad CONCLAVE_HTTP_SSL", cfg: Config{Address: hostPort}, env: map[string]string{HTTPSSLEnv: "yes"}, wantErr: "parse CONCLAVE_HTTP_SSL: invalid syntax"},
		{name: "no verify", cfg: Config{Address: srv.URL, TLS: TLSConfig{InsecureSkipVerify: true}}},
		{name: "CONSUL_HTTP_SSL_VERIFY", cfg: Config{Address: srv.URL}, env: map[string]string{ConsulHTTPSSLVerifyEnv: "false"}},
		{name: "server name", cfg: Config{Address: srv.URL, TLS: TLSConfig{CAFile: caFile, ServerName: "example.com"}}},
		{
			name: "wrong server name", cfg: Config{Address: srv.URL, TLS: TLSConfig{CAFile: caFile}},
			env: map[string]string{TLSServerNameEnv: "server.dc1.conclave"}, wantErr: "not server.dc1.conclave",
		},
		{name: "CA file not PEM", cfg: Config{Address: srv.URL, TLS: TLSConfig{CAFile: "tls_test.go"}}, wantErr: "CA file tls_test.go has no PEM certificate"},
		{name: "cert without key", cfg: Config{Address: srv.URL, TLS: TLSConfig{CertFile: caFile}}, wantErr: "given without a client key"},
		{
			name: "TLS files ignored for http", cfg: Config{Address: "http://" + hostPort},
			env: map[string]string{CACertEnv: filepath.Join(t.TempDir(), "missing.pem")}, wantErr: "Unexpected response code: 400 (Client sent an HTTP request to an HTTPS server.)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearTLSEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := leader(t, tc.cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Leader() error = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Leader() error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestClientTLSClientCert checks the client certificate against an agent
// that requires one, with certificates as "conclave tls" makes them.
func TestClientTLSClientCert(t *testing.T) {
	clearTLSEnv(t)
	dir := t.TempDir()
	caPEM, caKey, err := tlsutil.GenerateCA(tlsutil.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := tlsutil.GenerateCert(tlsutil.CertOptions{CACert: caPEM, CAKey: caKey, Name: tlsutil.ClientName("dc1")})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	for path, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	srv, caFile := newTLSAgent(t, pool)
	if err := leader(t, Config{Address: srv.URL, TLS: TLSConfig{CAFile: caFile}}); err == nil {
		t.Error("Leader() without a client certificate succeeded against an agent that requires one")
	}
	if err := leader(t, Config{Address: srv.URL, TLS: TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}}); err != nil {
		t.Errorf("Leader() with a client certificate error = %v", err)
	}
	t.Setenv(ConsulClientCertEnv, certFile)
	t.Setenv(ClientKeyEnv, keyFile)
	if err := leader(t, Config{Address: srv.URL, TLS: TLSConfig{CAFile: caFile}}); err != nil {
		t.Errorf("Leader() with CONSUL_CLIENT_CERT and CONCLAVE_CLIENT_KEY error = %v", err)
	}
}
