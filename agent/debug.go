package agent

import (
	"net/http"
	"net/http/pprof"
)

// debugRoutes adds Go's runtime profiles under /debug/pprof/ when
// enable_debug is set, as Consul does. They are on the HTTP API only,
// never on the server port: profiles are for the operator at hand, not
// for other servers.
func (a *Agent) debugRoutes(mux *http.ServeMux) {
	if !a.cfg.EnableDebug {
		return
	}
	// pprof.Index serves every named profile (heap, allocs, goroutine, …)
	// under /debug/pprof/<name>; the others need their own handlers.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
