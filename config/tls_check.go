package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// checkTLS checks the resolved tls block and the HTTP and HTTPS ports.
func (v *validator) checkTLS() {
	c := v.c
	v.checkTLSConfig("tls.internal_rpc.", &c.TLS.InternalRPC)
	if c.TLS.HTTPS.VerifyServerHostname {
		v.fail("tls.https.verify_server_hostname", false, "Invalid tls.https.verify_server_hostname",
			"verify_server_hostname applies to the server port only; set it in tls.internal_rpc.")
	}
	v.checkTLSConfig("tls.https.", &c.TLS.HTTPS)

	if c.Ports.HTTP < 0 && c.Ports.HTTPS < 0 {
		key, _ := v.later("ports.http", "ports.https")
		v.fail(key, true, "No HTTP API", "ports.http and ports.https are both -1 (off), so the HTTP API would not be served; "+
			"set one of them to a port.")
	}
	if c.Ports.HTTPS >= 0 && !c.TLS.HTTPS.Enabled() {
		v.fail("ports.https", true, "Missing HTTPS certificate", fmt.Sprintf(
			"ports.https is %d, but no certificate is configured for HTTPS; set tls.https.cert_file and key_file "+
				"(or tls.defaults.cert_file and key_file), or set ports.https = -1.", c.Ports.HTTPS))
	}
}

// checkTLSConfig checks one listener's TLS configuration. A key that
// listener inherits from tls.defaults is reported under the defaults key,
// and only once.
func (v *validator) checkTLSConfig(prefix string, t *TLSConfig) {
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	if t.MinVersion != tls.VersionTLS12 && t.MinVersion != tls.VersionTLS13 {
		v.tlsFail(prefix+"tls_min_version", true, "tls_min_version must be TLS 1.2 or TLS 1.3; TLS 1.0 and 1.1 are refused.")
	}
	for _, id := range t.CipherSuites {
		if _, problem := cipherSuite(tls.CipherSuiteName(id)); problem != "" {
			v.tlsFail(prefix+"tls_cipher_suites", true, problem)
			break
		}
	}
	if len(t.CipherSuites) > 0 && t.MinVersion == tls.VersionTLS13 {
		v.tlsFail(prefix+"tls_cipher_suites", false,
			"tls_cipher_suites has no effect with tls_min_version = \"TLSv1_3\": TLS 1.3 suites are not configurable; remove one of them.")
	}

	hasCA := t.CAFile != "" || t.CAPath != ""
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.tlsFail(prefix+"cert_file", false, "cert_file is set but key_file is not; set both.")
	case t.CertFile == "" && t.KeyFile != "":
		v.tlsFail(prefix+"key_file", false, "key_file is set but cert_file is not; set both.")
	case t.CertFile != "":
		if err := checkKeyPair(t.CertFile, t.KeyFile); err != nil {
			v.tlsFail(prefix+"cert_file", true, err.Error()+".")
		}
	}
	if t.CAFile != "" {
		if err := checkCAFile(t.CAFile); err != nil {
			v.tlsFail(prefix+"ca_file", true, err.Error()+".")
		}
	}
	if t.CAPath != "" {
		if err := checkCAPath(t.CAPath); err != nil {
			v.tlsFail(prefix+"ca_path", true, err.Error()+".")
		}
	}
	if t.VerifyIncoming && !hasCA {
		v.tlsFail(prefix+"verify_incoming", false,
			"verify_incoming needs the CA that client certificates are checked against; set ca_file or ca_path.")
	}
	if t.VerifyIncoming && t.CertFile == "" {
		v.tlsFail(prefix+"verify_incoming", false,
			"verify_incoming needs a certificate for this agent to present; set cert_file and key_file.")
	}
	if t.VerifyOutgoing && !hasCA {
		v.tlsFail(prefix+"verify_outgoing", false,
			"verify_outgoing needs the CA that server certificates are checked against; set ca_file or ca_path.")
	}
	if t.VerifyServerHostname && !t.VerifyOutgoing {
		v.tlsFail(prefix+"verify_server_hostname", false,
			"verify_server_hostname checks the certificate of the server a connection goes to, which only "+
				"verify_outgoing makes the agent verify; set verify_outgoing = true as well.")
	}
}

// tlsFail records a problem of a tls key, under the key the value was
// written as (tls.defaults.* for an inherited one), once per key.
func (v *validator) tlsFail(key string, atValue bool, detail string) {
	if from, ok := v.tlsInherited[key]; ok {
		key = from
	}
	if v.tlsReported[key] {
		return
	}
	if v.tlsReported == nil {
		v.tlsReported = make(map[string]bool)
	}
	v.tlsReported[key] = true
	v.fail(key, atValue, "Invalid "+key, detail)
}

// maxTLSFileSize is the largest certificate, key or CA file read, in
// bytes, so that a path naming something else, such as /dev/zero, cannot
// fill the memory.
const maxTLSFileSize = 1 << 20

// readTLSFile reads a certificate, key or CA file: a regular file of at
// most maxTLSFileSize bytes.
func readTLSFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErr(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, pathErr(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTLSFileSize+1))
	if err != nil {
		return nil, pathErr(err)
	}
	if len(b) > maxTLSFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxTLSFileSize)
	}
	return b, nil
}

// checkKeyPair checks that certFile and keyFile hold a certificate and its
// private key.
func checkKeyPair(certFile, keyFile string) error {
	certPEM, err := readTLSFile(certFile)
	if err != nil {
		return fmt.Errorf("read certificate %s: %w", quote(certFile), err)
	}
	keyPEM, err := readTLSFile(keyFile)
	if err != nil {
		return fmt.Errorf("read key %s: %w", quote(keyFile), err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", quote(certFile), quote(keyFile), err)
	}
	return nil
}

// checkCAFile checks that path is a PEM file of at least one certificate.
func checkCAFile(path string) error {
	b, err := readTLSFile(path)
	if err != nil {
		return fmt.Errorf("read CA file %s: %v", quote(path), err)
	}
	if err := checkPEMCerts(b); err != nil {
		return fmt.Errorf("CA file %s %v", quote(path), err)
	}
	return nil
}

// checkCAPath checks that dir is a directory whose files are PEM
// certificates, at least one.
func checkCAPath(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read CA directory %s: %v", quote(dir), pathErr(err))
	}
	found := false
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		b, err := readTLSFile(path)
		if err != nil {
			return fmt.Errorf("read CA file %s: %v", quote(path), err)
		}
		if err := checkPEMCerts(b); err != nil {
			return fmt.Errorf("CA file %s %v", quote(path), err)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("CA directory %s has no certificate files", quote(dir))
	}
	return nil
}

// ErrNoPEMCertificate is returned by ParsePEMCertificates for input that
// holds no PEM certificate block.
var ErrNoPEMCertificate = errors.New("no PEM certificate")

// ParsePEMCertificates parses every CERTIFICATE block of PEM input b,
// skipping blocks of other types. It returns ErrNoPEMCertificate when
// there is none, and x509's error for a block that does not parse. The
// configuration check and agent/tlsutil's CA loading share it.
func ParsePEMCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, ErrNoPEMCertificate
	}
	return certs, nil
}

// checkPEMCerts checks that b holds PEM blocks of certificates, at least
// one, that parse.
func checkPEMCerts(b []byte) error {
	_, err := ParsePEMCertificates(b)
	switch {
	case errors.Is(err, ErrNoPEMCertificate):
		return fmt.Errorf("has no PEM certificate")
	case err != nil:
		return fmt.Errorf("has a certificate that does not parse: %v", err)
	}
	return nil
}
