package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/conclavehq/conclave/config"
)

// Domain is the domain of the names in Conclave's certificates: a server
// of datacenter dc presents server.<dc>.conclave, a client agent
// client.<dc>.conclave.
const Domain = "conclave"

// maxFileSize is the largest certificate, key or CA file read, in bytes,
// so that a path naming something else cannot fill the memory. It is the
// limit the config package applies when it checks the same files.
const maxFileSize = 1 << 20

// ServerName returns the name a server of datacenter dc presents in its
// certificate: server.<dc>.conclave.
func ServerName(dc string) string {
	return "server." + dc + "." + Domain
}

// ClientName returns the name a client agent of datacenter dc presents in
// its certificate: client.<dc>.conclave.
func ClientName(dc string) string {
	return "client." + dc + "." + Domain
}

// Config is the TLS configuration of one listener, as config.TLSConfig
// holds it, plus the datacenter the names are checked against. The agent
// makes one Configurator for the server port and one for HTTPS.
type Config struct {
	// CAFile and CAPath name the certificate authorities peers are checked
	// against: a PEM file, and a directory whose regular files are PEM.
	CAFile, CAPath string

	// CertFile and KeyFile are the certificate this agent presents and its
	// key, both PEM. Either both or neither.
	CertFile, KeyFile string

	// VerifyIncoming requires every client to present a certificate signed
	// by the CA (mutual TLS).
	VerifyIncoming bool

	// VerifyOutgoing makes OutgoingConfig verify the server's certificate
	// against the CA. Without it, the caller should dial plain TCP, as
	// Consul does; Settings tells it.
	VerifyOutgoing bool

	// VerifyServerHostname makes OutgoingConfig require the server's
	// certificate to be for ServerName(Datacenter).
	VerifyServerHostname bool

	// MinVersion is the lowest TLS version accepted; 0 means TLS 1.2.
	MinVersion uint16

	// CipherSuites are the TLS 1.2 suites allowed; empty means Go's list.
	CipherSuites []uint16

	// Datacenter is this agent's datacenter, for ServerName.
	Datacenter string
}

// material is the certificate and CA read from the files at one moment.
// It is never changed once built; Reload replaces it as a whole.
type material struct {
	cert *tls.Certificate // nil when no CertFile
	pool *x509.CertPool   // nil when no CAFile nor CAPath
}

// Configurator builds the *tls.Config of one listener and holds the
// current certificate and CA, which Reload replaces without a restart: the
// configs it returns read the material at each handshake, so the next
// connection sees what the last successful Reload read. It is safe for
// concurrent use.
type Configurator struct {
	cfg Config
	cur atomic.Pointer[material]
}

// Errors returned by New and Reload, wrapped with the file concerned.
var (
	// ErrNoCertificate is returned when verify_incoming is asked for
	// without a certificate to present.
	ErrNoCertificate = errors.New("no certificate to present")

	// ErrNoCA is returned when a verification is asked for without a CA
	// to verify against.
	ErrNoCA = errors.New("no CA to verify against")
)

// New reads the files cfg names and returns a Configurator serving them.
// It fails when a file cannot be read or parsed, or when a verification
// is asked for without the CA or certificate it needs.
func New(cfg Config) (*Configurator, error) {
	cfg.CipherSuites = slices.Clone(cfg.CipherSuites)
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	c := &Configurator{cfg: cfg}
	m, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cur.Store(m)
	return c, nil
}

// Settings returns the configuration c was built with.
func (c *Configurator) Settings() Config {
	s := c.cfg
	s.CipherSuites = slices.Clone(s.CipherSuites)
	return s
}

// Reload reads the files again. On success the next handshake uses the
// new certificate and CA; on failure c keeps the old ones and the error
// names the file that failed.
func (c *Configurator) Reload() error {
	m, err := c.load()
	if err != nil {
		return fmt.Errorf("reload TLS files, keeping the previous ones: %w", err)
	}
	c.cur.Store(m)
	return nil
}

// load reads the files of c.cfg.
func (c *Configurator) load() (*material, error) {
	cfg := c.cfg
	m := &material{}
	switch {
	case cfg.CertFile != "" && cfg.KeyFile == "":
		return nil, fmt.Errorf("certificate %s has no key file", cfg.CertFile)
	case cfg.CertFile == "" && cfg.KeyFile != "":
		return nil, fmt.Errorf("key %s has no certificate file", cfg.KeyFile)
	case cfg.CertFile != "":
		certPEM, err := readFile(cfg.CertFile)
		if err != nil {
			return nil, fmt.Errorf("read certificate: %w", err)
		}
		keyPEM, err := readFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read key: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load certificate %s and key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		m.cert = &cert
	}

	if cfg.CAFile != "" || cfg.CAPath != "" {
		m.pool = x509.NewCertPool()
	}
	if cfg.CAFile != "" {
		if err := addCAFile(m.pool, cfg.CAFile); err != nil {
			return nil, err
		}
	}
	if cfg.CAPath != "" {
		entries, err := os.ReadDir(cfg.CAPath)
		if err != nil {
			return nil, fmt.Errorf("read CA directory: %w", err)
		}
		n := 0
		for _, e := range entries {
			path := filepath.Join(cfg.CAPath, e.Name())
			if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if err := addCAFile(m.pool, path); err != nil {
				return nil, err
			}
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("CA directory %s has no certificate files", cfg.CAPath)
		}
	}

	if (cfg.VerifyIncoming || cfg.VerifyOutgoing) && m.pool == nil {
		return nil, fmt.Errorf("verify_incoming or verify_outgoing: %w", ErrNoCA)
	}
	if cfg.VerifyIncoming && m.cert == nil {
		return nil, fmt.Errorf("verify_incoming: %w", ErrNoCertificate)
	}
	return m, nil
}

