package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

const (
	// DefaultHTTPAddr is the address of the agent's HTTP API that NewClient
	// uses when it is given no address and neither HTTPAddrEnv nor
	// ConsulHTTPAddrEnv is set.
	DefaultHTTPAddr = "127.0.0.1:8500"

	// HTTPAddrEnv names the environment variable that overrides
	// DefaultHTTPAddr, as CONSUL_HTTP_ADDR does for Consul.
	HTTPAddrEnv = "CONCLAVE_HTTP_ADDR"
)

const (
	// requestTimeout bounds a whole request, from dial to the last byte of
	// the body, so that a CLI pointed at a dead or black-holed address
	// reports an error instead of hanging.
	requestTimeout = 10 * time.Second

	// slowRequestTimeout replaces requestTimeout for the requests whose
	// answer waits on network work the agent does for the caller: a join
	// dials the remote agent, and a graceful leave waits for the leave to
	// propagate and for the Raft configuration to drop the server (the
	// agent allows 10s for that alone).
	slowRequestTimeout = 30 * time.Second

	// dialTimeout is shorter than requestTimeout so that an unreachable
	// host fails with a dial error, which says more than a client timeout.
	dialTimeout = 5 * time.Second

	// maxErrorBody caps how much of a non-2xx answer goes into a
	// StatusError, and how much of any body is drained for keep-alive.
	maxErrorBody = 64 << 10
)

// StatusError is returned by the Client methods when the agent answers with
// a status code outside 2xx. Callers can inspect it with errors.As.
type StatusError struct {
	// Code is the HTTP status code of the answer.
	Code int
	// Body is the body of the answer, trimmed of surrounding white space.
	// The agent sends a one-line plain-text message.
	Body string
}

// Error returns the message in the form Consul's api package uses,
// "Unexpected response code: 500 (body)", so that scripts written for
// Consul's CLI recognise it.
func (e *StatusError) Error() string {
	return fmt.Sprintf("Unexpected response code: %d (%s)", e.Code, e.Body)
}

// Client is a thin client for the HTTP API of a running Conclave agent. It
// holds one keep-alive HTTP client and is safe for concurrent use. Each
// request times out after 10s (30s for Join and Leave; for a blocking
// query, 10s more than the agent may hold it); the connection attempt alone
// after 5s. The snapshot requests have no overall timeout: they fail when
// the transfer stalls (see SnapshotSave). Redirects are not followed: a
// 3xx answer is a *StatusError.
type Client struct {
	// base is the scheme and host of the agent, without a trailing slash,
	// for example "http://127.0.0.1:8500".
	base string
	http *http.Client

	// timeout and slowTimeout bound each request; see requestTimeout and
	// slowRequestTimeout. stallTimeout and workTimeout bound the progress
	// of a snapshot request; see snapshot.go. They are fields so that tests
	// can shorten them.
	timeout, slowTimeout      time.Duration
	stallTimeout, workTimeout time.Duration

	// token and datacenter are sent with every request; see Config.
	token, datacenter string
}

// NewClient returns a client for the agent whose HTTP API listens on addr.
// addr is "host:port" (http is assumed) or an http:// or https:// URL with
// no path. An empty addr means the value of HTTPAddrEnv, else that of
// ConsulHTTPAddrEnv, else DefaultHTTPAddr. NewClientConfig adds a token, a
// datacenter and the TLS settings of HTTPS.
func NewClient(addr string) (*Client, error) {
	addr = firstSet(addr, os.Getenv(HTTPAddrEnv), os.Getenv(ConsulHTTPAddrEnv), DefaultHTTPAddr)
	base, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: dialTimeout,
	}
	return &Client{
		base: base,
		http: &http.Client{
			Transport: transport,
			// The agent never redirects on purpose. Go would follow a
			// redirect of a PUT or DELETE as a GET, so that a write could
			// "succeed" without having been made; report it instead.
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		timeout:      requestTimeout,
		slowTimeout:  slowRequestTimeout,
		stallTimeout: stallTimeout,
		workTimeout:  workTimeout,
	}, nil
}

