package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/conclavehq/conclave/test/testutil"
)

// TestConsulClientCompatibility drives Conclave with Consul's official Go
// client: what Consul's own tools call must decode and behave the same.
func TestConsulClientCompatibility(t *testing.T) {
	nodes := startServers(t, "cc", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)

	client, err := consul.NewClient(&consul.Config{Address: nodes[0].HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}

	leader, err := client.Status().Leader()
	if err != nil || leader != LeaderNode(nodes...).RaftAddr() {
		t.Errorf("Status().Leader() = %q, %v; want %q", leader, err, LeaderNode(nodes...).RaftAddr())
	}
	peers, err := client.Status().Peers()
	if err != nil || len(peers) != 3 {
		t.Errorf("Status().Peers() = %v, %v; want 3 peers", peers, err)
	}

	members, err := client.Agent().Members(false)
	if err != nil {
		t.Fatalf("Agent().Members: %v", err)
	}
	var names []string
	for _, m := range members {
		names = append(names, m.Name)
		if m.Status != 1 /* serf.StatusAlive */ || m.Tags["role"] != "consul" || m.Port == 0 {
			t.Errorf("member %+v: want an alive server with a port", m)
		}
		// What Consul's members command reads: the protocol, build and dc.
		if m.Tags["vsn"] != "2" || m.Tags["build"] == "" || m.Tags["dc"] != "dc1" || m.Tags["id"] == "" || m.Tags["port"] == "" {
			t.Errorf("member %s tags %v: want Consul's vsn, build, dc, id and port", m.Name, m.Tags)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "cc1,cc2,cc3" {
		t.Errorf("Agent().Members() names = %v", names)
	}

	self, err := client.Agent().Self()
	if err != nil || self["Config"]["NodeName"] != "cc1" {
		t.Errorf("Agent().Self() = %v, %v; want Config.NodeName cc1", self["Config"], err)
	}
	// The sections consul info prints.
	stats := self["Stats"]
	for _, section := range []string{"agent", "build", "consul", "raft", "runtime", "serf_lan"} {
		if m, ok := stats[section].(map[string]any); !ok || len(m) == 0 {
			t.Errorf("Agent().Self() Stats[%s] = %v, want a section", section, stats[section])
		}
	}
	if c, _ := stats["consul"].(map[string]any); c["server"] != "true" || c["known_servers"] != "3" || (c["leader"] != "true" && c["leader"] != "false") {
		t.Errorf("Agent().Self() Stats[consul] = %v, want server true, 3 known servers, leader", c)
	}
	if sl, _ := stats["serf_lan"].(map[string]any); sl["members"] != "3" {
		t.Errorf("Agent().Self() Stats[serf_lan] = %v, want 3 members", sl)
	}

	conf, err := client.Operator().RaftGetConfiguration(nil)
	if err != nil {
		t.Fatalf("Operator().RaftGetConfiguration: %v", err)
	}
	leaders := 0
	for _, s := range conf.Servers {
		if s.Leader {
			leaders++
		}
		if !s.Voter || s.ID == "" || s.Node == "" || s.Address == "" {
			t.Errorf("raft server %+v: want a named voter with ID and address", s)
		}
	}
	if len(conf.Servers) != 3 || leaders != 1 {
		t.Errorf("RaftGetConfiguration: %d servers, %d leaders; want 3 and 1", len(conf.Servers), leaders)
	}
	// Each server's last index, from the leader's autopilot view, so that
	// consul operator raft list-peers shows Commit Index.
	testutil.WaitFor(t, 10*time.Second, func() error {
		conf, err := client.Operator().RaftGetConfiguration(nil)
		if err != nil {
			return err
		}
		for _, s := range conf.Servers {
			if s.LastIndex == 0 {
				return fmt.Errorf("raft server %s: LastIndex 0, want the leader's view of its log", s.Node)
			}
		}
		return nil
	})
	staleConf, err := client.Operator().RaftGetConfiguration(&consul.QueryOptions{AllowStale: true})
	if err != nil || len(staleConf.Servers) != 3 {
		t.Errorf("RaftGetConfiguration(stale) = %v, %v", staleConf, err)
	}

	// Errors come back as Consul's client reports them.
	err = client.Operator().RaftRemovePeerByID("no-such-id", nil)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "was not found") {
		t.Errorf("RaftRemovePeerByID(unknown) = %v, want a 400 that says it was not found", err)
	}
	if err := client.Agent().ForceLeave("no-such-node"); err == nil {
		t.Errorf("ForceLeave(unknown) = nil, want an error")
	}

	// A fourth server joins through the Consul client's Join.
	s4 := NewNode(t, "cc4", 3)
	s4.Start()
	testutil.WaitFor(t, 10*time.Second, func() error { return client.Agent().Join(s4.SerfAddr(), false) })
	WaitForCluster(t, 20*time.Second, append(nodes, s4)...)

	// And leaves through the Consul client's Leave.
	c4, err := consul.NewClient(&consul.Config{Address: s4.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c4.Agent().Leave(); err != nil {
		t.Fatalf("Agent().Leave() on cc4: %v", err)
	}
	if err := s4.WaitExit(15 * time.Second); err != nil {
		t.Fatalf("cc4 after Leave: %v", err)
	}
	WaitForCluster(t, 20*time.Second, nodes...)
}