// addCAFile adds the certificates of the PEM file path to pool.
func addCAFile(pool *x509.CertPool, path string) error {
	b, err := readFile(path)
	if err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	certs, err := config.ParsePEMCertificates(b)
	switch {
	case errors.Is(err, config.ErrNoPEMCertificate):
		return fmt.Errorf("CA file %s has no PEM certificate", path)
	case err != nil:
		return fmt.Errorf("parse CA file %s: %w", path, err)
	}
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return nil
}

// readFile reads a regular file of at most maxFileSize bytes. Its errors
// name the file.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return b, nil
}

// base returns the settings every config of c shares.
func (c *Configurator) base() *tls.Config {
	return &tls.Config{
		MinVersion:   c.cfg.MinVersion,
		CipherSuites: slices.Clone(c.cfg.CipherSuites),
	}
}

// IncomingConfig returns the config of a listener: the server port's, or
// the HTTPS listener's (give it to http.Server.TLSConfig and call
// ServeTLS with empty file names). It presents the current certificate;
// with VerifyIncoming it requires a client certificate signed by the
// current CA for client authentication, otherwise it asks for none. Each
// handshake reads the material of the last successful Reload: the
// certificate through GetCertificate, the CA in VerifyConnection, since
// crypto/tls's own check could only use a fixed ClientCAs.
func (c *Configurator) IncomingConfig() *tls.Config {
	cfg := c.base()
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		m := c.cur.Load()
		if m.cert == nil {
			return nil, fmt.Errorf("tls: %w", ErrNoCertificate)
		}
		return m.cert, nil
	}
	if c.cfg.VerifyIncoming {
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return c.verify(cs.PeerCertificates, "", x509.ExtKeyUsageClientAuth)
		}
	}
	return cfg
}

// OutgoingConfig returns the config for connections this agent opens to a
// server's port. It presents the current certificate when the server asks
// for one. With VerifyOutgoing it verifies the server's chain against the
// current CA, and with VerifyServerHostname it also requires the name
// ServerName(Datacenter), which a client agent's certificate does not
// have. The verification is done in VerifyConnection rather than by
// crypto/tls, so that it reads the CA of the last successful Reload.
func (c *Configurator) OutgoingConfig() *tls.Config {
	cfg := c.base()
	if c.cfg.VerifyServerHostname {
		cfg.ServerName = ServerName(c.cfg.Datacenter)
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if m := c.cur.Load(); m.cert != nil {
			return m.cert, nil
		}
		// No certificate: send none, and let the server decide.
		return &tls.Certificate{}, nil
	}
	// InsecureSkipVerify turns off crypto/tls's own verification, which
	// could only use a fixed RootCAs; VerifyConnection below does it with
	// the current CA. Without VerifyOutgoing nothing is verified, which is
	// what Consul does, and the caller should not use TLS at all.
	cfg.InsecureSkipVerify = true
	if c.cfg.VerifyOutgoing {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			name := ""
			if c.cfg.VerifyServerHostname {
				name = ServerName(c.cfg.Datacenter)
			}
			return c.verify(cs.PeerCertificates, name, x509.ExtKeyUsageServerAuth)
		}
	}
	return cfg
}

// verify checks that the peer chain is signed by the current CA, for the
// key usage, and, when name is not empty, for name.
func (c *Configurator) verify(chain []*x509.Certificate, name string, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errors.New("tls: peer presented no certificate")
	}
	m := c.cur.Load()
	if m.pool == nil {
		return fmt.Errorf("tls: %w", ErrNoCA)
	}
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName:       name,
		Roots:         m.pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("tls: verify peer certificate: %w", err)
	}
	return nil
}

// IsServer reports whether the peer of the connection cs describes
// presented a certificate, signed by the current CA, for
// ServerName(Datacenter): a server of this datacenter. The server port
// uses it to refuse a client agent's certificate, or another datacenter's
// server, where only a server may act (Raft, bootstrap claims). It works
// on both ends of a connection. The key usage is not checked again: the
// handshake checked it for the role the peer had on this connection.
func (c *Configurator) IsServer(cs tls.ConnectionState) bool {
	if !cs.HandshakeComplete {
		return false
	}
	return c.verify(cs.PeerCertificates, ServerName(c.cfg.Datacenter), x509.ExtKeyUsageAny) == nil
}
