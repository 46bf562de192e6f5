package httpapi

import (
	"fmt"
	"net/http"
	"strings"
)

// Placement says who may answer a Route.
type Placement = placement

// Who may answer a Route. A follower forwards a Leader route to the
// leader over the server port; a client agent sends every route but an
// AnyAgent one to a server.
const (
	// AnyAgent: the agent that received the request answers it.
	AnyAgent = anyAgent
	// Server: any server answers, from its own state.
	Server = server
	// Leader: the leader answers.
	Leader = leader
	// LeaderOrStale: the leader answers, unless the request says ?stale.
	LeaderOrStale = leaderOrStale
)

// Route is one route an embedding application adds to the API
// (Config.Routes). It is a row of the same table as the API's own routes,
// behind the same placement and recovery.
type Route struct {
	// Method is the HTTP method, such as "POST"; empty matches every
	// method.
	Method string
	// Pattern is a net/http ServeMux pattern without the method, such as
	// "/counter/{name}". It must begin with "/" and not with a prefix the
	// API keeps for itself (/v1/, /internal/, /debug/).
	Pattern string
	// Who says who answers the route.
	Who Placement
	// Handler answers the request. WriteError answers an error of
	// consensus (not the leader, outcome unknown, ...) as the API does.
	Handler http.HandlerFunc
}

// reservedPrefixes are the paths of the API's own routes; an
// application's route may not use them.
var reservedPrefixes = []string{"/v1/", "/internal/", "/debug/"}

// kvRoute reports whether rt belongs to the key/value store: its keys, its
// transactions, its sessions and its snapshots, which a node running an
// application's state machine does not serve.
func kvRoute(rt route) bool {
	return strings.HasPrefix(rt.pattern, kvPrefix) || strings.HasPrefix(rt.pattern, "/v1/session/") ||
		rt.pattern == "/v1/txn" || rt.pattern == "/v1/snapshot"
}

// withApp drops the key/value routes when the application runs its own
// state machine and adds the application's routes. Every route other
// than an AnyAgent one is on the server port too, so that it can be
// forwarded to the leader or sent to a server.
func (s *Service) withApp(rs []route) []route {
	if s.cfg.NoKV {
		kept := rs[:0:0]
		for _, rt := range rs {
			if !kvRoute(rt) {
				kept = append(kept, rt)
			}
		}
		rs = kept
	}
	for _, r := range s.cfg.Routes {
		on := both
		if r.Who == AnyAgent {
			on = public
		}
		rs = append(rs, route{r.Method, r.Pattern, r.Who, on, r.Handler})
	}
	return rs
}

// CheckRoutes reports the first of routes that cannot be served: a
// pattern that is empty, reserved, malformed or that conflicts with
// another route, or a missing handler or unknown placement.
func CheckRoutes(routes []Route) (err error) {
	mux := http.NewServeMux()
	var current Route
	defer func() {
		// ServeMux panics on a malformed or conflicting pattern.
		if v := recover(); v != nil {
			err = fmt.Errorf("route %s %s: %v", current.Method, current.Pattern, v)
		}
	}()
	for _, r := range routes {
		current = r
		switch {
		case !strings.HasPrefix(r.Pattern, "/"):
			return fmt.Errorf("route %s %q: pattern must begin with /", r.Method, r.Pattern)
		case r.Handler == nil:
			return fmt.Errorf("route %s %s: no handler", r.Method, r.Pattern)
		case r.Who < AnyAgent || r.Who > LeaderOrStale:
			return fmt.Errorf("route %s %s: unknown placement %d", r.Method, r.Pattern, r.Who)
		}
		for _, p := range reservedPrefixes {
			if strings.HasPrefix(r.Pattern, p) {
				return fmt.Errorf("route %s %s: paths under %s belong to the API", r.Method, r.Pattern, p)
			}
		}
		pattern := r.Pattern
		if r.Method != "" {
			pattern = r.Method + " " + pattern
		}
		mux.HandleFunc(pattern, r.Handler)
	}
	return nil
}

// WriteError answers err, an error of consensus or of the context, as
// the API answers it: 503 when there is no leader or the write timed out,
// 500 when the outcome is unknown, 400 or 413 for a refused command.
func WriteError(w http.ResponseWriter, err error) { writeError(w, err) }
