package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/gossip"
)

// routes builds the HTTP API. Paths and shapes are Consul's, so Consul's
// clients and scripts work unchanged.
func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	for pattern, h := range a.statusRoutes() {
		mux.HandleFunc(pattern, h)
	}
	mux.HandleFunc("GET /v1/status/ready", a.statusReady)
	mux.HandleFunc("GET /v1/agent/health", a.agentHealth)
	mux.HandleFunc("GET /v1/agent/members", a.agentMembers)
	mux.HandleFunc("GET /v1/agent/self", a.agentSelf)
	mux.HandleFunc("PUT /v1/agent/join/{address...}", a.agentJoin)
	mux.HandleFunc("PUT /v1/agent/leave", a.agentLeave)
	mux.HandleFunc("PUT /v1/agent/force-leave/{node}", a.agentForceLeave)
	for pattern, h := range a.leaderRoutes() {
		mux.HandleFunc(pattern, h)
	}
	mux.HandleFunc("GET /v1/operator/bootstrap", a.operatorBootstrap)
	mux.HandleFunc("GET /v1/operator/discover", a.discoverHandler())
	a.debugRoutes(mux)
	return recoverer(a.kvRouter(mux))
}

// recoverer turns a panic in a handler into a 500, so no request can take
// the agent down.
func recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				httpError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", v))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// httpError writes a one-line plain-text error, as Consul does.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, strings.ReplaceAll(msg, "\n", " "))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// leaderRoutes are the endpoints a follower forwards to the leader. They
// are the only part of the API the server port serves.
func (a *Agent) leaderRoutes() map[string]http.HandlerFunc {
	routes := map[string]http.HandlerFunc{
		"GET /v1/operator/raft/configuration": a.viaServer(a.leaderOrStale(a.raftConfiguration)),
		"DELETE /v1/operator/raft/peer":       a.viaServer(a.leaderOnly(a.raftRemovePeer)),
		"GET /v1/operator/autopilot/health":   a.viaServer(a.leaderOnly(a.operatorAutopilotHealth)),
	}
	for pattern, h := range a.kvRoutes() {
		if !strings.Contains(pattern, kvPrefix) { // kvRouter serves /v1/kv itself
			routes[pattern] = h
		}
	}
	return routes
}

// statusRoutes are /v1/status/leader and /v1/status/peers. The server port
// serves them too, for client agents, which send them to a server.
func (a *Agent) statusRoutes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /v1/status/leader": a.viaServer(a.statusLeader),
		"GET /v1/status/peers":  a.viaServer(a.statusPeers),
	}
}

func (a *Agent) serverOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.node == nil {
			httpError(w, http.StatusBadRequest, "this agent is not a server")
			return
		}
		h(w, r)
	}
}

// leaderOnly answers on the leader and forwards to it from followers.
func (a *Agent) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.node.IsLeader() {
			h(w, r)
			return
		}
		a.forward.forward(w, r)
	}
}

// leaderOrStale is leaderOnly, unless the request says ?stale: then any
// server answers from its own state.
func (a *Agent) leaderOrStale(h http.HandlerFunc) http.HandlerFunc {
	lo := a.leaderOnly(h)
	return func(w http.ResponseWriter, r *http.Request) {
		if _, stale := r.URL.Query()["stale"]; stale {
			h(w, r)
			return
		}
		lo(w, r)
	}
}

func (a *Agent) statusLeader(w http.ResponseWriter, _ *http.Request) {
	addr, _ := a.node.Leader()
	writeJSON(w, addr)
}

func (a *Agent) statusPeers(w http.ResponseWriter, _ *http.Request) {
	servers, _, err := a.node.Configuration()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	peers := []string{}
	for _, s := range servers {
		if s.Voter {
			peers = append(peers, s.Address)
		}
	}
	writeJSON(w, peers)
}

func toAPIMember(m serf.Member) api.Member {
	return api.Member{
		Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: m.Tags, Status: int(m.Status),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
	}
}

func (a *Agent) agentMembers(w http.ResponseWriter, _ *http.Request) {
	members := a.pool.Members()
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	out := make([]api.Member, 0, len(members))
	for _, m := range members {
		out = append(out, toAPIMember(m))
	}
	writeJSON(w, out)
}

