package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/conclavehq/conclave/test/testutil"
)

// TestConsulClientOperator drives the operator endpoints Consul's CLI
// uses (autopilot configuration and state, leadership transfer,
// remove-peer by address) and the refusals of what Conclave cannot do,
// with Consul's official Go client.
func TestConsulClientOperator(t *testing.T) {
	nodes := startServers(t, "co", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)
	_, followers := leaderAndFollowers(t, nodes)
	client, err := consul.NewClient(&consul.Config{Address: followers[0].HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	op := client.Operator()

	t.Run("autopilot configuration", func(t *testing.T) {
		conf, err := op.AutopilotGetConfiguration(nil)
		if err != nil {
			t.Fatalf("AutopilotGetConfiguration: %v", err)
		}
		// The defaults Conclave runs with, before any is stored.
		if conf.CleanupDeadServers || conf.LastContactThreshold.String() != "1s" || conf.MaxTrailingLogs != 250 ||
			conf.ServerStabilizationTime.String() != "10s" || conf.ModifyIndex != 0 {
			t.Errorf("AutopilotGetConfiguration() = %+v, want Conclave's defaults", conf)
		}
		conf.MaxTrailingLogs = 400
		conf.LastContactThreshold = consul.NewReadableDuration(3 * time.Second)
		if err := op.AutopilotSetConfiguration(conf, nil); err != nil {
			t.Fatalf("AutopilotSetConfiguration: %v", err)
		}
		got, err := op.AutopilotGetConfiguration(nil)
		if err != nil || got.MaxTrailingLogs != 400 || got.LastContactThreshold.String() != "3s" || got.ModifyIndex == 0 {
			t.Fatalf("AutopilotGetConfiguration() after set = %+v, %v; want 400, 3s and an index", got, err)
		}
		got.MinQuorum = 3
		stale := *got
		stale.ModifyIndex--
		if ok, err := op.AutopilotCASConfiguration(&stale, nil); err != nil || ok {
			t.Errorf("AutopilotCASConfiguration(stale index) = %v, %v; want false", ok, err)
		}
		if ok, err := op.AutopilotCASConfiguration(got, nil); err != nil || !ok {
			t.Errorf("AutopilotCASConfiguration(current index) = %v, %v; want true", ok, err)
		}
		// Replicated: a stale read of another server sees it.
		other, err := consul.NewClient(&consul.Config{Address: followers[1].HTTPAddr()})
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 5*time.Second, func() error {
			c, err := other.Operator().AutopilotGetConfiguration(&consul.QueryOptions{AllowStale: true})
			if err != nil || c.MinQuorum != 3 {
				return fmt.Errorf("stale AutopilotGetConfiguration on %s = %+v, %v; want MinQuorum 3", followers[1].Name, c, err)
			}
			return nil
		})
		// Enterprise settings are refused, not ignored.
		got.RedundancyZoneTag = "zone"
		if err := op.AutopilotSetConfiguration(got, nil); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("AutopilotSetConfiguration(RedundancyZoneTag) = %v, want a 400", err)
		}
	})

	t.Run("autopilot state", func(t *testing.T) {
		testutil.WaitFor(t, 10*time.Second, func() error {
			st, err := op.AutopilotState(nil)
			if err != nil {
				return err
			}
			if !st.Healthy || len(st.Servers) != 3 || len(st.Voters) != 3 || st.Leader == "" || st.FailureTolerance != 1 {
				return fmt.Errorf("AutopilotState() = %+v, want 3 healthy voters, a leader, tolerance 1", st)
			}
			ld := st.Servers[st.Leader]
			if ld.Status != consul.AutopilotServerLeader || ld.LastIndex == 0 || ld.NodeStatus != "alive" {
				return fmt.Errorf("AutopilotState() leader %+v, want status leader, an index, alive", ld)
			}
			return nil
		})
	})

	t.Run("transfer leader, seen in the old leader's monitor", func(t *testing.T) {
		before := LeaderNode(nodes...)
		lc, err := consul.NewClient(&consul.Config{Address: before.HTTPAddr()})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		defer close(stop)
		logs, err := lc.Agent().Monitor("debug", stop, nil)
		if err != nil {
			t.Fatalf("Agent().Monitor: %v", err)
		}
		res, err := op.RaftLeaderTransfer("", nil)
		if err != nil || !res.Success {
			t.Fatalf("RaftLeaderTransfer() = %+v, %v; want Success", res, err)
		}
		deadline := time.After(10 * time.Second)
		for seen := false; !seen; {
			select {
			case line := <-logs:
				seen = strings.Contains(line, "leadership transferred")
			case <-deadline:
				t.Fatal("the old leader's monitor showed no \"leadership transferred\" within 10s")
			}
		}
		testutil.WaitFor(t, 10*time.Second, func() error {
			if l := LeaderNode(nodes...); l == nil || l == before {
				return fmt.Errorf("leader is still %v, want another than %s", l, before.Name)
			}
			return nil
		})
		// To a named server.
		conf, err := op.RaftGetConfiguration(nil)
		if err != nil {
			t.Fatal(err)
		}
		var target *consul.RaftServer
		for _, s := range conf.Servers {
			if !s.Leader {
				target = s
				break
			}
		}
		if res, err := op.RaftLeaderTransfer(target.ID, nil); err != nil || !res.Success {
			t.Fatalf("RaftLeaderTransfer(%s) = %+v, %v; want Success", target.Node, res, err)
		}
		testutil.WaitFor(t, 10*time.Second, func() error {
			if l := LeaderNode(nodes...); l == nil || l.Name != target.Node {
				return fmt.Errorf("leader is %v, want %s", l, target.Node)
			}
			return nil
		})
		// Every server knows the new leader before the next requests.
		WaitForCluster(t, 20*time.Second, nodes...)
		if _, err := op.RaftLeaderTransfer("no-such-id", nil); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("RaftLeaderTransfer(unknown) = %v, want a 400", err)
		}
	})

	t.Run("remove peer by address", func(t *testing.T) {
		err := op.RaftRemovePeerByAddress("127.0.0.1:1", nil)
		if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "was not found") {
			t.Errorf("RaftRemovePeerByAddress(unknown) = %v, want a 400 that says it was not found", err)
		}
	})

	t.Run("what cannot be honoured is refused", func(t *testing.T) {
		_, _, err := client.KV().Get("k", &consul.QueryOptions{Datacenter: "dc-other"})
		if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "No path to datacenter") {
			t.Errorf("KV().Get(?dc=dc-other) = %v, want 500 No path to datacenter", err)
		}
		if _, _, err := client.KV().Get("k", &consul.QueryOptions{Datacenter: "dc1"}); err != nil {
			t.Errorf("KV().Get(?dc=dc1) = %v, want it served", err)
		}
		if _, err := client.Agent().Members(true); err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("Agent().Members(wan) = %v, want a 400 that says not supported", err)
		}
		if err := client.Agent().Join("127.0.0.1:1", true); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("Agent().Join(wan) = %v, want a 400", err)
		}
		if err := client.Agent().ForceLeavePrune("no-such-node"); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("Agent().ForceLeavePrune = %v, want a 400", err)
		}
	})
}
