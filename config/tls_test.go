package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeTestPKI writes, in the current directory, ca.pem, a certificate
// cert.pem with its key key.pem, and other-key.pem, a key that does not
// match cert.pem.
func writeTestPKI(t *testing.T) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	writePEM := func(name, typ string, der []byte) {
		if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(name, "EC PRIVATE KEY", der)
	}
	caKey, certKey := newKey(), newKey()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "server.dc1.conclave"},
		DNSNames:     []string{"server.dc1.conclave"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, certKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM("ca.pem", "CERTIFICATE", caDER)
	writePEM("cert.pem", "CERTIFICATE", leafDER)
	writeKey("key.pem", certKey)
	writeKey("other-key.pem", newKey())
}

// TestLoadTLS checks that internal_rpc and https inherit each key they
// leave out from tls.defaults, key by key.
func TestLoadTLS(t *testing.T) {
	inTempDir(t)
	writeTestPKI(t)
	writeFiles(t, map[string]string{"tls.hcl": `
ports {
  http  = -1
  https = 8501
}
tls {
  defaults {
    ca_file         = "ca.pem"
    cert_file       = "cert.pem"
    key_file        = "key.pem"
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
  https {
    verify_incoming = false
    tls_min_version = "TLSv1_3"
  }
}
`})
	res := mustLoad(t, nil, "tls.hcl")
	want := TLS{
		InternalRPC: TLSConfig{
			CAFile: "ca.pem", CertFile: "cert.pem", KeyFile: "key.pem",
			VerifyIncoming: true, VerifyOutgoing: true, VerifyServerHostname: true,
			MinVersion: tls.VersionTLS12,
		},
		HTTPS: TLSConfig{
			CAFile: "ca.pem", CertFile: "cert.pem", KeyFile: "key.pem",
			VerifyIncoming: false, VerifyOutgoing: true,
			MinVersion: tls.VersionTLS13,
		},
	}
	if diff := cmp.Diff(want, res.Config.TLS); diff != "" {
		t.Errorf("Load() TLS mismatch (-want +got):\n%s", diff)
	}
	if got := res.Config.Ports; got.HTTP != -1 || got.HTTPS != 8501 {
		t.Errorf("Load() ports = %+v, want http -1, https 8501", got)
	}
}

// TestLoadTLSCipherSuites checks that tls_cipher_suites is parsed into IDs
// and inherited.
func TestLoadTLSCipherSuites(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{"tls.hcl": `
tls {
  defaults {
    tls_cipher_suites = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
  }
  https {
    tls_cipher_suites = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
  }
}
`})
	c := mustLoad(t, nil, "tls.hcl").Config
	want := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if diff := cmp.Diff(want, c.TLS.InternalRPC.CipherSuites); diff != "" {
		t.Errorf("internal_rpc cipher suites (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, c.TLS.HTTPS.CipherSuites); diff != "" {
		t.Errorf("https cipher suites (-want +got):\n%s", diff)
	}
}

