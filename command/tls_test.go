package command

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// readCert parses the PEM certificate in path.
func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// checkMode fails the test unless path has the permission bits want.
func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s mode = %v, want %v", path, got, want)
	}
}

// runTLS runs a tls command in the current directory.
func runTLS(t *testing.T, cmd func(ui cli.Ui) cli.Command, args ...string) (int, string, string) {
	t.Helper()
	ui := cli.NewMockUi()
	return run(t, ui, cmd(ui), args...)
}

// inTempDir runs the rest of the test in a new temporary directory, where
// the tls commands write their files, and returns a function that goes
// back to the package directory, for checkGolden.
func inTempDir(t *testing.T) (back func()) {
	t.Helper()
	pkg, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	return func() { t.Chdir(pkg) }
}

func caCreate(ui cli.Ui) cli.Command   { return &TLSCACreateCommand{Ui: ui} }
func certCreate(ui cli.Ui) cli.Command { return &TLSCertCreateCommand{Ui: ui} }

func TestTLSCACreate(t *testing.T) {
	back := inTempDir(t)
	code, stdout, stderr := runTLS(t, caCreate)
	if code != 0 {
		t.Fatalf("Run() = %d, stderr %q", code, stderr)
	}
	golden := stdout
	checkMode(t, "conclave-agent-ca-key.pem", 0o600)
	checkMode(t, "conclave-agent-ca.pem", 0o644)
	ca := readCert(t, "conclave-agent-ca.pem")
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || len(ca.PermittedDNSDomains) != 0 {
		t.Errorf("CA: IsCA %v, key usage %b, name constraint %q; want an unconstrained CA", ca.IsCA, ca.KeyUsage, ca.PermittedDNSDomains)
	}
	if d := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24; d < 1825 || d > 1825.01 {
		t.Errorf("CA valid %.2f days, want 1825", d)
	}
	if _, err := tls.LoadX509KeyPair("conclave-agent-ca.pem", "conclave-agent-ca-key.pem"); err != nil {
		t.Errorf("CA key does not match: %v", err)
	}

	// A second run refuses to overwrite, and leaves the files alone.
	before, _ := os.ReadFile("conclave-agent-ca-key.pem")
	code, stdout, stderr = runTLS(t, caCreate)
	if code != 1 || stdout != "" {
		t.Errorf("second Run() = %d, stdout %q; want 1, nothing", code, stdout)
	}
	checkOneLineError(t, stderr, `Error creating CA: file "conclave-agent-ca.pem" already exists`)
	if after, _ := os.ReadFile("conclave-agent-ca-key.pem"); string(after) != string(before) {
		t.Error("second Run() changed the CA key")
	}
	back()
	checkGolden(t, "tls_ca_create", golden)
}

func TestTLSCACreateOptions(t *testing.T) {
	t.Chdir(t.TempDir())
	code, stdout, stderr := runTLS(t, caCreate, "-domain", "example", "-days", "30", "-name-constraint",
		"-additional-name-constraint", "internal.test")
	if code != 0 {
		t.Fatalf("Run() = %d, stderr %q", code, stderr)
	}
	if want := "==> Saved example-agent-ca.pem\n==> Saved example-agent-ca-key.pem\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	ca := readCert(t, "example-agent-ca.pem")
	if want := []string{"example", "localhost", "internal.test"}; !slices.Equal(ca.PermittedDNSDomains, want) {
		t.Errorf("PermittedDNSDomains = %q, want %q", ca.PermittedDNSDomains, want)
	}
	if d := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24; d < 30 || d > 30.01 {
		t.Errorf("CA valid %.2f days, want 30", d)
	}
}

func TestTLSCACreateErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-days", "0"}, "Invalid -days: must be at least 1"},
		{[]string{"-additional-name-constraint", "x"}, "-additional-name-constraint needs -name-constraint"},
		{[]string{"extra"}, "This command takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Chdir(t.TempDir())
			code, _, stderr := runTLS(t, caCreate, tc.args...)
			if code != 1 {
				t.Errorf("Run() = %d, want 1", code)
			}
			checkOneLineError(t, stderr, tc.want)
		})
	}
}

