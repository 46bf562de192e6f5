package api

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

const (
	// DiscoverTimeout is how long the agent lets GET /v1/operator/discover
	// run when the request sets no timeout.
	DiscoverTimeout = 30 * time.Second

	// MaxDiscoverTimeout is the longest timeout a request to
	// GET /v1/operator/discover may set.
	MaxDiscoverTimeout = 2 * time.Minute
)

// DiscoverResult is how one retry_join entry resolved, as
// GET /v1/operator/discover answers it and `conclave operator discover`
// prints it.
type DiscoverResult struct {
	// Entry is the entry as given, with the values of secret keys (such as
	// secret_access_key or api_token) replaced by "[redacted]". A
	// go-discover entry is shown in go-discover's form: keys sorted,
	// values quoted where needed.
	Entry string

	// Provider is the go-discover provider the entry names, or "" for an
	// address or a DNS name.
	Provider string

	// Args are the key=value pairs go-discover parsed from the entry,
	// "provider" included, secrets redacted; null for an address or a DNS
	// name.
	Args map[string]string

	// Addrs are the host:port addresses the entry resolved to; empty when
	// it yielded none.
	Addrs []string

	// Log holds the lines the go-discover provider logged while it looked,
	// such as `[DEBUG] discover-k8s: ignoring pod "conclave-2", not ready
	// state`; empty for an address or a DNS name.
	Log []string

	// Error says why the entry yielded no address, or why some of what the
	// provider returned was unusable; "" when it resolved.
	Error string
}

// Discover asks the agent to resolve retry_join entries now, from its own
// network view, and say how (GET /v1/operator/discover). port is given to
// addresses without one; 0 leaves the agent's own gossip port. timeout
// bounds the agent's work; 0 leaves the agent's default, DiscoverTimeout.
// The request waits that long plus 10s. An entry that fails is not an
// error: its Error field says why.
func (c *Client) Discover(entries []string, port int, timeout time.Duration) ([]*DiscoverResult, error) {
	q := url.Values{"q": entries}
	if port != 0 {
		q.Set("port", strconv.Itoa(port))
	}
	wait := DiscoverTimeout
	if timeout != 0 {
		q.Set("timeout", timeout.String())
		wait = timeout
	}
	var out []*DiscoverResult
	if err := c.do(wait+c.timeout, http.MethodGet, "/v1/operator/discover", q, &out); err != nil {
		return nil, err
	}
	return out, nil
}