func (a *Agent) agentSelf(w http.ResponseWriter, _ *http.Request) {
	self := api.Self{
		Config: api.SelfConfig{
			Datacenter: a.cfg.Datacenter, NodeName: a.cfg.NodeName, NodeID: a.id, Server: a.cfg.Server,
			Version: Version, BootstrapExpect: a.cfg.BootstrapExpect, DataDir: a.cfg.DataDir,
		},
		Member: toAPIMember(a.pool.LocalMember()),
		Stats: map[string]map[string]string{
			"agent": {
				"server":    strconv.FormatBool(a.cfg.Server),
				"node_id":   a.id,
				"http_addr": a.HTTPAddr(),
				"version":   Version,
				"bootstrap": a.boot.Status().State,
			},
			"serf_lan": a.pool.Stats(),
		},
	}
	if a.node != nil {
		self.Stats["raft"] = a.node.Stats()
		leader, _ := a.node.Leader()
		self.Stats["agent"]["leader_addr"] = leader
		self.Stats["agent"]["raft_addr"] = a.node.RaftAddr()
	}
	writeJSON(w, self)
}

func (a *Agent) agentJoin(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	if addr == "" {
		httpError(w, http.StatusBadRequest, "missing address to join")
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(a.joinPort()))
	}
	n, err := a.join([]string{addr})
	if err != nil {
		httpError(w, http.StatusInternalServerError, fmt.Sprintf("join %s: %v", addr, err))
		return
	}
	if n == 0 {
		httpError(w, http.StatusInternalServerError, fmt.Sprintf("join %s: no node contacted", addr))
		return
	}
	writeJSON(w, nil)
}

// agentLeave leaves gracefully, answers, then shuts the agent down (which
// ends the agent process), as Consul does.
func (a *Agent) agentLeave(w http.ResponseWriter, _ *http.Request) {
	if err := a.Leave(); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, nil)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go a.Shutdown()
}

func (a *Agent) agentForceLeave(w http.ResponseWriter, r *http.Request) {
	node := r.PathValue("node")
	if err := a.pool.ForceLeave(node); err != nil {
		httpError(w, http.StatusInternalServerError, fmt.Sprintf("force-leave %s: %v", node, err))
		return
	}
	writeJSON(w, nil)
}

func (a *Agent) raftConfiguration(w http.ResponseWriter, _ *http.Request) {
	servers, index, err := a.node.Configuration()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	names := make(map[string]string)
	for _, m := range a.pool.Members() {
		if s, ok := gossip.ParseServer(m); ok {
			names[s.ID] = s.Name
		}
	}
	_, leaderID := a.node.Leader()
	out := api.RaftConfiguration{Servers: []*api.RaftServer{}, Index: index}
	for _, s := range servers {
		out.Servers = append(out.Servers, &api.RaftServer{
			ID: s.ID, Node: names[s.ID], Address: s.Address,
			Leader: s.ID == leaderID, Voter: s.Voter, ProtocolVersion: "3",
		})
	}
	writeJSON(w, out)
}

func (a *Agent) raftRemovePeer(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		httpError(w, http.StatusBadRequest, "Must specify ?id with the server ID to remove")
		return
	}
	servers, _, err := a.node.Configuration()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	found := false
	for _, s := range servers {
		found = found || s.ID == id
	}
	if !found {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("id %q was not found in the Raft configuration", id))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := a.node.RemoveServer(ctx, id); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, nil)
}

func (a *Agent) operatorBootstrap(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, a.boot.Status())
}

// internalRoutes is the handler on the server port: the bootstrap claim
// endpoints that only servers call, the leader's routes for requests other
// servers forward, and the status routes, for requests client agents send
// (client_forward.go). Nothing else of the API is reachable there, so a
// client_addr on loopback keeps leave, join and force-leave local.
func (a *Agent) internalRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+claimPath, func(w http.ResponseWriter, r *http.Request) {
		var c claim
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&c); err != nil {
			httpError(w, http.StatusBadRequest, "malformed claim: "+err.Error())
			return
		}
		writeJSON(w, a.boot.Answer(c))
	})
	mux.HandleFunc("POST "+releasePath, func(w http.ResponseWriter, r *http.Request) {
		var c claim
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&c); err != nil {
			httpError(w, http.StatusBadRequest, "malformed release: "+err.Error())
			return
		}
		a.boot.Release(c)
		writeJSON(w, nil)
	})
	mux.HandleFunc("GET "+raftStatsPath, a.internalRaftStats)
	for pattern, h := range a.leaderRoutes() {
		mux.HandleFunc(pattern, h)
	}
	for pattern, h := range a.statusRoutes() {
		mux.HandleFunc(pattern, h)
	}
	return recoverer(a.kvRouter(mux))
}