// parseAddr turns an agent address into the base URL requests are made to.
func parseAddr(addr string) (string, error) {
	raw := addr
	// "127.0.0.1:8500" and "localhost:8500" are not URLs that url.Parse
	// reads as intended, so give them the default scheme first.
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse http address %q: %w", addr, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("http address %q: unsupported scheme %q", addr, u.Scheme)
	case u.Host == "":
		return "", fmt.Errorf("http address %q: missing host", addr)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("http address %q: want only scheme, host and port", addr)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Members returns the members of the agent's gossip pool
// (GET /v1/agent/members).
func (c *Client) Members() ([]*Member, error) {
	var out []*Member
	if err := c.do(c.timeout, http.MethodGet, "/v1/agent/members", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Self returns the agent's configuration basics, its own member entry and
// its stats (GET /v1/agent/self).
func (c *Client) Self() (*Self, error) {
	var out Self
	if err := c.do(c.timeout, http.MethodGet, "/v1/agent/self", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Leader returns the Raft address of the cluster leader, or "" when there
// is none (GET /v1/status/leader).
func (c *Client) Leader() (string, error) {
	var out string
	if err := c.do(c.timeout, http.MethodGet, "/v1/status/leader", nil, &out); err != nil {
		return "", err
	}
	return out, nil
}

// Peers returns the Raft addresses of the servers in the Raft configuration
// (GET /v1/status/peers).
func (c *Client) Peers() ([]string, error) {
	var out []string
	if err := c.do(c.timeout, http.MethodGet, "/v1/status/peers", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RaftConfiguration returns the Raft configuration with the state of each
// server (GET /v1/operator/raft/configuration), as the leader sees it.
func (c *Client) RaftConfiguration() (*RaftConfiguration, error) {
	return c.raftConfiguration(nil)
}

// RaftConfigurationStale is RaftConfiguration answered by the agent itself
// from its own Raft state (?stale), which works without a leader.
func (c *Client) RaftConfigurationStale() (*RaftConfiguration, error) {
	return c.raftConfiguration(url.Values{"stale": {""}})
}

func (c *Client) raftConfiguration(q url.Values) (*RaftConfiguration, error) {
	var out RaftConfiguration
	if err := c.do(c.timeout, http.MethodGet, "/v1/operator/raft/configuration", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RaftRemovePeerByID removes the server with the given Raft ID from the Raft
// configuration (DELETE /v1/operator/raft/peer?id=<id>).
func (c *Client) RaftRemovePeerByID(id string) error {
	return c.do(c.timeout, http.MethodDelete, "/v1/operator/raft/peer", url.Values{"id": {id}}, nil)
}

// Join asks the agent to join the gossip pool through the agent at addr
// (PUT /v1/agent/join/<addr>). It waits up to 30s, not 10s, since the agent
// answers only once it has contacted addr.
func (c *Client) Join(addr string) error {
	return c.do(c.slowTimeout, http.MethodPut, "/v1/agent/join/"+url.PathEscape(addr), nil, nil)
}

// Leave asks the agent to leave the gossip pool gracefully and shut down
// (PUT /v1/agent/leave). It waits up to 30s, not 10s, since the agent
// answers only once the leave is complete.
func (c *Client) Leave() error {
	return c.do(c.slowTimeout, http.MethodPut, "/v1/agent/leave", nil, nil)
}

// Reload asks the agent to reload its configuration files' log level and
// its TLS files, as SIGHUP does (PUT /v1/agent/reload).
func (c *Client) Reload() error {
	return c.do(c.timeout, http.MethodPut, "/v1/agent/reload", nil, nil)
}

// ForceLeave asks the agent to move the failed member node to the left
// state (PUT /v1/agent/force-leave/<node>).
func (c *Client) ForceLeave(node string) error {
	return c.do(c.timeout, http.MethodPut, "/v1/agent/force-leave/"+url.PathEscape(node), nil, nil)
}

// Bootstrap returns why the cluster was, or has not yet been, bootstrapped
// (GET /v1/operator/bootstrap).
func (c *Client) Bootstrap() (*BootstrapStatus, error) {
	var out BootstrapStatus
	if err := c.do(c.timeout, http.MethodGet, "/v1/operator/bootstrap", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// do sends one request to path, which must already be escaped, and decodes
// a 2xx JSON answer into out unless out is nil. Any other status becomes a
// *StatusError. timeout bounds the whole exchange, body included.
func (c *Client) do(timeout time.Duration, method, path string, query url.Values, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, query, nil)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if out == nil {
		return nil
	}
	return decodeBody(resp, out)
}

// newRequest builds a request for path, which must already be escaped.
// A body is sent as application/octet-stream unless the caller sets
// another Content-Type.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	target := c.base + path
	if c.datacenter != "" {
		query = maps.Clone(query)
		if query == nil {
			query = url.Values{}
		}
		query.Set("dc", c.datacenter)
	}
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set(TokenHeader, c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	return req, nil
}

// send sends req. It returns the response when the status is 2xx or one of
// answers (statuses that carry an answer, such as 404 for a missing key);
// the caller must then pass it to closeBody. Any other status becomes a
// *StatusError.
func (c *Client) send(req *http.Request, answers ...int) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error already names the method and URL.
		return nil, err
	}
	if (resp.StatusCode >= 200 && resp.StatusCode <= 299) || slices.Contains(answers, resp.StatusCode) {
		return resp, nil
	}
	defer closeBody(resp)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(body))}
}

// closeBody reads what is left of a small answer, so that the connection
// can be reused, and closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

// decodeBody decodes the JSON body of resp into out.
func decodeBody(resp *http.Response, out any) error {
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		req := resp.Request
		return fmt.Errorf("decode %s %s response: %w", req.Method, req.URL.EscapedPath(), err)
	}
	return nil
}
