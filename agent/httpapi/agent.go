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

func (s *Service) agentMembers(w http.ResponseWriter, _ *http.Request) {
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
		Stats: map[string]map[string]string{
			"agent": {
				"server":     strconv.FormatBool(c.Server),
				"node_id":    c.ID,
				"http_addr":  c.Agent.HTTPAddr(),
				"https_addr": c.HTTPSAddr,
				"version":    c.Version,
				"bootstrap":  c.Bootstrap.Status().State,
			},
			"serf_lan": c.Pool.Stats(),
		},
	}
	if s.store != nil {
		self.Stats["raft"] = s.store.Stats()
		leader, _ := s.store.Leader()
		self.Stats["agent"]["leader_addr"] = leader
		self.Stats["agent"]["raft_addr"] = s.store.RaftAddr()
	}
	writeJSON(w, self)
}

func (s *Service) agentJoin(w http.ResponseWriter, r *http.Request) {
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
	node := r.PathValue("node")
	if err := s.cfg.Pool.ForceLeave(node); err != nil {
		httpError(w, http.StatusInternalServerError, fmt.Sprintf("force-leave %s: %v", node, err))
		return
	}
	writeJSON(w, nil)
}
