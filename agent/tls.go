package agent

import (
	"errors"
	"strings"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// openTLS builds the TLS configurators of the server port and of the HTTPS
// listener (tlsutil.NewEndpoints), reading their files.
func (a *Agent) openTLS() (err error) {
	a.rpcTLS, a.httpsTLS, err = tlsutil.NewEndpoints(a.cfg)
	return err
}

// HTTPSAddr is the address the HTTPS API listens on, with the port bound,
// or "" without ports.https.
func (a *Agent) HTTPSAddr() string { return a.http.HTTPSAddr() }

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
