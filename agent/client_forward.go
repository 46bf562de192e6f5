package agent

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"

	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/gossip"
)

// errNoServers is answered with 503 by a client agent that knows no alive
// server to send a request to (Consul: "No known Consul servers").
var errNoServers = errors.New("No known Conclave servers")

// serverRouter sends a client agent's server requests (KV, transactions,
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
type serverRouter struct {
	pool   memberSource
	dc     string
	client *serverClient

	mu        sync.Mutex
	preferred string // Raft address of the server that answered last
}

// servers returns the Raft addresses of the datacenter's alive servers, the
// preferred one first and the others shuffled.
func (sr *serverRouter) servers() []string {
	sr.mu.Lock()
	preferred := sr.preferred
	sr.mu.Unlock()

	var addrs []string
	for _, m := range sr.pool.Members() {
		s, ok := gossip.ParseServer(m)
		if !ok || s.Status != serf.StatusAlive || s.Datacenter != sr.dc {
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

// forward proxies r to a server and copies its answer to w.
func (sr *serverRouter) forward(w http.ResponseWriter, r *http.Request) {
	addrs := sr.servers()
	if len(addrs) == 0 {
		httpError(w, http.StatusServiceUnavailable, errNoServers.Error())
		return
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
		return
	}
	httpError(w, http.StatusServiceUnavailable, "forward to server: "+lastErr.Error())
}

// send sends r to the server at addr; see proxyRequest for why a request
// whose dial failed can be sent again.
func (sr *serverRouter) send(r *http.Request, addr string) (*http.Response, error) {
	req, err := proxyRequest(r, addr)
	if err != nil {
		return nil, err
	}
	req.Header.Del(forwardedHeader) // the server may still forward it once, to its leader
	return sr.client.http.Do(req)
}

// isDialError reports whether err is a failure to connect, before any byte
// of the request was written.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// viaServer answers on a server and, on a client agent, sends the request
// to a server.
func (a *Agent) viaServer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.node != nil {
			h(w, r)
			return
		}
		a.router.forward(w, r)
	}
}
