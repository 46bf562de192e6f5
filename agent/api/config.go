package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The environment variables a Config falls back to, in the order they are
// tried: Conclave's own first, then Consul's, so that scripts written for
// Consul's CLI work unchanged.
const (
	// HTTPTokenEnv and ConsulHTTPTokenEnv hold a token to send with every
	// request.
	HTTPTokenEnv       = "CONCLAVE_HTTP_TOKEN"
	ConsulHTTPTokenEnv = "CONSUL_HTTP_TOKEN"

	// HTTPTokenFileEnv and ConsulHTTPTokenFileEnv name a file that holds
	// the token.
	HTTPTokenFileEnv       = "CONCLAVE_HTTP_TOKEN_FILE"
	ConsulHTTPTokenFileEnv = "CONSUL_HTTP_TOKEN_FILE"

	// ConsulHTTPAddrEnv is Consul's name for HTTPAddrEnv, read when
	// HTTPAddrEnv is unset.
	ConsulHTTPAddrEnv = "CONSUL_HTTP_ADDR"

	// CACertEnv and ConsulCACertEnv name a PEM file of the CAs the agent's
	// HTTPS certificate is checked against; CAPathEnv and ConsulCAPathEnv
	// a directory of such files.
	CACertEnv       = "CONCLAVE_CACERT"
	ConsulCACertEnv = "CONSUL_CACERT"
	CAPathEnv       = "CONCLAVE_CAPATH"
	ConsulCAPathEnv = "CONSUL_CAPATH"

	// ClientCertEnv, ClientKeyEnv and their Consul names name the PEM
	// certificate and key presented to an agent that verifies clients.
	ClientCertEnv       = "CONCLAVE_CLIENT_CERT"
	ConsulClientCertEnv = "CONSUL_CLIENT_CERT"
	ClientKeyEnv        = "CONCLAVE_CLIENT_KEY"
	ConsulClientKeyEnv  = "CONSUL_CLIENT_KEY"

	// HTTPSSLEnv and ConsulHTTPSSLEnv, when true, make an address without
	// a scheme https rather than http.
	HTTPSSLEnv       = "CONCLAVE_HTTP_SSL"
	ConsulHTTPSSLEnv = "CONSUL_HTTP_SSL"

	// HTTPSSLVerifyEnv and ConsulHTTPSSLVerifyEnv, when false, turn off
	// the verification of the agent's certificate.
	HTTPSSLVerifyEnv       = "CONCLAVE_HTTP_SSL_VERIFY"
	ConsulHTTPSSLVerifyEnv = "CONSUL_HTTP_SSL_VERIFY"

	// TLSServerNameEnv and ConsulTLSServerNameEnv set the name the agent's
	// certificate is checked for, instead of the host of the address.
	TLSServerNameEnv       = "CONCLAVE_TLS_SERVER_NAME"
	ConsulTLSServerNameEnv = "CONSUL_TLS_SERVER_NAME"
)

// TokenHeader is the request header a token travels in, as in Consul.
const TokenHeader = "X-Consul-Token"

// Config says which agent a Client talks to and what it sends with every
// request. An empty field falls back to the environment and then to a
// default, each as its field says.
type Config struct {
	// Address is the agent's HTTP API, as for NewClient. Empty means
	// $CONCLAVE_HTTP_ADDR, else $CONSUL_HTTP_ADDR, else DefaultHTTPAddr.
	Address string

	// Token is sent as the X-Consul-Token header. Empty means the content
	// of TokenFile; when both are empty, $CONCLAVE_HTTP_TOKEN, the file
	// named by $CONCLAVE_HTTP_TOKEN_FILE, $CONSUL_HTTP_TOKEN, or the file
	// named by $CONSUL_HTTP_TOKEN_FILE, the first one set. No token at all
	// sends no header. The agent ignores the token until Conclave has ACLs.
	Token string

	// TokenFile names a file whose content, without surrounding white
	// space, is the token. It is read by NewClientConfig.
	TokenFile string

	// Datacenter, when not empty, is sent as ?dc= with every request, so
	// that an agent of another datacenter refuses the request instead of
	// answering for its own. It has no environment variable, as in Consul.
	Datacenter string

	// TLS configures HTTPS, used when Address is an https:// URL (or has
	// no scheme and $CONCLAVE_HTTP_SSL is true).
	TLS TLSConfig
}

// TLSConfig is the client side of HTTPS, read only when the address is
// https. Each empty field falls back to its CONCLAVE_ variable, then to
// Consul's CONSUL_ one, as Consul's CLI reads them.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs the agent's certificate must be
	// signed by. Empty means $CONCLAVE_CACERT, else $CONSUL_CACERT, else
	// the system's roots (also when CAPath is empty).
	CAFile string

	// CAPath is a directory of such PEM files. Empty means
	// $CONCLAVE_CAPATH, else $CONSUL_CAPATH.
	CAPath string

	// CertFile and KeyFile are the PEM certificate and key presented to an
	// agent with verify_incoming. Empty means $CONCLAVE_CLIENT_CERT and
	// $CONCLAVE_CLIENT_KEY, else $CONSUL_CLIENT_CERT and
	// $CONSUL_CLIENT_KEY. Either both or neither.
	CertFile, KeyFile string

	// ServerName is the name the agent's certificate is checked for.
	// Empty means $CONCLAVE_TLS_SERVER_NAME, else $CONSUL_TLS_SERVER_NAME,
	// else the host of the address.
	ServerName string

	// InsecureSkipVerify turns off the check of the agent's certificate.
	// False means the opposite of $CONCLAVE_HTTP_SSL_VERIFY, else of
	// $CONSUL_HTTP_SSL_VERIFY, when one is set.
	InsecureSkipVerify bool
}

