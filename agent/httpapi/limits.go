package httpapi

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/conclavehq/conclave/config"
)

// Bounded requests: a client, hostile or only slow, must not cost the agent
// memory or connections without bound.
//
//   - Bodies are limited before they are read (limitBody): a Content-Length
//     over the route's limit is answered 413 at once, and the connection is
//     closed without reading the body; a body of unknown length (chunked)
//     is cut at the limit (http.MaxBytesReader) and answered 413. A
//     forwarded request streams the limited body, so a follower never holds
//     it whole either.
//   - The http.Server caps headers (maxHeaderBytes, 431 above it), the time
//     to send them (headerTimeout) and the whole request (the read timeout,
//     sized for the largest body at a slow but honest pace; a snapshot
//     restore gets snapshotTimeout instead), and closes idle connections
//     (idleTimeout). The read timeout ends once the request has arrived
//     (net/http lifts it when it starts watching the idle connection), so
//     it never cuts a blocking query short. There is no WriteTimeout:
//     blocking queries and snapshot streams are long, and each bounds
//     itself.
//   - The public port counts each client IP's connections (connLimiter).

// Fixed limits of the API's http.Servers. Consul has no keys for them.
const (
	// maxHeaderBytes caps a request's header (with its request line);
	// net/http answers 431 above it. Consul leaves Go's 1 MiB; 64 KiB is
	// far above any header Consul's clients send (a token, a few fields).
	maxHeaderBytes = 64 << 10
	// headerTimeout is how long a client may take to send the header.
	headerTimeout = 10 * time.Second
	// readTimeoutBase plus one second per readPace bytes of the largest
	// body a route takes is how long a whole request may take to arrive.
	readTimeoutBase = 30 * time.Second
	readPace        = 1 << 20
	// idleTimeout closes a keep-alive connection with no request. It is
	// above the 90 s after which Go's and Consul's clients drop an idle
	// connection, so that they close first and never reuse a closed one.
	idleTimeout = 2 * time.Minute
	// maxSnapshotBytes is the largest snapshot PUT /v1/snapshot takes. The
	// whole state lives in memory, so a larger one could not be restored.
	maxSnapshotBytes = 1 << 30
	// snapshotTimeout bounds a restore, the upload with it.
	snapshotTimeout = 5 * time.Minute
)

// Limits are the configured limits the API applies (Consul's limits
// block).
type Limits struct {
	// KVMaxValueSize is the largest value of a KV PUT, in bytes
	// (kv_max_value_size). 0 means config.DefaultKVMaxValueSize, Consul's
	// 512 KiB.
	KVMaxValueSize int
	// TxnMaxBytes is the largest /v1/txn body, in bytes: the larger of
	// txn_max_req_len and kv_max_value_size. It also caps the body of every
	// route that has no limit of its own. 0 means KVMaxValueSize.
	TxnMaxBytes int
	// MaxConnsPerClient is the most connections one client IP may hold on
	// the public port (http_max_conns_per_client); 0 is no limit.
	MaxConnsPerClient int
}

// withDefaults fills in the limits left at 0.
func (l Limits) withDefaults() Limits {
	if l.KVMaxValueSize == 0 {
		l.KVMaxValueSize = config.DefaultKVMaxValueSize
	}
	l.TxnMaxBytes = max(l.TxnMaxBytes, l.KVMaxValueSize)
	return l
}

// bodyRule is how much body a route reads and how its refusal is worded.
type bodyRule struct {
	max int64
	// tooLarge words the 413 for a body of n bytes (-1: unknown length).
	tooLarge func(n, max int64) string
	// read, when set, replaces the server's read deadline for the body.
	read time.Duration
}

// valueTooLarge is Consul's wording for a KV value over the limit.
func valueTooLarge(_, max int64) string { return fmt.Sprintf("Value exceeds %d byte limit", max) }

// bodyTooLarge is Consul's wording for a transaction body over the limit.
func bodyTooLarge(n, max int64) string {
	if n < 0 {
		return fmt.Sprintf("Request body too large, max size: %d bytes", max)
	}
	return fmt.Sprintf("Request body(%d bytes) too large, max size: %d bytes", n, max)
}

