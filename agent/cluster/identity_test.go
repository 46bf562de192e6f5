package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

func TestAdmit(t *testing.T) {
	leader := Identity{NodeID: "a1", ClusterID: "cluster-a", Datacenter: "dc1", HasState: true}
	probe := func(id, clusterID, dc string, state bool) *Identity {
		return &Identity{NodeID: id, ClusterID: clusterID, Datacenter: dc, HasState: state}
	}
	cases := []struct {
		name   string
		c      candidate
		leader Identity
		ok     bool
		want   []string // substrings of the reason
	}{
		{"a fresh server", candidate{name: "n", id: "n-id", datacenter: "dc1", probe: probe("n-id", "", "dc1", false)}, leader, true, nil},
		{"a server of this cluster (added again after a removal)", candidate{name: "a2", id: "a2-id", datacenter: "dc1", tag: "cluster-a", probe: probe("a2-id", "cluster-a", "dc1", true)}, leader, true, nil},
		{"a fresh server that already took this cluster's ID", candidate{name: "n", id: "n-id", datacenter: "dc1", tag: "cluster-a", probe: probe("n-id", "cluster-a", "dc1", true)}, leader, true, nil},
		{"a known server at a new address, not probed", candidate{name: "a3", id: "a3-id", datacenter: "dc1", known: true}, leader, true, nil},
		{"a known server with Raft state and no cluster ID yet", candidate{name: "a3", id: "a3-id", datacenter: "dc1", known: true, probe: probe("a3-id", "", "dc1", true)}, leader, true, nil},

		{"leader without a cluster ID", candidate{name: "n", id: "n-id", datacenter: "dc1", probe: probe("n-id", "", "dc1", false)}, Identity{NodeID: "a1", Datacenter: "dc1"}, false, []string{"not written its cluster ID"}},
		{"leader without a cluster ID, a known server at a new address", candidate{name: "a3", id: "a3-id", datacenter: "dc1", tag: "cluster-a", known: true}, Identity{NodeID: "a1", Datacenter: "dc1"}, true, nil},
		{"another cluster by its tag", candidate{name: "b1", id: "b1-id", datacenter: "dc1", tag: "cluster-b", probe: probe("b1-id", "", "dc1", false)}, leader, false,
			[]string{"node b1 is in cluster cluster-b (dc1)", "this cluster is cluster-a (dc1)"}},
		{"another cluster by its tag, though known", candidate{name: "b1", id: "b1-id", datacenter: "dc1", tag: "cluster-b", known: true}, leader, false, []string{"cluster-b", "cluster-a"}},
		{"another cluster by its answer", candidate{name: "b1", id: "b1-id", datacenter: "dc1", probe: probe("b1-id", "cluster-b", "dc1", true)}, leader, false,
			[]string{"node b1 answers that it is in cluster cluster-b (dc1)", "this cluster is cluster-a (dc1)"}},
		{"Raft state but no cluster ID", candidate{name: "old", id: "old-id", datacenter: "dc1", probe: probe("old-id", "", "dc1", true)}, leader, false,
			[]string{"node old has Raft state but no cluster ID", "cluster-a"}},
		{"another datacenter by its tag", candidate{name: "x", id: "x-id", datacenter: "dc2", probe: probe("x-id", "", "dc2", false)}, leader, false, []string{"datacenter dc2", "(dc1)"}},
		{"another datacenter by its answer", candidate{name: "x", id: "x-id", datacenter: "dc1", probe: probe("x-id", "", "dc2", false)}, leader, false, []string{"datacenter dc2", "(dc1)"}},
		{"another node answers at its address", candidate{name: "n", id: "n-id", datacenter: "dc1", probe: probe("m-id", "", "dc1", false)}, leader, false, []string{"n-id", "m-id"}},
		{"not probed", candidate{name: "n", id: "n-id", datacenter: "dc1"}, leader, false, []string{"has not said who it is"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := admit(tc.c, tc.leader)
			if ok != tc.ok {
				t.Fatalf("admit = %v, %q; want %v", ok, reason, tc.ok)
			}
			if ok && reason != "" {
				t.Errorf("admit = true with reason %q, want none", reason)
			}
			for _, w := range tc.want {
				if !strings.Contains(reason, w) {
					t.Errorf("admit reason %q does not contain %q", reason, w)
				}
			}
		})
	}
}