// NewClientConfig returns a client built from cfg, with the fall-backs
// Config describes. It reads the token file, if any, now; its errors name
// the file and never include a token.
func NewClientConfig(cfg Config) (*Client, error) {
	addr := firstSet(cfg.Address, os.Getenv(HTTPAddrEnv), os.Getenv(ConsulHTTPAddrEnv), DefaultHTTPAddr)
	ssl, err := envBool(HTTPSSLEnv, ConsulHTTPSSLEnv)
	if err != nil {
		return nil, err
	}
	if ssl != nil && *ssl && !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	c, err := NewClient(addr)
	if err != nil {
		return nil, err
	}
	// As in Consul, the TLS files are read only for an https agent, so
	// that a stale CONSUL_CACERT does not break a plain HTTP one.
	if strings.HasPrefix(c.base, "https://") {
		tlsCfg, err := cfg.TLS.clientConfig()
		if err != nil {
			return nil, err
		}
		c.http.Transport.(*http.Transport).TLSClientConfig = tlsCfg
	}
	if c.token, err = resolveToken(cfg); err != nil {
		return nil, err
	}
	c.datacenter = cfg.Datacenter
	return c, nil
}

// clientConfig returns the *tls.Config of HTTPS requests, with the
// fall-backs TLSConfig describes. Its errors name the file concerned.
func (t TLSConfig) clientConfig() (*tls.Config, error) {
	caFile := firstSet(t.CAFile, os.Getenv(CACertEnv), os.Getenv(ConsulCACertEnv))
	caPath := firstSet(t.CAPath, os.Getenv(CAPathEnv), os.Getenv(ConsulCAPathEnv))
	certFile := firstSet(t.CertFile, os.Getenv(ClientCertEnv), os.Getenv(ConsulClientCertEnv))
	keyFile := firstSet(t.KeyFile, os.Getenv(ClientKeyEnv), os.Getenv(ConsulClientKeyEnv))
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: firstSet(t.ServerName, os.Getenv(TLSServerNameEnv), os.Getenv(ConsulTLSServerNameEnv)),
	}

	verify, err := envBool(HTTPSSLVerifyEnv, ConsulHTTPSSLVerifyEnv)
	if err != nil {
		return nil, err
	}
	cfg.InsecureSkipVerify = t.InsecureSkipVerify || (verify != nil && !*verify)

	if caFile != "" || caPath != "" {
		cfg.RootCAs = x509.NewCertPool()
	}
	if caFile != "" {
		if err := addCAFile(cfg.RootCAs, caFile); err != nil {
			return nil, err
		}
	}
	if caPath != "" {
		entries, err := os.ReadDir(caPath)
		if err != nil {
			return nil, fmt.Errorf("read CA directory: %w", err)
		}
		for _, e := range entries {
			path := filepath.Join(caPath, e.Name())
			if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if err := addCAFile(cfg.RootCAs, path); err != nil {
				return nil, err
			}
		}
	}

	switch {
	case certFile != "" && keyFile == "":
		return nil, fmt.Errorf("client certificate %s given without a client key", certFile)
	case certFile == "" && keyFile != "":
		return nil, fmt.Errorf("client key %s given without a client certificate", keyFile)
	case certFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s and key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// addCAFile adds the PEM certificates of path to pool.
func addCAFile(pool *x509.CertPool, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("CA file %s has no PEM certificate", path)
	}
	return nil
}

// envBool returns the boolean value of the first of the variables names
// that is set, or nil when none is.
func envBool(names ...string) (*bool, error) {
	for _, name := range names {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, errors.Unwrap(err))
		}
		return &b, nil
	}
	return nil, nil
}

// resolveToken returns the token cfg and the environment give, trying the
// sources in the order Config.Token describes.
func resolveToken(cfg Config) (string, error) {
	sources := []struct{ token, file, fileFrom string }{
		{cfg.Token, cfg.TokenFile, "-token-file"},
		{os.Getenv(HTTPTokenEnv), os.Getenv(HTTPTokenFileEnv), HTTPTokenFileEnv},
		{os.Getenv(ConsulHTTPTokenEnv), os.Getenv(ConsulHTTPTokenFileEnv), ConsulHTTPTokenFileEnv},
	}
	for _, s := range sources {
		if s.token != "" {
			return s.token, nil
		}
		if s.file != "" {
			return readTokenFile(s.file, s.fileFrom)
		}
	}
	return "", nil
}

// maxTokenFile bounds what is read of a token file: a token is a UUID, and
// a path pointing at something else must not fill the memory.
const maxTokenFile = 4 << 10

// readTokenFile reads the token in path, named by from (a flag or an
// environment variable) for the errors.
func readTokenFile(path, from string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token file given by %s: %w", from, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("read token file %s given by %s: %w", path, from, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s given by %s: larger than %d bytes", path, from, maxTokenFile)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s given by %s is empty", path, from)
	}
	return token, nil
}

// firstSet returns the first of values that is not empty, or "".
func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
