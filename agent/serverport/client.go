package serverport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// ForwardedHeader marks a request a follower forwarded, so the receiver
// never forwards it again (a leader that has just stepped down answers 503
// instead of bouncing the request around).
const ForwardedHeader = "X-Conclave-Forwarded"

var (
	// ErrNoLeader is answered with 503 when a request needs a leader and
	// the cluster has none.
	ErrNoLeader = errors.New("No cluster leader")
	// ErrNoServers is answered with 503 by a client agent that knows no
	// alive server to send a request to (Consul: "No known Consul
	// servers").
	ErrNoServers = errors.New("No known Conclave servers")
)

// Client speaks HTTP to other servers over their server port (the mux
// routes protoForward connections to the internal handler), one hop, over
// pooled keep-alive connections.
type Client struct {
	http *http.Client
}

// NewClient returns a client with its own connection pool, speaking
// plain TCP.
func NewClient() *Client { return NewTLSClient(nil) }

// NewTLSClient returns a client with its own connection pool that speaks
// TLS with tlsConf's OutgoingConfig (nil: plain TCP): with
// verify_outgoing it verifies each server's certificate against the CA,
// and with verify_server_hostname it requires server.<dc>.conclave, so
// that whatever it asks (a bootstrap claim, Raft stats, a forwarded
// request) reaches only a server of this datacenter.
func NewTLSClient(tlsConf *tlsutil.Configurator) *Client {
	d := dialer{tlsConf}
	tr := &http.Transport{
		// The URL host is the server's Raft address; see mux.go. TLS is
		// done in the dial, under the protocol byte, not by the transport.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.dial(ctx, addr, protoForward)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Call POSTs in as JSON to path on the server at addr and decodes the
// answer into out (when out is not nil).
func (c *Client) Call(ctx context.Context, addr, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, path, out)
}

// Get GETs path on the server at addr and decodes the answer into out.
func (c *Client) Get(ctx context.Context, addr, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	return c.do(req, path, out)
}

// do sends req and decodes a 200 answer's JSON into out (when out is not
// nil); any other status is an error carrying the one-line body.
func (c *Client) do(req *http.Request, path string, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Send sends req, addressed to a server port, as it is; the caller reads
// and closes the answer.
func (c *Client) Send(req *http.Request) (*http.Response, error) { return c.http.Do(req) }