// verifyCert checks that path verifies against the CA in caPath for
// every name, for server and client authentication.
func verifyCert(t *testing.T, caPath, path string, names ...string) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, caPath))
	cert := readCert(t, path)
	for _, name := range names {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s: Verify(%s, usage %d) error = %v", path, name, usage, err)
			}
		}
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || cert.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("%s: key is %T, want ECDSA P-256", path, cert.PublicKey)
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Errorf("%s: key usage %b lacks digital signature", path, cert.KeyUsage)
	}
	return cert
}

func TestTLSCertCreate(t *testing.T) {
	back := inTempDir(t)
	if code, _, stderr := runTLS(t, caCreate); code != 0 {
		t.Fatalf("ca create = %d, stderr %q", code, stderr)
	}

	code, stdout, stderr := runTLS(t, certCreate, "-server")
	if code != 0 {
		t.Fatalf("cert create -server = %d, stderr %q", code, stderr)
	}
	goldenServer := stdout
	checkMode(t, "dc1-server-conclave-0-key.pem", 0o600)
	checkMode(t, "dc1-server-conclave-0.pem", 0o644)
	srv := verifyCert(t, "conclave-agent-ca.pem", "dc1-server-conclave-0.pem", "server.dc1.conclave", "localhost", "127.0.0.1")
	if want := []string{"server.dc1.conclave", "localhost"}; !slices.Equal(srv.DNSNames, want) {
		t.Errorf("server DNSNames = %q, want %q", srv.DNSNames, want)
	}
	if d := srv.NotAfter.Sub(srv.NotBefore).Hours() / 24; d < 365 || d > 365.01 {
		t.Errorf("server certificate valid %.2f days, want 365", d)
	}
	if _, err := tls.LoadX509KeyPair("dc1-server-conclave-0.pem", "dc1-server-conclave-0-key.pem"); err != nil {
		t.Errorf("server key does not match: %v", err)
	}

	// The next one is numbered 1, with the extra names.
	code, stdout, stderr = runTLS(t, certCreate, "-server", "-additional-dnsname", "conclave.internal.test",
		"-additional-dnsname", "s2.internal.test", "-additional-ipaddress", "10.0.0.7", "-days", "10")
	if code != 0 {
		t.Fatalf("second cert create -server = %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "==> Saved dc1-server-conclave-1.pem\n==> Saved dc1-server-conclave-1-key.pem\n") {
		t.Errorf("second cert create stdout = %q, want dc1-server-conclave-1", stdout)
	}
	srv1 := verifyCert(t, "conclave-agent-ca.pem", "dc1-server-conclave-1.pem", "server.dc1.conclave", "conclave.internal.test", "s2.internal.test")
	if !slices.ContainsFunc(srv1.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(10, 0, 0, 7)) }) {
		t.Errorf("server IPAddresses = %v, want 10.0.0.7 among them", srv1.IPAddresses)
	}

	code, stdout, stderr = runTLS(t, certCreate, "-client", "-dc", "east")
	if code != 0 {
		t.Fatalf("cert create -client = %d, stderr %q", code, stderr)
	}
	goldenClient := stdout
	cli := verifyCert(t, "conclave-agent-ca.pem", "east-client-conclave-0.pem", "client.east.conclave", "localhost")
	if slices.Contains(cli.DNSNames, "server.east.conclave") {
		t.Errorf("client DNSNames = %q include the server name", cli.DNSNames)
	}
	checkMode(t, "east-client-conclave-0-key.pem", 0o600)
	back()
	checkGolden(t, "tls_cert_create_server", goldenServer)
	checkGolden(t, "tls_cert_create_client", goldenClient)
}

func TestTLSCertCreateErrors(t *testing.T) {
	tests := []struct {
		name  string
		noCA  bool
		files []string
		args  []string
		want  string
	}{
		{name: "neither", want: "Please provide either -server or -client"},
		{name: "both", args: []string{"-server", "-client"}, want: "Please provide either -server or -client"},
		{name: "bad IP", args: []string{"-server", "-additional-ipaddress", "10.0.0"}, want: `Invalid -additional-ipaddress "10.0.0": not an IP address`},
		{name: "no CA", noCA: true, args: []string{"-client"}, want: "Error reading CA certificate: open conclave-agent-ca.pem: no such file or directory"},
		{name: "CA of another domain", args: []string{"-client", "-domain", "other"}, want: "Error reading CA certificate: open other-agent-ca.pem"},
		{name: "key is not the CA's", args: []string{"-client", "-key", "other-ca-key.pem"}, want: "Error creating certificate: CA key does not match the CA certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if !tc.noCA {
				if code, _, stderr := runTLS(t, caCreate); code != 0 {
					t.Fatalf("ca create = %d, stderr %q", code, stderr)
				}
				if code, _, stderr := runTLS(t, caCreate, "-domain", "other-ca"); code != 0 {
					t.Fatalf("ca create = %d, stderr %q", code, stderr)
				}
				if err := os.Rename("other-ca-agent-ca-key.pem", "other-ca-key.pem"); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := runTLS(t, certCreate, tc.args...)
			if code != 1 || stdout != "" && !strings.HasPrefix(stdout, "==> Using") {
				t.Errorf("Run() = %d, stdout %q; want 1", code, stdout)
			}
			checkOneLineError(t, stderr, tc.want)
		})
	}
}

