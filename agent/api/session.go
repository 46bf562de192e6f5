package api

import (
	"net/http"
	"net/url"
)

// SessionList returns every session (GET /v1/session/list).
func (c *Client) SessionList() ([]*SessionEntry, error) {
	var out []*SessionEntry
	err := c.do(c.timeout, http.MethodGet, "/v1/session/list", nil, &out)
	return out, err
}

// SessionNode returns the sessions of node (GET /v1/session/node/<node>).
func (c *Client) SessionNode(node string) ([]*SessionEntry, error) {
	var out []*SessionEntry
	err := c.do(c.timeout, http.MethodGet, "/v1/session/node/"+url.PathEscape(node), nil, &out)
	return out, err
}

// SessionInfo returns the session id, or nil when it does not exist
// (GET /v1/session/info/<id>).
func (c *Client) SessionInfo(id string) (*SessionEntry, error) {
	var out []*SessionEntry
	if err := c.do(c.timeout, http.MethodGet, "/v1/session/info/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out[0], nil
}

// SessionDestroy invalidates the session id: the keys it holds are
// released or deleted (PUT /v1/session/destroy/<id>). Destroying a session
// that does not exist succeeds.
func (c *Client) SessionDestroy(id string) error {
	return c.do(c.timeout, http.MethodPut, "/v1/session/destroy/"+url.PathEscape(id), nil, nil)
}

// Endpoint is what a Client sends with: for a library that speaks the same
// HTTP API, such as Consul's api package, which "conclave lock" uses for
// Consul's lock and semaphore helpers.
type Endpoint struct {
	// Address is the base URL, such as "http://127.0.0.1:8500".
	Address string
	// HTTPClient is the client requests go through, with the TLS
	// settings; it has no overall timeout, so blocking queries work.
	HTTPClient *http.Client
	// Token and Datacenter are sent with every request when set.
	Token, Datacenter string
}

// Endpoint returns what the client sends with.
func (c *Client) Endpoint() Endpoint {
	return Endpoint{Address: c.base, HTTPClient: c.http, Token: c.token, Datacenter: c.datacenter}
}
