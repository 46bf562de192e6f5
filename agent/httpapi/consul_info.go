package httpapi

import (
	"runtime"
	"strconv"

	"github.com/conclavehq/conclave/gossip"
)

// consulInfoSections are the sections of Consul's /v1/agent/self Stats
// that consul info prints, beside Conclave's own agent section: build,
// consul (leadership and servers), raft (on a server), runtime and
// serf_lan. The agent answers them from what it has at hand.
func (s *Service) consulInfoSections() map[string]map[string]string {
	c := s.cfg
	knownServers := 0
	for _, m := range c.Pool.Members() {
		if srv, ok := gossip.ParseServer(m); ok && srv.Status == gossip.StatusAlive && srv.Datacenter == c.Datacenter {
			knownServers++
		}
	}
	consul := map[string]string{
		"server":            strconv.FormatBool(c.Server),
		"bootstrap":         strconv.FormatBool(c.BootstrapMode),
		"known_servers":     strconv.Itoa(knownServers),
		"known_datacenters": "1",
		"acl":               "disabled",
		"leader":            "false",
		"leader_addr":       "",
	}
	out := map[string]map[string]string{
		"build": {"version": c.Version, "prerelease": "", "revision": "", "version_metadata": ""},
		"runtime": {
			"goroutines": strconv.Itoa(runtime.NumGoroutine()),
			"os":         runtime.GOOS,
			"arch":       runtime.GOARCH,
			"version":    runtime.Version(),
			"cpu_count":  strconv.Itoa(runtime.NumCPU()),
			"max_procs":  strconv.Itoa(runtime.GOMAXPROCS(0)),
		},
		"serf_lan": c.Pool.Stats(),
		"consul":   consul,
	}
	if s.store != nil {
		out["raft"] = s.store.Stats()
		addr, _ := s.store.Leader()
		consul["leader"] = strconv.FormatBool(s.store.IsLeader())
		consul["leader_addr"] = addr
	}
	return out
}
