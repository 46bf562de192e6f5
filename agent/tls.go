package agent

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/tlsutil"
	"github.com/conclavehq/conclave/config"
)

// openTLS builds the TLS configurators of the server port and of the HTTPS
// listener, reading their files. The server port speaks TLS when
// tls.internal_rpc has a certificate or asks for a verification, as
// Consul's does; a server then needs a certificate to serve it. HTTPS is
// built only when ports.https is set and tls.https has a certificate
// (config.Validate refuses the one without the other; a Config built by
// hand, with a zero ports.https, gets no HTTPS).
func (a *Agent) openTLS() (err error) {
	cfg := a.cfg
	rpc := cfg.TLS.InternalRPC
	if rpc.Enabled() || rpc.VerifyIncoming || rpc.VerifyOutgoing {
		if cfg.Server && !rpc.Enabled() {
			return errors.New("tls.internal_rpc: a server needs cert_file and key_file to serve the server port over TLS")
		}
		if a.rpcTLS, err = tlsutil.New(tlsConfig(rpc, cfg.Datacenter)); err != nil {
			return fmt.Errorf("tls.internal_rpc: %w", err)
		}
	}
	if cfg.Ports.HTTPS >= 0 && cfg.TLS.HTTPS.Enabled() {
		https := cfg.TLS.HTTPS
		https.VerifyServerHostname = false
		if a.httpsTLS, err = tlsutil.New(tlsConfig(https, cfg.Datacenter)); err != nil {
			return fmt.Errorf("tls.https: %w", err)
		}
	}
	return nil
}

// tlsConfig is t as tlsutil takes it.
func tlsConfig(t config.TLSConfig, dc string) tlsutil.Config {
	return tlsutil.Config{
		CAFile: t.CAFile, CAPath: t.CAPath, CertFile: t.CertFile, KeyFile: t.KeyFile,
		VerifyIncoming: t.VerifyIncoming, VerifyOutgoing: t.VerifyOutgoing,
		VerifyServerHostname: t.VerifyServerHostname,
		MinVersion:           t.MinVersion, CipherSuites: t.CipherSuites,
		Datacenter: dc,
	}
}

// listenHTTP binds the HTTP API's listeners on client_addr: plain HTTP
// unless ports.http is -1, and HTTPS when ports.https is set. Both are
// served by one http.Server; the HTTPS listener does the handshake with
// the current certificate (see tlsutil), and offers HTTP/2 as ServeTLS
// would.
func (a *Agent) listenHTTP() error {
	cfg := a.cfg
	if cfg.Ports.HTTP >= 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.HTTP)))
		if err != nil {
			return fmt.Errorf("listen for HTTP on %s:%d: %w", cfg.ClientAddr, cfg.Ports.HTTP, err)
		}
		a.httpLn = ln
	}
	if a.httpsTLS != nil {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.HTTPS)))
		if err != nil {
			return fmt.Errorf("listen for HTTPS on %s:%d: %w", cfg.ClientAddr, cfg.Ports.HTTPS, err)
		}
		tc := a.httpsTLS.IncomingConfig()
		tc.NextProtos = []string{"h2", "http/1.1"}
		a.httpsLn = tls.NewListener(ln, tc)
	}
	if a.httpLn == nil && a.httpsLn == nil {
		// config.Validate refuses this; a Config built by hand may not.
		return errors.New("neither ports.http nor ports.https is set: no HTTP API to serve")
	}
	return nil
}

// httpListeners are the HTTP API's listeners that are open.
func (a *Agent) httpListeners() []net.Listener {
	var lns []net.Listener
	for _, ln := range []net.Listener{a.httpLn, a.httpsLn} {
		if ln != nil {
			lns = append(lns, ln)
		}
	}
	return lns
}

// HTTPSAddr is the address the HTTPS API listens on, with the port bound,
// or "" without ports.https.
func (a *Agent) HTTPSAddr() string {
	if a.httpsLn == nil {
		return ""
	}
	return a.httpsLn.Addr().String()
}

// httpPort is the port of the HTTP API that other agents are told (the
// http_port tag): plain HTTP's, or HTTPS's when plain HTTP is off.
func (a *Agent) httpPort() int {
	return a.httpListeners()[0].Addr().(*net.TCPAddr).Port
}

// Reload applies what can change without a restart: first what the command
// reloads from the configuration files (Options.Reload: the log level),
// then the certificates, keys and CAs of the server port and of HTTPS,
// read again from the files named at start (a changed path in the
// configuration needs a restart). A part that fails keeps what it had;
// the error names the file (never a key's contents), on one line. The
// caller logs it.
func (a *Agent) Reload() error {
	var errs []string
	if a.reloadConfig != nil {
		if err := a.reloadConfig(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, c := range []struct {
		name string
		c    *tlsutil.Configurator
	}{{"tls.internal_rpc", a.rpcTLS}, {"tls.https", a.httpsTLS}} {
		if c.c == nil {
			continue
		}
		if err := c.c.Reload(); err != nil {
			errs = append(errs, c.name+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.ReplaceAll(strings.Join(errs, "; "), "\n", " "))
	}
	a.logger.Info("reloaded the configuration and the TLS files", "server_port_tls", a.rpcTLS != nil, "https", a.httpsTLS != nil)
	return nil
}
