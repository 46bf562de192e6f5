package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

func TestMain(m *testing.M) {
	if os.Getenv(lockChildEnv) != "" {
		// Run by "conclave lock" as a contender's critical section.
		os.Exit(lockChild())
	}
	dir, err := os.MkdirTemp("", "conclave-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	Binary, err = Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startServers prepares n servers named prefix1..prefixN with
// bootstrap_expect = expect, each joining all the others, in a temp dir of
// the test's. It does not start them.
func startServers(t *testing.T, prefix string, n, expect int) []*Node {
	t.Helper()
	return NewServersIn(t, t.TempDir(), prefix, n, expect)
}

// bootstrappers returns the names of the nodes that report they
// bootstrapped the cluster themselves.
func bootstrappers(t *testing.T, nodes ...*Node) []string {
	t.Helper()
	var out []string
	for _, n := range nodes {
		st, err := n.Bootstrap()
		if err != nil {
			t.Fatalf("%s bootstrap status: %v", n.Name, err)
		}
		if st.State == api.BootstrapBootstrapped && st.By == n.Name {
			out = append(out, n.Name)
		}
	}
	return out
}

var peerRow = regexp.MustCompile(`^(\S+)\s+([0-9a-f-]{36})\s+(127\.\d+\.\d+\.\d+:\d+)\s+(leader|follower)\s+(true|false)\s+(\d+|-)\s+(\d+ commits|-)\s*$`)

// listPeers runs `conclave operator raft list-peers` and returns the rows
// by node name as "state voter".
func listPeers(t *testing.T, n *Node) map[string]string {
	t.Helper()
	out, errOut, code := n.CLI("operator", "raft", "list-peers")
	if code != 0 {
		t.Fatalf("list-peers exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "Node") || !strings.Contains(lines[0], "Voter") {
		t.Fatalf("list-peers header = %q", lines[0])
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		m := peerRow.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("list-peers row %q does not parse", l)
		}
		rows[m[1]] = m[4] + " " + m[5]
	}
	return rows
}

func TestClusterLifecycle(t *testing.T) {
	nodes := startServers(t, "s", 3, 3)
	// Start in reverse name order: the lowest-named server comes up last.
	for i := len(nodes) - 1; i >= 0; i-- {
		nodes[i].Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)
	if got := bootstrappers(t, nodes...); len(got) != 1 || got[0] != "s1" {
		t.Fatalf("servers that bootstrapped = %v, want [s1]", got)
	}
	rows := listPeers(t, nodes[1])
	leaders := 0
	for name, r := range rows {
		if !strings.HasSuffix(r, " true") {
			t.Errorf("list-peers: %s is %q, want a voter", name, r)
		}
		if strings.HasPrefix(r, "leader") {
			leaders++
		}
	}
	if len(rows) != 3 || leaders != 1 {
		t.Fatalf("list-peers = %v, want 3 voters with one leader", rows)
	}
	out, _, code := nodes[0].CLI("members")
	if code != 0 || strings.Count(out, "alive") != 3 {
		t.Fatalf("members exit %d:\n%s\nwant 3 alive members", code, out)
	}

	t.Run("late servers with bootstrap_expect join the existing cluster", func(t *testing.T) {
		s4, s5 := NewNode(t, "s4", 3), NewNode(t, "s5", 3)
		s4.Join = []string{nodes[2].SerfAddr()}
		s5.Join = []string{nodes[0].SerfAddr()}
		s4.Start()
		s5.Start()
		all := append(append([]*Node(nil), nodes...), s4, s5)
		WaitForCluster(t, 20*time.Second, all...)
		for _, n := range []*Node{s4, s5} {
			// The status follows Raft state within a bootstrap re-check.
			testutil.WaitFor(t, 5*time.Second, func() error {
				st, err := n.Bootstrap()
				if err != nil || st.State != api.BootstrapJoined {
					return fmt.Errorf("%s bootstrap status = %+v (%v), want joined", n.Name, st, err)
				}
				return nil
			})
		}
		if got := bootstrappers(t, all...); len(got) != 1 {
			t.Errorf("servers that bootstrapped = %v, want exactly one", got)
		}

		// `conclave leave` on s5 leaves four voters, and s5 exits.
		out, errOut, code := s5.CLI("leave")
		if code != 0 || !strings.Contains(out, "Graceful leave complete") {
			t.Fatalf("leave exit %d: %s %s", code, out, errOut)
		}
		if err := s5.WaitExit(15 * time.Second); err != nil {
			t.Fatalf("s5 after leave: %v", err)
		}
		WaitForCluster(t, 20*time.Second, all[:4]...)
		s4.Stop()
		// s4 stopped without leaving (the server default): it stays a
		// voter. Once gossip marks it failed, remove it as an operator
		// would, through a follower. (Removing a server that is still
		// alive in gossip is undone by the reconciler, as in Consul.)
		// Every server must see it failed: one that still sees it alive
		// and becomes leader would add it back.
		testutil.WaitFor(t, 20*time.Second, func() error {
			for _, n := range nodes {
				var members []api.Member
				if err := n.Get("/v1/agent/members", &members); err != nil {
					return err
				}
				for _, m := range members {
					if m.Name == "s4" && m.Status != api.MemberStatusFailed {
						return fmt.Errorf("%s sees s4 %s", n.Name, api.MemberStatusString(m.Status))
					}
				}
			}
			return nil
		})
		c, _ := nodes[0].Configuration()
		var id string
		for _, s := range c.Servers {
			if s.Node == "s4" {
				id = s.ID
			}
		}
		if _, errOut, code := nodes[1].CLI("operator", "raft", "remove-peer", "-id="+id); code != 0 {
			t.Fatalf("remove-peer exit %d: %s", code, errOut)
		}
		WaitForCluster(t, 20*time.Second, nodes...)
	})

	t.Run("follower killed and restarted rejoins without bootstrapping", func(t *testing.T) {
		leader := LeaderNode(nodes...)
		if leader == nil {
			t.Fatal("no leader")
		}
		var f *Node
		for _, n := range nodes {
			if n != leader {
				f = n
				break
			}
		}
		idBefore := nodeID(t, f)
		f.Kill()
		f.Start()
		WaitForCluster(t, 20*time.Second, nodes...)
		st, err := f.Bootstrap()
		if err != nil || st.State != api.BootstrapExistingState {
			t.Errorf("%s after restart: bootstrap status %+v (%v), want existing-state", f.Name, st, err)
		}
		if id := nodeID(t, f); id != idBefore {
			t.Errorf("%s node ID after restart = %s, want %s", f.Name, id, idBefore)
		}
		if strings.Contains(f.Logs(), "bootstrapped cluster") {
			t.Errorf("%s bootstrapped again after restart", f.Name)
		}
	})

	t.Run("leader killed: survivors elect a new one", func(t *testing.T) {
		leader := LeaderNode(nodes...)
		if leader == nil {
			t.Fatal("no leader")
		}
		leader.Kill()
		var survivors []*Node
		for _, n := range nodes {
			if n != leader {
				survivors = append(survivors, n)
			}
		}
		testutil.WaitFor(t, 15*time.Second, func() error {
			nl := LeaderNode(survivors...)
			if nl == nil {
				return fmt.Errorf("no new leader among survivors")
			}
			for _, s := range survivors {
				if s.Leader() != nl.Leader() {
					return fmt.Errorf("%s sees leader %q", s.Name, s.Leader())
				}
			}
			return nil
		})
		leader.Start()
		WaitForCluster(t, 20*time.Second, nodes...)
	})
}

func nodeID(t *testing.T, n *Node) string {
	t.Helper()
	b, err := os.ReadFile(n.Dir + "/node-id")
	if err != nil {
		t.Fatalf("read node-id: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestShuffledStartFormsExactlyOneCluster starts five servers with
// bootstrap_expect = 3 in a random order with random delays, twenty times,
// and checks each time that exactly one cluster of five voters forms.
func TestShuffledStartFormsExactlyOneCluster(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	deadline := time.Now().Add(8 * time.Minute)
	for round := 1; round <= rounds; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d rounds fit in the time budget", round-1, rounds)
		}
		ok := t.Run(fmt.Sprintf("round%02d", round), func(t *testing.T) {
			nodes := startServers(t, "n", 5, 3)
			order := rand.Perm(len(nodes))
			var wg sync.WaitGroup
			for _, i := range order {
				delay := time.Duration(rand.IntN(400)) * time.Millisecond
				wg.Add(1)
				go func(n *Node) {
					defer wg.Done()
					time.Sleep(delay) // the random start delay under test, not a wait for a condition
					n.Start()
				}(nodes[i])
			}
			wg.Wait()
			WaitForCluster(t, 30*time.Second, nodes...)
			if got := bootstrappers(t, nodes...); len(got) != 1 {
				t.Fatalf("servers that bootstrapped = %v, want exactly one", got)
			}
			for _, n := range nodes {
				n.Kill()
			}
		})
		if !ok {
			return
		}
	}
}
