package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"testing"
)

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerate(t *testing.T) {
	caPEM, caKey, err := GenerateCA(CAOptions{Days: 10})
	if err != nil {
		t.Fatalf("GenerateCA() error = %v", err)
	}
	ca := parseCert(t, caPEM)
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v, key usage %b; want a CA that signs certificates", ca.IsCA, ca.KeyUsage)
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if d := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24; d < 10 || d > 10.01 {
		t.Errorf("CA valid %.2f days, want 10", d)
	}
	certPEM, _, err := GenerateCert(CertOptions{
		CACert: caPEM, CAKey: caKey, Name: ServerName("dc1"),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatalf("GenerateCert() error = %v", err)
	}
	cert := parseCert(t, certPEM)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		for _, name := range []string{"server.dc1.conclave", "localhost", "127.0.0.1"} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("Verify(%s, usage %v) error = %v", name, usage, err)
			}
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "server.dc2.conclave"}); err == nil {
		t.Error("Verify(server.dc2.conclave) succeeded")
	}
	if !slices.Equal(cert.DNSNames, []string{"server.dc1.conclave", "localhost"}) {
		t.Errorf("DNSNames = %q", cert.DNSNames)
	}

	// A certificate from another CA's key is refused.
	_, otherKey, err := GenerateCA(CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := GenerateCert(CertOptions{CACert: caPEM, CAKey: otherKey, Name: "x"}); err == nil {
		t.Error("GenerateCert() with a key of another CA succeeded")
	}
}

func TestGenerateNameConstraint(t *testing.T) {
	caPEM, caKey, err := GenerateCA(CAOptions{NameConstraint: true, AdditionalConstraints: []string{"example.internal"}})
	if err != nil {
		t.Fatalf("GenerateCA() error = %v", err)
	}
	ca := parseCert(t, caPEM)
	if want := []string{"conclave", "localhost", "example.internal"}; !slices.Equal(ca.PermittedDNSDomains, want) {
		t.Errorf("PermittedDNSDomains = %q, want %q", ca.PermittedDNSDomains, want)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for name, ok := range map[string]bool{"server.dc1.conclave": true, "www.example.com": false} {
		certPEM, _, err := GenerateCert(CertOptions{CACert: caPEM, CAKey: caKey, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseCert(t, certPEM).Verify(x509.VerifyOptions{Roots: pool, DNSName: name})
		if (err == nil) != ok {
			t.Errorf("Verify(%s) error = %v, want accepted %v", name, err, ok)
		}
	}
}
