package serverport

import (
	"fmt"
	"io"
	"net/http"
)

// LeaderFinder is the part of consensus.Node the forwarder uses.
type LeaderFinder interface {
	Leader() (addr, id string)
}

// Forwarder sends requests that only the leader may answer to the leader.
type Forwarder struct {
	node   LeaderFinder
	client *Client
}

// NewForwarder returns a forwarder to node's leader over client.
func NewForwarder(node LeaderFinder, client *Client) *Forwarder {
	return &Forwarder{node: node, client: client}
}

// Forward proxies r to the leader and copies its answer to w. On error it
// has written nothing: the caller answers (503 for ErrNoLeader and a
// failed send, 500 for a *RequestError).
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get(ForwardedHeader) != "" {
		return ErrNoLeader
	}
	leader, _ := f.node.Leader()
	if leader == "" {
		return ErrNoLeader
	}
	req, err := proxyRequest(r, leader)
	if err != nil {
		return err
	}
	req.Header.Set(ForwardedHeader, "1")
	resp, err := f.client.http.Do(req)
	if err != nil {
		return fmt.Errorf("forward to leader %s: %w", leader, err)
	}
	copyResponse(w, resp)
	return nil
}

// RequestError is a request that could not be rebuilt for forwarding.
type RequestError struct{ Err error }

// Error is the underlying error's text.
func (e *RequestError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *RequestError) Unwrap() error { return e.Err }

// proxyRequest is r, headers and body, addressed to the server port at
// addr. The body is shielded from the transport's Close, so that a
// request whose dial failed, and which therefore read none of it, can
// still be sent elsewhere.
func proxyRequest(r *http.Request, addr string) (*http.Request, error) {
	u := *r.URL
	u.Scheme, u.Host = "http", addr
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody {
		body = io.NopCloser(r.Body)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		return nil, &RequestError{Err: err}
	}
	req.Header = r.Header.Clone()
	req.ContentLength = r.ContentLength
	return req, nil
}

// copyResponse passes a proxied answer, status, headers and body, to w,
// and closes it.
func copyResponse(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}
