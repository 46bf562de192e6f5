package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

// TestServerComesBackOnANewIP: a follower restarted with its data_dir but a
// new address keeps its node ID; the leader updates its address in place
// and it is a voter again, without any bootstrap.
func TestServerComesBackOnANewIP(t *testing.T) {
	nodes := startServers(t, "ip", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)
	leader := LeaderNode(nodes...)
	var f *Node
	for _, n := range nodes {
		if n != leader {
			f = n
			break
		}
	}
	id, oldAddr := nodeID(t, f), f.RaftAddr()
	f.Kill()
	f.IP = testutil.IP(t)
	f.Start()
	WaitForCluster(t, 30*time.Second, nodes...)
	c, err := leader.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Servers {
		if s.Node == f.Name && (s.ID != id || s.Address != f.RaftAddr()) {
			t.Errorf("%s in the configuration = %s at %s, want %s at %s (was %s)", f.Name, s.ID, s.Address, id, f.RaftAddr(), oldAddr)
		}
	}
	if got := bootstrappers(t, nodes...); len(got) != 1 || got[0] == f.Name {
		t.Errorf("servers reporting they bootstrapped = %v, want the original one only", got)
	}
}

// TestWipedServersNeverBootstrapOverASurvivor is hashicorp/raft#122: after
// a full outage two servers come back with empty data_dirs and one with
// its Raft state. The two new ones must not bootstrap a new cluster (which
// would make the survivor's data history); the survivor's state wins.
func TestWipedServersNeverBootstrapOverASurvivor(t *testing.T) {
	nodes := startServers(t, "w", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)
	survivor := nodes[2] // not the original bootstrapper
	before := lastIndex(t, survivor)
	for _, n := range nodes {
		n.Kill()
	}
	for _, n := range nodes[:2] {
		entries, _ := os.ReadDir(n.Dir)
		for _, e := range entries {
			os.RemoveAll(n.Dir + "/" + e.Name())
		}
	}
	for _, n := range nodes {
		n.Start()
	}
	// The survivor's tags say it has Raft state, so nobody may bootstrap;
	// the wiped servers wait to be added by a leader of the old cluster.
	WaitForCluster(t, 30*time.Second, nodes...)
	for _, n := range nodes {
		if strings.Contains(n.Logs(), "bootstrapped cluster") {
			t.Errorf("%s bootstrapped a new cluster over the survivor", n.Name)
		}
	}
	st, err := survivor.Bootstrap()
	if err != nil || st.State != api.BootstrapExistingState {
		t.Errorf("survivor bootstrap status = %+v (%v), want existing-state", st, err)
	}
	for _, n := range nodes[:2] {
		// The status follows Raft state within a bootstrap re-check.
		testutil.WaitFor(t, 5*time.Second, func() error {
			st, err := n.Bootstrap()
			if err != nil || st.State != api.BootstrapJoined {
				return fmt.Errorf("%s (wiped) bootstrap status = %+v (%v), want joined", n.Name, st, err)
			}
			return nil
		})
	}
	if after := lastIndex(t, survivor); after <= before {
		t.Errorf("survivor's last log index went from %d to %d; its log should have carried on", before, after)
	}
}

func lastIndex(t *testing.T, n *Node) uint64 {
	t.Helper()
	var self api.Self
	if err := n.Get("/v1/agent/self", &self); err != nil {
		t.Fatalf("%s self: %v", n.Name, err)
	}
	i, err := strconv.ParseUint(self.Stats["raft"]["last_log_index"], 10, 64)
	if err != nil {
		t.Fatalf("%s last_log_index %q: %v", n.Name, self.Stats["raft"]["last_log_index"], err)
	}
	return i
}

// TestStoppedServerIsFailedAtOnceAndReturnsOnANewIP: a server stopped
// without leaving (SIGTERM, as a rolling update stops it) tells the pool at
// once that it is gone. The others show it failed (not left: it stays a
// voter) before failure detection could have noticed, and it comes back on
// a new address as soon as it restarts, without waiting for its old
// address to be declared dead.
func TestStoppedServerIsFailedAtOnceAndReturnsOnANewIP(t *testing.T) {
	nodes := startServers(t, "gone", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)
	leader := LeaderNode(nodes...)
	var f *Node
	for _, n := range nodes {
		if n != leader {
			f = n
			break
		}
	}
	id := nodeID(t, f)
	f.Terminate()
	if err := f.WaitExit(20 * time.Second); err != nil {
		t.Fatalf("%s did not exit after SIGTERM: %v", f.Name, err)
	}
	// memberlist's failure detection needs well over a second (probe,
	// indirect probes, then the suspicion timeout), so a member seen failed
	// within this window was told.
	testutil.WaitFor(t, 1500*time.Millisecond, func() error {
		var members []api.Member
		if err := leader.Get("/v1/agent/members", &members); err != nil {
			return err
		}
		for _, m := range members {
			if m.Name == f.Name {
				if m.Status != api.MemberStatusFailed {
					return fmt.Errorf("%s has status %d, want 4 (failed)", f.Name, m.Status)
				}
				return nil
			}
		}
		return fmt.Errorf("%s is not a member any more", f.Name)
	})
	c, err := leader.Configuration()
	if err != nil || len(c.Servers) != 3 {
		t.Fatalf("configuration after the stop = %+v, %v; want all 3 servers still in it", c, err)
	}

	f.IP = testutil.IP(t)
	f.Start()
	start := time.Now()
	testutil.WaitFor(t, 15*time.Second, func() error {
		c, err := leader.Configuration()
		if err != nil {
			return err
		}
		for _, s := range c.Servers {
			if s.ID == id && s.Address == f.RaftAddr() {
				return ClusterFormed(nodes...)
			}
		}
		return fmt.Errorf("%s (%s) not at its new address %s yet: %+v", f.Name, id, f.RaftAddr(), c.Servers)
	})
	t.Logf("%s back at its new address %s after %s", f.Name, f.RaftAddr(), time.Since(start).Round(time.Millisecond))
}
