package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/gossip"
)

// The /v1/agent endpoints: this agent and its gossip pool. Any agent
// answers them itself; none is served on the server port.

func toAPIMember(m gossip.Member) api.Member {
	return api.Member{
		Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: m.Tags, Status: int(m.Status),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
	}
}

// notSupported answers 400 when r carries a query parameter Conclave
// cannot honour (Consul's WAN pool, force-leave's prune), so that it is not
// silently ignored; it reports whether it answered.
func notSupported(w http.ResponseWriter, r *http.Request, param, what string) bool {
	if _, ok := r.URL.Query()[param]; !ok {
		return false
	}
	httpError(w, http.StatusBadRequest, fmt.Sprintf("?%s: %s is not supported by Conclave", param, what))
	return true
}

func (s *Service) agentMembers(w http.ResponseWriter, r *http.Request) {
	if notSupported(w, r, "wan", "the WAN gossip pool") {
		return
	}
	members := s.cfg.Pool.Members()
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	out := make([]api.Member, 0, len(members))
	for _, m := range members {
		out = append(out, toAPIMember(m))
	}
	writeJSON(w, out)
}

func (s *Service) agentSelf(w http.ResponseWriter, _ *http.Request) {
	c := s.cfg
	self := api.Self{
		Config: api.SelfConfig{
			Datacenter: c.Datacenter, NodeName: c.Name, NodeID: c.ID, Server: c.Server,
			Version: c.Version, BootstrapExpect: c.BootstrapExpect, DataDir: c.DataDir,
			ClusterID: c.Identity().ClusterID,
		},
		Member: toAPIMember(c.Pool.LocalMember()),
		// Consul's sections (build, consul, raft, runtime, serf_lan), then
		// Conclave's agent section.
		Stats: s.consulInfoSections(),
	}
	self.Stats["agent"] = map[string]string{
		"server":     strconv.FormatBool(c.Server),
		"node_id":    c.ID,
		"http_addr":  c.Agent.HTTPAddr(),
		"https_addr": c.HTTPSAddr,
		"version":    c.Version,
		"bootstrap":  c.Bootstrap.Status().State,
	}
	if s.store != nil {
		leader, _ := s.store.Leader()
		self.Stats["agent"]["leader_addr"] = leader
		self.Stats["agent"]["raft_addr"] = s.store.RaftAddr()
	}
	writeJSON(w, self)
}

func (s *Service) agentJoin(w http.ResponseWriter, r *http.Request) {
	if notSupported(w, r, "wan", "joining the WAN gossip pool") {
		return
	}
	addr := r.PathValue("address")
	if addr == "" {
		httpError(w, http.StatusBadRequest, "missing address to join")
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(s.cfg.JoinPort))
	}
	n, err := s.cfg.Agent.Join([]string{addr})
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
func (s *Service) agentLeave(w http.ResponseWriter, _ *http.Request) {
	if err := s.cfg.Agent.Leave(); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, nil)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go s.cfg.Agent.Shutdown()
}

func (s *Service) agentForceLeave(w http.ResponseWriter, r *http.Request) {
	if notSupported(w, r, "prune", "pruning a member at once") {
		return
	}
	node := r.PathValue("node")
	if err := s.cfg.Pool.ForceLeave(node); err != nil {
		httpError(w, http.StatusInternalServerError, fmt.Sprintf("force-leave %s: %v", node, err))
		return
	}
	writeJSON(w, nil)
}
