package serverport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"

	"github.com/conclavehq/conclave/gossip"
)

// Router sends a client agent's server requests (KV, transactions,
// snapshots, status and the Raft configuration) to a server, over the
// server's server port as a follower forwards to its leader. The server
// answers as if it had received the request on its own HTTP API, forwarding
// it to the leader when needed, so a request crosses at most two hops and
// never loops: servers never forward to clients.
//
// Like Consul's router it sticks to one server while that server answers,
// which keeps connections warm and blocking queries on one view, and moves
// to another alive server of the datacenter when a connection to it cannot
// be made. Only a failed dial is retried elsewhere: once a request has been
// sent, its outcome is that server's answer, or unknown.
type Router struct {
	pool   Members
	dc     string
	client *Client

	mu        sync.Mutex
	preferred string // Raft address of the server that answered last
}

// Members is the part of gossip.Pool the router uses.
type Members interface {
	Members() []gossip.Member
}

// NewRouter returns a router to the alive servers of datacenter dc in
// pool.
func NewRouter(pool Members, dc string, client *Client) *Router {
	return &Router{pool: pool, dc: dc, client: client}
}

// servers returns the Raft addresses of the datacenter's alive servers, the
// preferred one first and the others shuffled.
func (sr *Router) servers() []string {
	sr.mu.Lock()
	preferred := sr.preferred
	sr.mu.Unlock()

	var addrs []string
	for _, m := range sr.pool.Members() {
		s, ok := gossip.ParseServer(m)
		if !ok || s.Status != gossip.StatusAlive || s.Datacenter != sr.dc {
			continue
		}
		addrs = append(addrs, s.RaftAddr())
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	for i, addr := range addrs {
		if addr == preferred {
			addrs[0], addrs[i] = addrs[i], addrs[0]
			break
		}
	}
	return addrs
}

// Forward proxies r to a server and copies its answer to w. On error it
// has written nothing: the caller answers 503.
func (sr *Router) Forward(w http.ResponseWriter, r *http.Request) error {
	addrs := sr.servers()
	if len(addrs) == 0 {
		return ErrNoServers
	}
	var lastErr error
	for _, addr := range addrs {
		resp, err := sr.send(r, addr)
		if err != nil {
			lastErr = err
			if isDialError(err) && r.Context().Err() == nil {
				continue // nothing was sent: another server may take it
			}
			break
		}
		sr.mu.Lock()
		sr.preferred = addr
		sr.mu.Unlock()
		copyResponse(w, resp)
		return nil
	}
	return fmt.Errorf("forward to server: %w", lastErr)
}

// send sends r to the server at addr; see proxyRequest for why a request
// whose dial failed can be sent again.
func (sr *Router) send(r *http.Request, addr string) (*http.Response, error) {
	req, err := proxyRequest(r, addr)
	if err != nil {
		return nil, err
	}
	req.Header.Del(ForwardedHeader) // the server may still forward it once, to its leader
	return sr.client.http.Do(req)
}

// isDialError reports whether err is a failure to connect, before any byte
// of the request was written.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
