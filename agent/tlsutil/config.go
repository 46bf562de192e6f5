package tlsutil

import (
	"errors"
	"fmt"

	"github.com/conclavehq/conclave/config"
)

// FromConfig is t, a block of the configuration's tls stanza, as New takes
// it, for a server or client agent of datacenter dc.
func FromConfig(t config.TLSConfig, dc string) Config {
	return Config{
		CAFile: t.CAFile, CAPath: t.CAPath, CertFile: t.CertFile, KeyFile: t.KeyFile,
		VerifyIncoming: t.VerifyIncoming, VerifyOutgoing: t.VerifyOutgoing,
		VerifyServerHostname: t.VerifyServerHostname,
		MinVersion:           t.MinVersion, CipherSuites: t.CipherSuites,
		Datacenter: dc,
	}
}

// NewEndpoints builds the Configurators of the server port (rpc) and of the
// HTTPS listener (https) from cfg, reading their files; each is nil when
// its endpoint does not speak TLS. The server port speaks TLS when
// tls.internal_rpc has a certificate or asks for a verification, as
// Consul's does; a server then needs a certificate to serve it. HTTPS is
// built only when ports.https is set and tls.https has a certificate
// (config.Validate refuses the one without the other; a Config built by
// hand, with a zero ports.https, gets no HTTPS).
func NewEndpoints(cfg *config.Config) (rpc, https *Configurator, err error) {
	r := cfg.TLS.InternalRPC
	if r.Enabled() || r.VerifyIncoming || r.VerifyOutgoing {
		if cfg.Server && !r.Enabled() {
			return nil, nil, errors.New("tls.internal_rpc: a server needs cert_file and key_file to serve the server port over TLS")
		}
		if rpc, err = New(FromConfig(r, cfg.Datacenter)); err != nil {
			return nil, nil, fmt.Errorf("tls.internal_rpc: %w", err)
		}
	}
	if cfg.Ports.HTTPS >= 0 && cfg.TLS.HTTPS.Enabled() {
		h := cfg.TLS.HTTPS
		h.VerifyServerHostname = false
		if https, err = New(FromConfig(h, cfg.Datacenter)); err != nil {
			return rpc, nil, fmt.Errorf("tls.https: %w", err)
		}
	}
	return rpc, https, nil
}
