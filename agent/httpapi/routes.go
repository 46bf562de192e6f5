package httpapi

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/cluster"
)

// placement says who may answer a route.
type placement int

const (
	// anyAgent: the agent that received the request answers it.
	anyAgent placement = iota
	// server: a server answers; a client agent sends it to one.
	server
	// leader: the leader answers; a follower forwards it there, a client
	// agent sends it to a server.
	leader
	// leaderOrStale: leader, unless the request says ?stale: then any
	// server answers from its own state.
	leaderOrStale
)

// port says which listener serves a route.
type port int

const (
	// public is the HTTP API port.
	public port = 1 << iota
	// internal is the server port's HTTP channel: the routes other servers
	// call, those a follower forwards to its leader, and those a client
	// agent sends to a server. Nothing else of the API is reachable there,
	// so a client_addr on loopback keeps leave, join and force-leave local.
	internal
	both = public | internal
)

// route is one row of the route table.
type route struct {
	method, pattern string
	who             placement
	on              port
	handler         http.HandlerFunc
}

// kvPrefix is the path under which keys live.
const kvPrefix = "/v1/kv/"

// routes is the whole API, read top to bottom. Paths and shapes are
// Consul's, so Consul's clients and scripts work unchanged.
func (s *Service) routes() []route {
	rs := []route{
		{"GET", "/v1/status/leader", server, both, s.statusLeader},
		{"GET", "/v1/status/peers", server, both, s.statusPeers},
		{"GET", "/v1/status/ready", anyAgent, public, s.statusReady},

		{"GET", "/v1/agent/health", anyAgent, public, s.agentHealth},
		{"GET", "/v1/agent/members", anyAgent, public, s.agentMembers},
		{"GET", "/v1/agent/self", anyAgent, public, s.agentSelf},
		{"GET", "/v1/agent/monitor", anyAgent, public, s.agentMonitor},
		{"PUT", "/v1/agent/join/{address...}", anyAgent, public, s.agentJoin},
		{"PUT", "/v1/agent/leave", anyAgent, public, s.agentLeave},
		{"PUT", "/v1/agent/force-leave/{node}", anyAgent, public, s.agentForceLeave},
		{"PUT", "/v1/agent/reload", anyAgent, public, s.agentReload},

		{"GET", "/v1/operator/raft/configuration", leaderOrStale, both, s.raftConfiguration},
		{"DELETE", "/v1/operator/raft/peer", leader, both, s.raftRemovePeer},
		// Consul's client sends POST, its docs say PUT: both are served.
		{"PUT", "/v1/operator/raft/transfer-leader", leader, both, s.raftTransferLeader},
		{"POST", "/v1/operator/raft/transfer-leader", leader, both, s.raftTransferLeader},
		{"GET", "/v1/operator/autopilot/health", leader, both, s.autopilotHealth},
		{"GET", "/v1/operator/autopilot/configuration", leaderOrStale, both, s.autopilotGetConfig},
		{"PUT", "/v1/operator/autopilot/configuration", leader, both, s.autopilotSetConfig},
		{"GET", "/v1/operator/autopilot/state", leader, both, s.autopilotState},
		{"GET", "/v1/operator/bootstrap", anyAgent, public, s.operatorBootstrap},
		{"GET", "/v1/operator/discover", anyAgent, public, s.discover},
		// Security state. ACL: Consul's keyring rule, read to list and write
		// to change (operator write also allows both). Any agent answers: it
		// asks the whole pool through Serf.
		{"GET", api.KeyringPath, anyAgent, public, s.keyringList},
		{"POST", api.KeyringPath, anyAgent, public, s.keyringInstall},
		{"PUT", api.KeyringPath, anyAgent, public, s.keyringUse},
		{"DELETE", api.KeyringPath, anyAgent, public, s.keyringRemove},

		// kvGet places reads itself: the consistency mode decides.
		{"GET", kvPrefix + "{key...}", server, both, s.kvGet},
		{"PUT", kvPrefix + "{key...}", leader, both, s.kvPut},
		{"DELETE", kvPrefix + "{key...}", leader, both, s.kvDelete},
		{"PUT", "/v1/txn", leader, both, s.txn},

		// sessionCreate completes the body here, then places itself.
		{"PUT", "/v1/session/create", anyAgent, both, s.sessionCreate},
		{"PUT", "/v1/session/destroy/{id}", leader, both, s.sessionDestroy},
		{"PUT", "/v1/session/renew/{id}", leader, both, s.sessionRenew},
		// The reads place themselves, as kvGet does.
		{"GET", "/v1/session/info/{id}", server, both, s.sessionInfo},
		{"GET", "/v1/session/node/{node}", server, both, s.sessionNode},
		{"GET", "/v1/session/list", server, both, s.sessionList},

		{"GET", "/v1/snapshot", leaderOrStale, both, s.snapshotSave},
		{"PUT", "/v1/snapshot", leader, both, s.snapshotRestore},

		{"POST", cluster.ClaimPath, anyAgent, internal, s.bootstrapClaim},
		{"POST", cluster.ReleasePath, anyAgent, internal, s.bootstrapRelease},
		{"GET", cluster.RaftStatsPath, anyAgent, internal, s.raftStats},
		{"GET", cluster.IdentityPath, anyAgent, internal, s.identity},
	}
	if s.cfg.EnableDebug {
		rs = append(rs, debugRoutes()...)
	}
	return s.withApp(rs)
}