func TestRefusalsAreLoggedOncePerReason(t *testing.T) {
	var r refusals
	for i, tc := range []struct {
		id, reason string
		want       bool
	}{
		{"b1", "cluster", true}, {"b1", "cluster", false}, {"b1", "probe", true}, {"b2", "cluster", true}, {"b1", "probe", false},
	} {
		if got := r.first(tc.id, tc.reason); got != tc.want {
			t.Errorf("%d: first(%s, %s) = %v, want %v", i, tc.id, tc.reason, got, tc.want)
		}
	}
	r.forget("b1")
	if !r.first("b1", "cluster") {
		t.Errorf("first(b1, cluster) after forget = false, want true")
	}
}

// fakeProbe answers identity probes from a table, by server port address.
type fakeProbe struct {
	mu      sync.Mutex
	answers map[string]Identity
	calls   map[string]int
}

func (f *fakeProbe) probe(_ context.Context, addr string) (Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[addr]++
	id, ok := f.answers[addr]
	if !ok {
		return Identity{}, errors.New("connection refused")
	}
	return id, nil
}

// TestReconcilerRefusesAnotherCluster: on an in-memory Raft, the leader
// of cluster-a adds a fresh server, and never adds a server of cluster-b
// (by its tag, or by its answer alone), one with Raft state but no cluster
// ID, or one that does not answer; pass after pass.
func TestReconcilerRefusesAnotherCluster(t *testing.T) {
	c := newMemCluster(t)
	l := leaderOf(t, c)
	for i, id := range []string{"fresh", "btag", "bprobe", "stateful", "silent"} {
		c.start(id, "127.0.0.1:"+string(rune('1'+i))+"002")
	}
	addr := func(i int) string { return "127.0.0.1:" + string(rune('1'+i)) + "002" }
	probes := &fakeProbe{calls: map[string]int{}, answers: map[string]Identity{
		addr(0): {NodeID: "fresh", Datacenter: "dc1"},
		addr(1): {NodeID: "btag", Datacenter: "dc1", ClusterID: "cluster-b", HasState: true},
		addr(2): {NodeID: "bprobe", Datacenter: "dc1", ClusterID: "cluster-b", HasState: true},
		addr(3): {NodeID: "stateful", Datacenter: "dc1", HasState: true},
	}}
	self := func() Identity {
		return Identity{NodeID: "s1", ClusterID: "cluster-a", Datacenter: "dc1", HasState: true}
	}
	pool := &fakeMembers{}
	r := NewReconciler(testutil.Logger(t), l, pool, "s1", "dc1", WithIdentity(self, probes.probe))
	btag := member("btag", "btag", addr(1), gossip.StatusAlive)
	btag.Tags[gossip.TagClusterID] = "cluster-b"
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive),
		member("fresh", "fresh", addr(0), gossip.StatusAlive), btag,
		member("bprobe", "bprobe", addr(2), gossip.StatusAlive),
		member("stateful", "stateful", addr(3), gossip.StatusAlive),
		member("silent", "silent", addr(4), gossip.StatusAlive))
	want := "fresh@" + addr(0) + ":true s1@127.0.0.1:9001:true"
	for i := 0; i < 3; i++ {
		if err := r.Pass(context.Background()); err != nil {
			t.Fatalf("Pass %d: %v", i, err)
		}
		if got := configString(t, l); got != want {
			t.Fatalf("configuration after Pass %d = %q, want %q", i, got, want)
		}
	}
	if n := probes.calls[addr(0)]; n != 1 {
		t.Errorf("the fresh server was probed %d times, want once (then it is a voter)", n)
	}
}
