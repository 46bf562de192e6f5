package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CAOptions describes a certificate authority for GenerateCA.
type CAOptions struct {
	// Domain is the domain the CA signs for, used in its name and its
	// name constraint. Default Domain ("conclave").
	Domain string

	// Days is how long the CA is valid, in days. Default 1825 (5 years),
	// as Consul's.
	Days int

	// NameConstraint limits the CA to Domain, localhost and
	// AdditionalConstraints, so that a certificate it signs for any other
	// name is refused by clients that check name constraints.
	NameConstraint bool

	// AdditionalConstraints are more DNS domains the name constraint
	// permits.
	AdditionalConstraints []string

	// Now is the start of the validity; zero means time.Now(). For tests.
	Now time.Time
}

// CertOptions describes a certificate for GenerateCert.
type CertOptions struct {
	// CACert and CAKey are the PEM certificate and key of the CA that
	// signs.
	CACert, CAKey []byte

	// Name is the certificate's common name, and its first DNS name, such
	// as ServerName("dc1").
	Name string

	// DNSNames and IPAddresses are the other subject alternative names.
	DNSNames    []string
	IPAddresses []net.IP

	// Days is how long the certificate is valid, in days. Default 365.
	Days int

	// Now is the start of the validity; zero means time.Now(). For tests.
	Now time.Time
}

// GenerateCA returns the PEM certificate and key of a new self-signed
// ECDSA P-256 certificate authority.
func GenerateCA(opts CAOptions) (certPEM, keyPEM []byte, err error) {
	if opts.Domain == "" {
		opts.Domain = Domain
	}
	if opts.Days == 0 {
		opts.Days = 1825
	}
	if opts.Days < 0 {
		return nil, nil, fmt.Errorf("days must be positive, got %d", opts.Days)
	}
	key, serial, keyID, err := newKey("CA key")
	if err != nil {
		return nil, nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("Conclave Agent CA %s", serial),
			Organization: []string{"Conclave"},
		},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(0, 0, opts.Days),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          keyID,
		AuthorityKeyId:        keyID,
	}
	if opts.NameConstraint {
		tmpl.PermittedDNSDomainsCritical = true
		tmpl.PermittedDNSDomains = append([]string{opts.Domain, "localhost"}, opts.AdditionalConstraints...)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// GenerateCert returns the PEM certificate and key of a new ECDSA P-256
// certificate signed by the CA of opts, for both server and client
// authentication: a server uses the same certificate to serve and to dial.
func GenerateCert(opts CertOptions) (certPEM, keyPEM []byte, err error) {
	if opts.Name == "" {
		return nil, nil, errors.New("certificate name must not be empty")
	}
	if opts.Days == 0 {
		opts.Days = 365
	}
	if opts.Days < 0 {
		return nil, nil, fmt.Errorf("days must be positive, got %d", opts.Days)
	}
	ca, caKey, err := parseCA(opts.CACert, opts.CAKey)
	if err != nil {
		return nil, nil, err
	}
	key, serial, keyID, err := newKey("key")
	if err != nil {
		return nil, nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.Name},
		DNSNames:              append([]string{opts.Name}, opts.DNSNames...),
		IPAddresses:           opts.IPAddresses,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(0, 0, opts.Days),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		SubjectKeyId:          keyID,
		AuthorityKeyId:        ca.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// parseCA parses the PEM certificate and key of a CA.
func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, errors.New("parse CA certificate: no PEM certificate")
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, nil, errors.New("parse CA certificate: it is not a CA certificate")
	}
	kblk, _ := pem.Decode(keyPEM)
	if kblk == nil {
		return nil, nil, errors.New("parse CA key: no PEM key")
	}
	var signer crypto.Signer
	if k, err := x509.ParseECPrivateKey(kblk.Bytes); err == nil {
		signer = k
	} else if k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, nil, errors.New("parse CA key: not a signing key")
		}
		signer = s
	} else {
		return nil, nil, fmt.Errorf("parse CA key: %w", err)
	}
	if pub, ok := ca.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(signer.Public()) {
		return nil, nil, errors.New("CA key does not match the CA certificate")
	}
	return ca, signer, nil
}

// serialNumber returns a random 128-bit serial number.
func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}

// keyID returns the subject key ID of pub: the SHA-256 of its encoding,
// cut to 20 bytes.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// encodeKey returns key as a PEM "EC PRIVATE KEY", as Consul writes it.
func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// newKey makes the ECDSA P-256 key of a new certificate (what names it in
// an error), a random serial number and the key's subject key ID.
func newKey(what string) (key *ecdsa.PrivateKey, serial *big.Int, id []byte, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate %s: %w", what, err)
	}
	if serial, err = serialNumber(); err != nil {
		return nil, nil, nil, err
	}
	if id, err = keyID(key.Public()); err != nil {
		return nil, nil, nil, err
	}
	return key, serial, id, nil
}