// TestLoadTLSErrors checks each problem of the tls block, at its
// file:line:column. A problem in tls.defaults that both listeners inherit
// is reported once, at the defaults key.
func TestLoadTLSErrors(t *testing.T) {
	tests := []struct {
		name, file, src string
		want            []string
	}{
		{
			name: "missing cert file",
			src:  "tls {\n  defaults {\n    cert_file = \"nope.pem\"\n    key_file = \"key.pem\"\n  }\n}\n",
			want: []string{`tls.hcl:3:17: Invalid tls.defaults.cert_file; read certificate "nope.pem": no such file or directory.`},
		},
		{
			name: "key is a device",
			src:  "tls {\n  defaults {\n    cert_file = \"cert.pem\"\n    key_file = \"/dev/zero\"\n  }\n}\n",
			want: []string{`tls.hcl:3:17: Invalid tls.defaults.cert_file; read key "/dev/zero": not a regular file.`},
		},
		{
			name: "key does not match",
			src:  "tls {\n  https {\n    cert_file = \"cert.pem\"\n    key_file = \"other-key.pem\"\n  }\n}\n",
			want: []string{`tls.hcl:3:17: Invalid tls.https.cert_file; load certificate "cert.pem" and key "other-key.pem": tls: private key does not match public key.`},
		},
		{
			name: "not PEM",
			src:  "tls {\n  internal_rpc {\n    cert_file = \"tls.hcl\"\n    key_file = \"key.pem\"\n  }\n}\n",
			want: []string{`tls.hcl:3:17: Invalid tls.internal_rpc.cert_file; load certificate "tls.hcl" and key "key.pem": tls: failed to find any PEM data in certificate input.`},
		},
		{
			name: "cert without key",
			src:  "tls {\n  defaults {\n    cert_file = \"cert.pem\"\n  }\n}\n",
			want: []string{`tls.hcl:3:5: Invalid tls.defaults.cert_file; cert_file is set but key_file is not; set both.`},
		},
		{
			name: "CA file without certificate",
			src:  "tls {\n  defaults {\n    ca_file = \"key.pem\"\n  }\n}\n",
			want: []string{`tls.hcl:3:15: Invalid tls.defaults.ca_file; CA file "key.pem" has no PEM certificate.`},
		},
		{
			name: "CA path empty",
			src:  "tls {\n  defaults {\n    ca_path = \"empty\"\n  }\n}\n",
			want: []string{`tls.hcl:3:15: Invalid tls.defaults.ca_path; CA directory "empty" has no certificate files.`},
		},
		{
			name: "TLS 1.1",
			src:  "tls {\n  defaults {\n    tls_min_version = \"TLSv1_1\"\n  }\n}\n",
			want: []string{`tls.hcl:3:23: Invalid tls.defaults.tls_min_version; TLS 1.0 and 1.1 are deprecated (RFC 8996) and refused; use "TLSv1_2" or "TLSv1_3", got "TLSv1_1".`},
		},
		{
			name: "unknown version",
			src:  "tls {\n  https {\n    tls_min_version = \"tls13\"\n  }\n}\n",
			want: []string{`tls.hcl:3:23: Invalid tls.https.tls_min_version; tls_min_version must be "TLSv1_2" or "TLSv1_3", got "tls13".`},
		},
		{
			name: "unknown cipher suite",
			src:  "tls {\n  defaults {\n    tls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_FAST\"\n  }\n}\n",
			want: []string{`tls.hcl:3:25: Invalid tls.defaults.tls_cipher_suites; unknown cipher suite "TLS_FAST"; use Go's names, such as "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".`},
		},
		{
			name: "insecure cipher suite",
			src:  "tls {\n  defaults {\n    tls_cipher_suites = \"TLS_RSA_WITH_RC4_128_SHA\"\n  }\n}\n",
			want: []string{`tls.hcl:3:25: Invalid tls.defaults.tls_cipher_suites; cipher suite TLS_RSA_WITH_RC4_128_SHA is insecure and refused.`},
		},
		{
			name: "TLS 1.3 cipher suite",
			src:  "tls {\n  defaults {\n    tls_cipher_suites = \"TLS_AES_128_GCM_SHA256\"\n  }\n}\n",
			want: []string{`tls.hcl:3:25: Invalid tls.defaults.tls_cipher_suites; cipher suite TLS_AES_128_GCM_SHA256 is a TLS 1.3 suite, and TLS 1.3 suites are not configurable; leave it out.`},
		},
		{
			name: "verify_incoming without CA",
			src:  "tls {\n  internal_rpc {\n    cert_file = \"cert.pem\"\n    key_file = \"key.pem\"\n    verify_incoming = true\n  }\n}\n",
			want: []string{`tls.hcl:5:5: Invalid tls.internal_rpc.verify_incoming; verify_incoming needs the CA that client certificates are checked against; set ca_file or ca_path.`},
		},
		{
			name: "verify_incoming without certificate",
			src:  "tls {\n  defaults {\n    ca_file = \"ca.pem\"\n    verify_incoming = true\n  }\n}\n",
			want: []string{`tls.hcl:4:5: Invalid tls.defaults.verify_incoming; verify_incoming needs a certificate for this agent to present; set cert_file and key_file.`},
		},
		{
			name: "verify_outgoing without CA",
			src:  "tls {\n  defaults {\n    verify_outgoing = true\n  }\n}\n",
			want: []string{`tls.hcl:3:5: Invalid tls.defaults.verify_outgoing; verify_outgoing needs the CA that server certificates are checked against; set ca_file or ca_path.`},
		},
		{
			name: "verify_server_hostname without verify_outgoing",
			src:  "tls {\n  defaults {\n    ca_file = \"ca.pem\"\n  }\n  internal_rpc {\n    verify_server_hostname = true\n  }\n}\n",
			want: []string{`tls.hcl:6:5: Invalid tls.internal_rpc.verify_server_hostname; verify_server_hostname checks the certificate of the server a connection goes to, which only verify_outgoing makes the agent verify; set verify_outgoing = true as well.`},
		},
		{
			name: "verify_server_hostname in https",
			src:  "tls {\n  https {\n    verify_server_hostname = true\n  }\n}\n",
			want: []string{`tls.hcl:3:5: Invalid tls.https.verify_server_hostname; verify_server_hostname applies to the server port only; set it in tls.internal_rpc.`},
		},
		{
			name: "https port without certificate",
			src:  "ports {\n  https = 8501\n}\ntls {\n  internal_rpc {\n    cert_file = \"cert.pem\"\n    key_file = \"key.pem\"\n  }\n}\n",
			want: []string{`tls.hcl:2:11: Missing HTTPS certificate; ports.https is 8501, but no certificate is configured for HTTPS; set tls.https.cert_file and key_file (or tls.defaults.cert_file and key_file), or set ports.https = -1.`},
		},
		{
			name: "HTTP and HTTPS off",
			src:  "ports {\n  http = -1\n}\n",
			want: []string{`tls.hcl:2:10: No HTTP API; ports.http and ports.https are both -1 (off), so the HTTP API would not be served; set one of them to a port.`},
		},
		{
			name: "https port out of range",
			src:  "ports {\n  https = -2\n}\n",
			want: []string{`tls.hcl:2:11: Invalid ports.https; ports.https must be between 0 and 65535, or -1 for off, got -2.`},
		},
		{
			name: "HTTPS collides with HTTP",
			src:  "ports {\n  https = 8500\n}\ntls {\n  https {\n    cert_file = \"cert.pem\"\n    key_file = \"key.pem\"\n  }\n}\n",
			want: []string{`tls.hcl:2:11: Port collision; ports.http and ports.https both use port 8500 on client_addr 127.0.0.1; give each its own port.`},
		},
		{
			name: "inherited suites with TLS 1.3",
			src:  "tls {\n  defaults {\n    tls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\"\n  }\n  https {\n    tls_min_version = \"TLSv1_3\"\n  }\n}\n",
			want: []string{`tls.hcl:3:5: Invalid tls.defaults.tls_cipher_suites; tls_cipher_suites has no effect with tls_min_version = "TLSv1_3": TLS 1.3 suites are not configurable; remove one of them.`},
		},
		{
			name: "empty cipher suite name",
			src:  "tls {\n  https {\n    tls_cipher_suites = \"\"\n  }\n}\n",
			want: []string{`tls.hcl:3:25: Invalid tls.https.tls_cipher_suites; tls_cipher_suites has an empty name; give Go's names separated by commas, such as "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".`},
		},
		{
			name: "legacy key",
			src:  "cert_file = \"cert.pem\"\n",
			want: []string{`tls.hcl:1:1: Consul setting "cert_file" is not supported by Conclave; A legacy TLS key that Conclave does not read; set tls.defaults.cert_file instead. Remove the setting.`},
		},
		{
			name: "unknown key in a block",
			src:  "tls {\n  defaults {\n    verify_incomming = true\n  }\n}\n",
			want: []string{`tls.hcl:3:5: Unsupported argument; An argument named "verify_incomming" is not expected here. Did you mean "verify_incoming"?`},
		},
		{
			name: "JSON",
			file: "tls.json",
			src:  `{"tls": {"defaults": {"verify_outgoing": true}, "https": {"tls_min_version": "TLSv1_0"}}}`,
			want: []string{
				`tls.json:1:78: Invalid tls.https.tls_min_version; TLS 1.0 and 1.1 are deprecated (RFC 8996) and refused; use "TLSv1_2" or "TLSv1_3", got "TLSv1_0".`,
			},
		},
		{
			name: "JSON validation",
			file: "tls.json",
			src:  `{"tls": {"defaults": {"verify_outgoing": true}}}`,
			want: []string{
				`tls.json:1:23: Invalid tls.defaults.verify_outgoing; verify_outgoing needs the CA that server certificates are checked against; set ca_file or ca_path.`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inTempDir(t)
			writeTestPKI(t)
			if err := os.Mkdir("empty", 0o755); err != nil {
				t.Fatal(err)
			}
			file := tc.file
			if file == "" {
				file = "tls.hcl"
			}
			writeFiles(t, map[string]string{file: tc.src})
			_, err := Load(LoadOptions{Paths: []string{file}})
			if err == nil {
				t.Fatalf("Load() error = nil, want %q", tc.want)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Fatalf("Load() error %#v is not a *Error", e)
				}
				got = append(got, ce.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Load() errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadTLSGRPC checks that Consul's tls.grpc block is a warning, as
// Conclave has no gRPC listener.
func TestLoadTLSGRPC(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{"tls.hcl": "tls {\n  grpc {\n    use_auto_cert = true\n  }\n}\n"})
	res := mustLoad(t, nil, "tls.hcl")
	want := []string{`tls.hcl:2:3: Consul setting "tls.grpc" is not supported by Conclave; Conclave has no gRPC listener. The setting is ignored.`}
	if diff := cmp.Diff(want, res.Warnings); diff != "" {
		t.Errorf("Load() warnings (-want +got):\n%s", diff)
	}
}
