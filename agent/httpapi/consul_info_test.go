package httpapi

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/gossip"
)

// fakePool is a gossip pool of fixed members.
type fakePool struct{ members []gossip.Member }

func (p fakePool) Members() []gossip.Member     { return p.members }
func (p fakePool) LocalMember() gossip.Member   { return p.members[0] }
func (p fakePool) Stats() map[string]string     { return map[string]string{"members": "3", "failed": "1"} }
func (p fakePool) ForceLeave(node string) error { return nil }

// fakeAgent answers what the API asks of an agent.
type fakeAgent struct{ Agent }

func (fakeAgent) HTTPAddr() string { return "127.0.0.1:8500" }

// fakeBootstrap reports a fixed state.
type fakeBootstrap struct{ Bootstrap }

func (fakeBootstrap) Status() api.BootstrapStatus { return api.BootstrapStatus{State: "bootstrapped"} }

// TestAgentSelfConsulSections: /v1/agent/self carries the sections consul
// info prints, and Conclave's agent section as before.
func TestAgentSelfConsulSections(t *testing.T) {
	server := func(name string, status gossip.Status, dc string) gossip.Member {
		return gossip.Member{Name: name, Addr: net.IPv4(127, 0, 0, 1), Status: status, Tags: map[string]string{
			gossip.TagRole: gossip.RoleServer, gossip.TagID: name + "-id", gossip.TagRaftPort: "8300", gossip.TagDC: dc,
		}}
	}
	pool := fakePool{[]gossip.Member{
		{Name: "client-1", Addr: net.IPv4(127, 0, 0, 2), Status: gossip.StatusAlive, Tags: map[string]string{gossip.TagRole: gossip.RoleClient}},
		server("s1", gossip.StatusAlive, "dc1"), server("s2", gossip.StatusAlive, "dc1"),
		server("s3", gossip.StatusFailed, "dc1"), server("x1", gossip.StatusAlive, "dc2"),
	}}
	s := New(Config{
		Name: "client-1", ID: "c-id", Datacenter: "dc1", Version: "0.3.0", Logger: hclog.NewNullLogger(),
		Pool: pool, Agent: fakeAgent{}, Bootstrap: fakeBootstrap{},
	})
	w := httptest.NewRecorder()
	s.Public().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/agent/self", nil))
	var self api.Self
	if err := json.Unmarshal(w.Body.Bytes(), &self); err != nil || w.Code != 200 {
		t.Fatalf("GET /v1/agent/self = %d %q, %v", w.Code, w.Body.String(), err)
	}
	st := self.Stats
	for _, check := range []struct{ section, key, want string }{
		{"consul", "server", "false"},
		{"consul", "leader", "false"},
		{"consul", "known_servers", "2"}, // alive servers of this datacenter
		{"consul", "bootstrap", "false"},
		{"build", "version", "0.3.0"},
		{"serf_lan", "members", "3"},
		{"agent", "node_id", "c-id"},
		{"agent", "bootstrap", "bootstrapped"},
	} {
		if got := st[check.section][check.key]; got != check.want {
			t.Errorf("Stats[%s][%s] = %q, want %q", check.section, check.key, got, check.want)
		}
	}
	for _, k := range []string{"goroutines", "os", "arch", "version"} {
		if st["runtime"][k] == "" {
			t.Errorf("Stats[runtime][%s] is empty", k)
		}
	}
	if _, ok := st["raft"]; ok {
		t.Error("a client agent reports a raft section")
	}
}
