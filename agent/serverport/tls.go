package serverport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"slices"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// TLS on the server port wraps the whole connection: the handshake comes
// first and the protocol byte is the first byte inside it, so a peer
// cannot choose a plain channel on a port that speaks TLS. The port speaks
// one or the other, never both: a plain peer fails the handshake.
//
// With verify_server_hostname, the port asks every peer for a certificate
// (it requires one only with verify_incoming) and lets only a server of
// this datacenter (tlsutil's IsServer) speak Raft or call the routes that
// only servers call. A client agent's certificate is enough for the
// routes client agents use.

// serverOnly reports whether the port lets only servers of this
// datacenter speak Raft and call the server-only routes.
func serverOnly(c *tlsutil.Configurator) bool {
	return c != nil && c.Settings().VerifyServerHostname
}

// incomingConfig is the config of the server port's listener.
func incomingConfig(c *tlsutil.Configurator) *tls.Config {
	cfg := c.IncomingConfig()
	if serverOnly(c) && cfg.ClientAuth == tls.NoClientCert {
		// Without verify_incoming a peer may still come without a
		// certificate, but a server must present its own to speak Raft.
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg
}

// dialer opens connections to server ports, over TLS when it has a
// Configurator.
type dialer struct {
	tls *tlsutil.Configurator
}

// dial opens a connection to the server port at addr for protocol proto.
func (d dialer) dial(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		tc := tls.Client(c, d.tls.OutgoingConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	if _, err := c.Write([]byte{proto}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ServersOnly wraps the server port's internal HTTP handler so that, when
// the port lets only servers act (verify_server_hostname), a request for
// one of paths, or one marked as forwarded by a follower
// (ForwardedHeader), is answered 403 unless the peer presented a server
// certificate of this datacenter. Client agents' own requests (the router
// removes the mark) pass. Without TLS, or without
// verify_server_hostname, it returns next unchanged.
func (m *Mux) ServersOnly(next http.Handler, paths ...string) http.Handler {
	if !serverOnly(m.tls) {
		return next
	}
	paths = slices.Clone(paths)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(ForwardedHeader) == "" && !slices.Contains(paths, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if r.TLS == nil || !m.tls.IsServer(*r.TLS) {
			m.logger.Warn("refused a request that only a server may make: the peer has no server certificate of this datacenter",
				"path", r.URL.Path, "remote", r.RemoteAddr, "want", tlsutil.ServerName(m.tls.Settings().Datacenter))
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("Permission denied: this route needs a server certificate for " + tlsutil.ServerName(m.tls.Settings().Datacenter) + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