// bodyRule returns the body rule of a route of the table. A route without
// one of its own (most read no body) takes the transaction limit.
func (s *Service) bodyRule(method, pattern string) bodyRule {
	lim := s.cfg.Limits
	switch {
	case method == http.MethodPut && pattern == kvPrefix+"{key...}":
		return bodyRule{max: int64(lim.KVMaxValueSize), tooLarge: valueTooLarge}
	case method == http.MethodPut && pattern == "/v1/snapshot":
		return bodyRule{max: maxSnapshotBytes, tooLarge: bodyTooLarge, read: snapshotTimeout}
	}
	return bodyRule{max: int64(lim.TxnMaxBytes), tooLarge: bodyTooLarge}
}

// limitBody wraps h so that it never reads more than rule allows; see the
// comment at the top of this file.
func limitBody(rule bodyRule, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > rule.max {
			// Closing the connection spares net/http reading the body to
			// reuse it.
			w.Header().Set("Connection", "close")
			httpError(w, http.StatusRequestEntityTooLarge, rule.tooLarge(r.ContentLength, rule.max))
			return
		}
		if rule.read > 0 && r.ContentLength != 0 {
			// An error means a ResponseWriter without deadlines (a test's
			// recorder): there is no server deadline to replace.
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(rule.read))
		}
		r.Body = http.MaxBytesReader(w, r.Body, rule.max)
		h(w, r)
	}
}

// tooLarge reports whether err is, or came from, a body cut at its limit,
// and that limit.
func tooLarge(err error) (int64, bool) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return mbe.Limit, true
	}
	return 0, false
}

// watchedBody remembers the first error reading a body returned, for a
// reader whose errors its consumer words in its own way.
type watchedBody struct {
	r   io.Reader
	err error
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && b.err == nil {
		b.err = err
	}
	return n, err
}

// PublicServer returns the http.Server of the HTTP API port, with the
// limits of this file and the per-client connection limit.
func (s *Service) PublicServer() *http.Server {
	srv := s.newServer(s.Public())
	if n := s.cfg.Limits.MaxConnsPerClient; n > 0 {
		srv.ConnState = newConnLimiter(n).connState
	}
	return srv
}

// InternalServer returns the http.Server of the server port's HTTP
// channel, serving h: Internal, or a handler in front of it. It has no
// per-client limit: one client agent's requests all come from one address.
func (s *Service) InternalServer(h http.Handler) *http.Server { return s.newServer(h) }

func (s *Service) newServer(h http.Handler) *http.Server {
	lim := s.cfg.Limits
	largest := max(lim.KVMaxValueSize, lim.TxnMaxBytes)
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       readTimeoutBase + time.Duration(largest/readPace)*time.Second,
		IdleTimeout:       idleTimeout,
	}
}

// connLimiter refuses a client IP's connections past max, as Consul's
// http_max_conns_per_client does: it counts the open connections of each
// address through http.Server's ConnState hook, and answers one over the
// limit 429 and closes it (a TLS connection is closed without an answer,
// as in Consul, since no handshake has taken place).
type connLimiter struct {
	max int

	mu    sync.Mutex
	byIP  map[string]int
	conns map[net.Conn]string // the counted connections
}

func newConnLimiter(max int) *connLimiter {
	return &connLimiter{max: max, byIP: make(map[string]int), conns: make(map[net.Conn]string)}
}

// tooManyConns is the whole answer to a connection over the limit, in
// Consul's words.
var tooManyConns = func() string {
	const body = "Your IP is issuing too many concurrent connections, please rate limit your calls\n"
	return fmt.Sprintf("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

// refuseWriteTimeout bounds the 429's write, which runs in the server's
// accept loop.
const refuseWriteTimeout = 10 * time.Millisecond

func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		ip, _, err := net.SplitHostPort(c.RemoteAddr().String())
		if err != nil {
			ip = c.RemoteAddr().String()
		}
		l.mu.Lock()
		over := l.byIP[ip] >= l.max
		if !over {
			l.byIP[ip]++
			l.conns[c] = ip
		}
		l.mu.Unlock()
		if over {
			if _, isTLS := c.(*tls.Conn); !isTLS {
				c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
				io.WriteString(c, tooManyConns)
			}
			c.Close()
		}
	case http.StateHijacked, http.StateClosed:
		l.mu.Lock()
		if ip, ok := l.conns[c]; ok {
			delete(l.conns, c)
			if l.byIP[ip]--; l.byIP[ip] == 0 {
				delete(l.byIP, ip)
			}
		}
		l.mu.Unlock()
	}
}