// TestTLSCertCreateNoOverwrite checks that a key file left without its
// certificate makes the next certificate take the next number.
func TestTLSCertCreateNoOverwrite(t *testing.T) {
	t.Chdir(t.TempDir())
	if code, _, stderr := runTLS(t, caCreate); code != 0 {
		t.Fatalf("ca create = %d, stderr %q", code, stderr)
	}
	if err := os.WriteFile("dc1-client-conclave-0-key.pem", []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runTLS(t, certCreate, "-client")
	if code != 0 || !strings.Contains(stdout, "dc1-client-conclave-1.pem") {
		t.Fatalf("Run() = %d, stdout %q, stderr %q; want dc1-client-conclave-1", code, stdout, stderr)
	}
	if b, _ := os.ReadFile("dc1-client-conclave-0-key.pem"); string(b) != "keep" {
		t.Error("Run() overwrote dc1-client-conclave-0-key.pem")
	}
}

// TestHTTPS runs a command against an HTTPS agent, with and without the
// CA of its certificate.
func TestHTTPS(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "-ca-file", args: []string{"-ca-file", "CA"}},
		{name: "no CA", wantErr: "Error querying Conclave agent: Get \"https://"},
		{name: "CONCLAVE_CACERT", env: map[string]string{api.CACertEnv: "CA"}},
		{name: "CONSUL_CACERT", env: map[string]string{api.ConsulCACertEnv: "CA"}},
		{name: "CONSUL_HTTP_SSL_VERIFY=false", env: map[string]string{api.ConsulHTTPSSLVerifyEnv: "false"}},
		{name: "-tls-server-name", args: []string{"-ca-file", "CA", "-tls-server-name", "example.com"}},
		{name: "wrong -tls-server-name", args: []string{"-ca-file", "CA", "-tls-server-name", "server.dc1.conclave"}, wantErr: "Error querying Conclave agent: Get \"https://"},
		{name: "-client-cert without key", args: []string{"-ca-file", "CA", "-client-cert", "CA"}, wantErr: "Error creating client: client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearHTTPEnv(t)
			agent, caFile := newFakeAgentTLS(t, map[string]reply{"GET /v1/kv/k": ok(`[{"Key":"k","Value":"dg=="}]`)})
			args := []string{"-http-addr", agent.addr}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "CA", caFile))
			}
			for k, v := range tc.env {
				t.Setenv(k, strings.ReplaceAll(v, "CA", caFile))
			}
			if tc.wantErr == "" {
				runKVGet(t, args...)
				return
			}
			ui := cli.NewMockUi()
			code, _, stderr := run(t, ui, &KVGetCommand{Meta: Meta{Ui: ui}}, append(args, "k")...)
			if code != 1 {
				t.Errorf("Run() = %d, want 1", code)
			}
			checkOneLineError(t, stderr, tc.wantErr)
		})
	}
}

// TestHTTPSFromEnv checks CONCLAVE_HTTP_SSL: a host:port address without
// a scheme is reached over HTTPS.
func TestHTTPSFromEnv(t *testing.T) {
	clearHTTPEnv(t)
	agent, caFile := newFakeAgentTLS(t, map[string]reply{"GET /v1/kv/k": ok(`[{"Key":"k","Value":"dg=="}]`)})
	t.Setenv(api.HTTPAddrEnv, strings.TrimPrefix(agent.addr, "https://"))
	t.Setenv(api.HTTPSSLEnv, "true")
	t.Setenv(api.CACertEnv, caFile)
	runKVGet(t)
}
