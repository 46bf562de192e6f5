package agent

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

	"github.com/conclavehq/conclave/consensus"
)

// forwardedHeader marks a request a follower forwarded, so the receiver
// never forwards it again (a leader that has just stepped down answers 503
// instead of bouncing the request around).
const forwardedHeader = "X-Conclave-Forwarded"

// errNoLeader is answered with 503 when a request needs a leader and the
// cluster has none.
var errNoLeader = errors.New("No cluster leader")

// serverClient speaks HTTP to other servers over their server port (the
// mux routes protoForward connections to the internal handler), one hop,
// over pooled keep-alive connections.
type serverClient struct {
	http *http.Client
}

func newServerClient() *serverClient {
	tr := &http.Transport{
		// The URL host is the server's Raft address; see mux.go.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, addr, protoForward)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &serverClient{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// call POSTs in as JSON to path on the server at addr and decodes the
// answer into out (when out is not nil).
func (c *serverClient) call(ctx context.Context, addr, path string, in, out any) error {
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

// get GETs path on the server at addr and decodes the answer into out.
func (c *serverClient) get(ctx context.Context, addr, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	return c.do(req, path, out)
}

// do sends req and decodes a 200 answer's JSON into out (when out is not
// nil); any other status is an error carrying the one-line body.
func (c *serverClient) do(req *http.Request, path string, out any) error {
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

// forwarder sends requests that only the leader may answer to the leader.
type forwarder struct {
	node   *consensus.Node
	client *serverClient
}

// forward proxies r to the leader and copies its answer to w.
func (f *forwarder) forward(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(forwardedHeader) != "" {
		httpError(w, http.StatusServiceUnavailable, errNoLeader.Error())
		return
	}
	leader, _ := f.node.Leader()
	if leader == "" {
		httpError(w, http.StatusServiceUnavailable, errNoLeader.Error())
		return
	}
	req, err := proxyRequest(r, leader)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	req.Header.Set(forwardedHeader, "1")
	resp, err := f.client.http.Do(req)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "forward to leader "+leader+": "+err.Error())
		return
	}
	copyResponse(w, resp)
}

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
		return nil, err
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
