package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

// The two-cluster join of issue 10: two 3-server clusters, A and B, each
// with its own keys, on one network. One `conclave join` or one wrong
// retry_join entry used to merge them into one cluster that had lost most
// of both stores. Now each refuses the other, loudly, and both stay intact.

// twoClusters is a formed cluster A (a1..a3) and a formed cluster B
// (b1..b3), each with its cluster ID and its acknowledged keys.
type twoClusters struct {
	a, b     []*Node
	idA, idB string
	keysA    map[string]string
	keysB    map[string]string
	kv       *KVClient
}

// keysPerCluster is how many keys each cluster acknowledges before the
// other is thrown at it.
const keysPerCluster = 30

func formTwoClusters(t *testing.T) *twoClusters {
	t.Helper()
	tc := &twoClusters{a: startServers(t, "a", 3, 3), b: startServers(t, "b", 3, 3), kv: NewKVClient(10*time.Second, 4)}
	t.Cleanup(tc.kv.Close)
	for _, n := range append(append([]*Node(nil), tc.a...), tc.b...) {
		n.Start()
	}
	WaitForCluster(t, 30*time.Second, tc.a...)
	WaitForCluster(t, 30*time.Second, tc.b...)
	tc.idA, tc.idB = waitClusterID(t, tc.a...), waitClusterID(t, tc.b...)
	if tc.idA == tc.idB {
		t.Fatalf("clusters A and B have the same cluster ID %s", tc.idA)
	}
	tc.keysA, tc.keysB = writeClusterKeys(t, tc.kv, "a", tc.a), writeClusterKeys(t, tc.kv, "b", tc.b)
	return tc
}

// waitClusterID waits until every node reports the same, non-empty
// cluster ID in /v1/agent/self and returns it.
func waitClusterID(t *testing.T, nodes ...*Node) string {
	t.Helper()
	var id string
	testutil.WaitFor(t, 15*time.Second, func() error {
		id = ""
		for _, n := range nodes {
			var self api.Self
			if err := n.Get("/v1/agent/self", &self); err != nil {
				return err
			}
			switch {
			case self.Config.ClusterID == "":
				return fmt.Errorf("%s reports no cluster ID yet", n.Name)
			case id != "" && self.Config.ClusterID != id:
				return fmt.Errorf("%s reports cluster ID %s, others %s", n.Name, self.Config.ClusterID, id)
			}
			id = self.Config.ClusterID
		}
		return nil
	})
	return id
}

// writeClusterKeys writes keysPerCluster keys under prefix/ through the
// cluster's nodes in turn (followers forward) and returns what was
// acknowledged.
func writeClusterKeys(t *testing.T, c *KVClient, prefix string, nodes []*Node) map[string]string {
	t.Helper()
	keys := make(map[string]string, keysPerCluster)
	for i := 0; i < keysPerCluster; i++ {
		k, v := fmt.Sprintf("%s/key-%02d", prefix, i), fmt.Sprintf("%s-value-%d", prefix, i)
		mustPut(t, c, nodes[i%len(nodes)], k, []byte(v), "", true)
		keys[k] = v
	}
	return keys
}

// observe watches both clusters for window, a bounded observation window:
// neither configuration may ever hold a server of the other cluster. At
// its end each cluster must have exactly its own three voters and one
// leader, every node its own cluster's ID, and every acknowledged key of
// a cluster must read back ?consistent from each of its servers and from
// none of the other's.
func (tc *twoClusters) observe(t *testing.T, window time.Duration) {
	t.Helper()
	deadline := time.Now().Add(window)
	for time.Now().Before(deadline) {
		for _, side := range []struct {
			nodes []*Node
			other string
		}{{tc.a, "b"}, {tc.b, "a"}} {
			for _, n := range side.nodes {
				c, err := n.Configuration()
				if err != nil {
					continue // a transient answer; the end state is checked below
				}
				var names []string
				for _, s := range c.Servers {
					names = append(names, s.Node)
				}
				for _, name := range names {
					if strings.HasPrefix(name, side.other) {
						t.Fatalf("%s's configuration holds %s of the other cluster: %v", n.Name, name, names)
					}
				}
			}
		}
		time.Sleep(250 * time.Millisecond) // polling pace inside the bounded window, not a wait for a condition
	}
	for _, side := range []struct {
		name     string
		nodes    []*Node
		id       string
		own, not map[string]string
	}{{"A", tc.a, tc.idA, tc.keysA, tc.keysB}, {"B", tc.b, tc.idB, tc.keysB, tc.keysA}} {
		if err := ClusterFormed(side.nodes...); err != nil {
			t.Errorf("cluster %s after %s: %v", side.name, window, err)
		}
		if got := waitClusterID(t, side.nodes...); got != side.id {
			t.Errorf("cluster %s reports cluster ID %s, want %s", side.name, got, side.id)
		}
		for _, n := range side.nodes {
			for k, v := range side.own {
				p, _ := mustGet(t, tc.kv, n, k, "consistent")
				if string(p.Value) != v {
					t.Errorf("GET %s?consistent via %s = %q, want %q", k, n.Name, p.Value, v)
				}
			}
			for k := range side.not {
				p, _, err := tc.kv.Get(n, k, "consistent")
				if err != nil || p != nil {
					t.Errorf("GET %s?consistent via %s of cluster %s = %v, %v; want 404 (a key of the other cluster)", k, n.Name, side.name, p, err)
				}
			}
		}
	}
}

// TestJoinOfAnotherClusterIsRefused: `conclave join` from a server of A to
// a server of B fails with an error that names both clusters, and both
// stay as they were.
func TestJoinOfAnotherClusterIsRefused(t *testing.T) {
	tc := formTwoClusters(t)
	stdout, stderr, code := tc.a[0].CLI("join", tc.b[0].SerfAddr())
	if code != 1 {
		t.Errorf("conclave join of another cluster exited %d, want 1; stdout %q", code, stdout)
	}
	for _, want := range []string{"refusing to merge with node b", tc.idA, tc.idB, "two clusters must not be joined"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("conclave join stderr %q does not contain %q", stderr, want)
		}
	}
	tc.observe(t, 10*time.Second)
}

// TestRetryJoinIntoAnotherClusterIsRefused: a server of B restarted with a
// retry_join that points at A's servers (a typo in the list) stays in B:
// A's leader never adds it, B keeps its configuration, and neither store
// changes.
func TestRetryJoinIntoAnotherClusterIsRefused(t *testing.T) {
	tc := formTwoClusters(t)
	b3 := tc.b[2]
	b3.Kill()
	b3.Join = nil
	for _, n := range tc.a {
		b3.Join = append(b3.Join, n.SerfAddr())
	}
	b3.Start()
	// b3 rejoins B from its Serf snapshot, and keeps trying A. Gossip
	// refuses the merge; were it to let b3 in, A's leader must still not
	// add it (the reconciler's check), so either counts as "tried".
	WaitForCluster(t, 30*time.Second, tc.b...)
	testutil.WaitFor(t, 15*time.Second, func() error {
		if strings.Contains(b3.Logs(), "refusing to merge with node a") {
			return nil
		}
		var members []api.Member
		if err := tc.a[0].Get("/v1/agent/members", &members); err != nil {
			return err
		}
		for _, m := range members {
			if m.Name == b3.Name {
				return nil
			}
		}
		return fmt.Errorf("b3 has not tried A yet")
	})
	tc.observe(t, 10*time.Second)
}
