package agent

import (
	"context"
	"errors"
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

// forwarder sends requests that only the leader may answer to the leader's
// server port, one hop, over pooled keep-alive connections.
type forwarder struct {
	node   *consensus.Node
	client *http.Client
}

func newForwarder(node *consensus.Node) *forwarder {
	tr := &http.Transport{
		// The URL host is the leader's Raft address; the mux on that port
		// routes the connection to the leader's HTTP handler.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, addr, protoForward)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &forwarder{node: node, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
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
	u := *r.URL
	u.Scheme, u.Host = "http", leader
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	req.Header = r.Header.Clone()
	req.Header.Set(forwardedHeader, "1")
	req.ContentLength = r.ContentLength
	resp, err := f.client.Do(req)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "forward to leader "+leader+": "+err.Error())
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}
