package httpapi

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// Listeners are the HTTP API's listeners on client_addr. Both are served
// by one http.Server.
type Listeners struct {
	// HTTP is plain HTTP's, nil with ports.http = -1.
	HTTP net.Listener
	// HTTPS is HTTPS's, nil without ports.https. It does the handshake with
	// the current certificate (see tlsutil), and offers HTTP/2 as ServeTLS
	// would.
	HTTPS net.Listener
}

// Listen binds the HTTP API's listeners on addr: plain HTTP on httpPort
// unless it is -1, and HTTPS on httpsPort when httpsTLS is not nil. On
// error it returns the listener it opened already, for the caller to
// close with the rest.
func Listen(addr string, httpPort, httpsPort int, httpsTLS *tlsutil.Configurator) (Listeners, error) {
	var l Listeners
	if httpPort >= 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(httpPort)))
		if err != nil {
			return l, fmt.Errorf("listen for HTTP on %s:%d: %w", addr, httpPort, err)
		}
		l.HTTP = ln
	}
	if httpsTLS != nil {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(httpsPort)))
		if err != nil {
			return l, fmt.Errorf("listen for HTTPS on %s:%d: %w", addr, httpsPort, err)
		}
		tc := httpsTLS.IncomingConfig()
		tc.NextProtos = []string{"h2", "http/1.1"}
		l.HTTPS = tls.NewListener(ln, tc)
	}
	if l.HTTP == nil && l.HTTPS == nil {
		// config.Validate refuses this; a Config built by hand may not.
		return l, errors.New("neither ports.http nor ports.https is set: no HTTP API to serve")
	}
	return l, nil
}

// All are the listeners that are open.
func (l Listeners) All() []net.Listener {
	var lns []net.Listener
	for _, ln := range []net.Listener{l.HTTP, l.HTTPS} {
		if ln != nil {
			lns = append(lns, ln)
		}
	}
	return lns
}

// Port is the port of the HTTP API that other agents are told (the
// http_port tag): plain HTTP's, or HTTPS's when plain HTTP is off.
func (l Listeners) Port() int {
	return l.All()[0].Addr().(*net.TCPAddr).Port
}

// HTTPAddr is the address plain HTTP listens on, with the port bound, or
// "" with ports.http = -1.
func (l Listeners) HTTPAddr() string {
	if l.HTTP == nil {
		return ""
	}
	return l.HTTP.Addr().String()
}

// HTTPSAddr is the address HTTPS listens on, with the port bound, or ""
// without ports.https.
func (l Listeners) HTTPSAddr() string {
	if l.HTTPS == nil {
		return ""
	}
	return l.HTTPS.Addr().String()
}