// debugRoutes are Go's runtime profiles under /debug/pprof/, with
// enable_debug, as Consul serves them. They are on the HTTP API only,
// never on the server port: profiles are for the operator at hand, not for
// other servers. pprof.Index serves every named profile (heap, allocs,
// goroutine, …) under /debug/pprof/<name>; the others need their own
// handlers.
func debugRoutes() []route {
	return []route{
		{"", "/debug/pprof/", anyAgent, public, pprof.Index},
		{"", "/debug/pprof/cmdline", anyAgent, public, pprof.Cmdline},
		{"", "/debug/pprof/profile", anyAgent, public, pprof.Profile},
		{"", "/debug/pprof/symbol", anyAgent, public, pprof.Symbol},
		{"", "/debug/pprof/trace", anyAgent, public, pprof.Trace},
	}
}

// Public is the handler of the HTTP API port.
func (s *Service) Public() http.Handler { return s.handler(public) }

// Internal is the handler of the server port's HTTP channel.
func (s *Service) Internal() http.Handler { return s.handler(internal) }

// handler builds the mux of the routes served on p, each behind its body
// limit and its placement, and the whole behind the datacenter check and
// recovery.
func (s *Service) handler(p port) http.Handler {
	mux := http.NewServeMux()
	kv := make(map[string]http.HandlerFunc)
	for _, rt := range s.routes() {
		if rt.on&p == 0 {
			continue
		}
		h := limitBody(s.bodyRule(rt.method, rt.pattern), s.place(rt.who, rt.handler))
		switch {
		case strings.HasPrefix(rt.pattern, kvPrefix):
			kv[rt.method] = h
		case rt.method == "":
			mux.HandleFunc(rt.pattern, h)
		default:
			mux.HandleFunc(rt.method+" "+rt.pattern, h)
		}
	}
	return recoverer(s.datacenter(kvRouter(kv, mux)))
}

// kvRouter sends /v1/kv requests to their handlers (by method) before
// ServeMux sees them, and everything else to next. ServeMux would clean
// "/v1/kv//x" into a redirect to "/v1/kv/x"; keeping such paths away from
// it lets the key be refused.
func kvRouter(byMethod map[string]http.HandlerFunc, next http.Handler) http.Handler {
	if len(byMethod) == 0 { // Config.NoKV: /v1/kv is not found, like any path
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, kvPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		h, ok := byMethod[method]
		if !ok {
			w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
			httpError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		h(w, r)
	})
}
