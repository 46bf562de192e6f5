package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

// gateMargin is the agent's maxTrailingLogs: the rollout gate passes only
// when this server is at most that many entries behind the leader.
const gateMargin = 250

// maxWriteGap bounds the longest time between two acknowledged writes
// during a gated rolling restart: one election. At the default
// raft_multiplier of 2 a follower waits a randomized 400-800 ms without
// contact before it campaigns, and a split first round costs another
// 400-800 ms, so an election takes at most about 1.6 s; the rest (1.4 s)
// is slack for a 2-core machine shared with other test runs. Only a
// leader that stops without handing over costs an election; the restart
// of a follower should cost nothing, and a leader's hand-off far less.
const maxWriteGap = 3 * time.Second

// waitVoterGates waits until every node's rollout gate answers 200.
func waitVoterGates(t *testing.T, timeout time.Duration, nodes ...*Node) {
	t.Helper()
	testutil.WaitFor(t, timeout, func() error {
		for _, n := range nodes {
			if code, _, reason := n.VoterGate(); code != 200 {
				return fmt.Errorf("%s ready?voter = %d %s", n.Name, code, reason)
			}
		}
		return nil
	})
}

// waitToleranceZero waits until the gate of every node in nodes is closed
// because down is unhealthy.
func waitToleranceZero(t *testing.T, down *Node, nodes ...*Node) {
	t.Helper()
	want := "failure tolerance 0: server " + down.Name + " is unhealthy"
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, n := range nodes {
			if code, _, reason := n.VoterGate(); code != 503 || reason != want {
				return fmt.Errorf("%s ready?voter = %d %q, want 503 %q", n.Name, code, reason, want)
			}
		}
		return nil
	})
}

func without(nodes []*Node, n *Node) []*Node {
	return slices.DeleteFunc(slices.Clone(nodes), func(o *Node) bool { return o == n })
}

// raftStat returns one of the node's Raft stats (GET /v1/agent/self).
func raftStat(n *Node, key string) (uint64, error) {
	var self api.Self
	if err := n.Get("/v1/agent/self", &self); err != nil {
		return 0, err
	}
	return strconv.ParseUint(self.Stats["raft"][key], 10, 64)
}

// TestHealthReadyAndVoterGate walks one three-server cluster through the
// life the rollout gate is for: a lone server that is alive and ready but
// not a voter; the formed cluster whose gates all open; a stopped follower
// that closes the others' gates; its restart; and a restart far behind the
// leader, during which its gate stays closed until it has applied the log.
func TestHealthReadyAndVoterGate(t *testing.T) {
	nodes := startServers(t, "h", 3, 3)

	// Alone, h1 cannot bootstrap: alive and ready, but not a voter.
	h1 := nodes[0]
	h1.Start()
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, p := range []string{"/v1/agent/health", "/v1/status/ready"} {
			if code, body := h1.Check(p); code != 200 {
				return fmt.Errorf("GET %s = %d %s", p, code, body)
			}
		}
		return nil
	})
	if code, _, reason := h1.VoterGate(); code != 503 || reason != "no leader" {
		t.Errorf("lone h1 ready?voter = %d %q, want 503 no leader", code, reason)
	}
	if out, errOut, code := h1.CLI("health"); code != 0 || out != "Healthy (alive): serving HTTP\n" {
		t.Errorf("conclave health = %d %q %q, want 0 Healthy (alive)", code, out, errOut)
	}
	if out, errOut, code := h1.CLI("health", "-ready"); code != 0 || out != "Healthy (ready): agent started; raft follower\n" {
		t.Errorf("conclave health -ready = %d %q %q, want 0 Healthy (ready)", code, out, errOut)
	}
	if out, errOut, code := h1.CLI("health", "-voter"); code != 1 || out != "" || errOut != "Unhealthy (voter): no leader\n" {
		t.Errorf("conclave health -voter = %d %q %q, want 1 Unhealthy (voter): no leader", code, out, errOut)
	}

	// All three: one cluster, and every gate opens.
	nodes[1].Start()
	nodes[2].Start()
	WaitForCluster(t, 60*time.Second, nodes...)
	waitVoterGates(t, 30*time.Second, nodes...)
	leader := LeaderNode(nodes...)
	if leader == nil {
		t.Fatal("no leader")
	}
	follower := without(nodes, leader)[0]
	others := without(nodes, follower)
	checkConsulAutopilotHealth(t, follower, leader)
	out, errOut, code := follower.CLI("operator", "autopilot", "health")
	if code != 0 || !strings.Contains(out, "Healthy           = true\nFailure tolerance = 1\n") || strings.Count(out, "  true   true ") != 3 {
		t.Errorf("operator autopilot health on %s = %d\n%s%s\nwant three healthy voters, tolerance 1", follower.Name, code, out, errOut)
	}

	// A stopped follower closes the gate of the two that remain.
	follower.Terminate()
	waitToleranceZero(t, follower, others...)
	if out, errOut, code := leader.CLI("health", "-voter"); code != 1 || errOut != "Unhealthy (voter): failure tolerance 0: server "+follower.Name+" is unhealthy\n" {
		t.Errorf("conclave health -voter on %s = %d %q %q", leader.Name, code, out, errOut)
	}

	// Restarted, it opens once it is caught up, and so do the others.
	follower.Start()
	waitVoterGates(t, 60*time.Second, nodes...)

	// Now it misses thousands of writes. Restarted, its gate stays closed
	// while its applied index is behind, whatever the reason it gives.
	follower.Terminate()
	if leader = LeaderNode(others...); leader == nil {
		t.Fatal("no leader among the two that remain")
	}
	writeKeys(t, leader, "lag/", 3000, 16)
	target, err := raftStat(leader, "last_log_index")
	if err != nil {
		t.Fatalf("leader last index: %v", err)
	}
	// The gate compares with the leader's last index as autopilot last
	// saw it; wait until that view includes every write.
	testutil.WaitFor(t, 10*time.Second, func() error {
		var h api.OperatorHealthReply
		code, body := leader.Check("/v1/operator/autopilot/health")
		if err := jsonUnmarshal([]byte(body), &h); code == 0 || err != nil {
			return fmt.Errorf("autopilot health = %d %s", code, body)
		}
		for _, s := range h.Servers {
			if s.Leader && s.LastIndex >= target {
				return nil
			}
		}
		return fmt.Errorf("the leader's autopilot view is not at index %d yet", target)
	})
	follower.Start()
	var (
		reasons      []string
		closedBehind int // 503s answered while the applied index was behind
		opened       api.HealthCheck
	)
	testutil.WaitFor(t, 60*time.Second, func() error {
		before, err := raftStat(follower, "applied_index")
		if err != nil {
			return fmt.Errorf("%s not serving yet: %v", follower.Name, err)
		}
		code, h, reason := follower.VoterGate()
		switch code {
		case 200:
			opened = h
			return nil
		case 503:
		default:
			t.Fatalf("%s ready?voter = %d %q, want 503 or 200", follower.Name, code, reason)
		}
		if len(reasons) == 0 || reasons[len(reasons)-1] != reason {
			reasons = append(reasons, reason)
		}
		if before+gateMargin < target {
			closedBehind++
		}
		return fmt.Errorf("%s ready?voter = %d %s", follower.Name, code, reason)
	})
	t.Logf("%s's gate after missing %d entries: %d closed answers while behind, reasons %q, then open: %+v",
		follower.Name, target, closedBehind, reasons, opened)
	if closedBehind == 0 {
		t.Errorf("no closed gate seen while %s's applied index was behind %d; reasons %q", follower.Name, target, reasons)
	}
	if opened.AppliedIndex+gateMargin < target || opened.LeaderLastIndex < target {
		t.Errorf("gate opened at applied index %d (leader's %d), want within %d of %d", opened.AppliedIndex, opened.LeaderLastIndex, gateMargin, target)
	}
	kv := NewKVClient(10*time.Second, 1)
	defer kv.Close()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if pair, _, err := kv.Get(follower, "lag/002999", "stale"); err != nil || pair == nil || string(pair.Value) != "lag/002999" {
			return fmt.Errorf("%s's own copy of lag/002999 = %+v, %v", follower.Name, pair, err)
		}
		return nil
	})
}

// checkConsulAutopilotHealth reads GET /v1/operator/autopilot/health
// through n with Consul's own client, which must decode it, and checks the
// leader's view of a healthy three-server cluster.
func checkConsulAutopilotHealth(t *testing.T, n, leader *Node) {
	t.Helper()
	client, err := consul.NewClient(&consul.Config{Address: n.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := client.Operator().AutopilotServerHealth(nil)
	if err != nil {
		t.Fatalf("consul Operator().AutopilotServerHealth() through %s: %v", n.Name, err)
	}
	if !h.Healthy || h.FailureTolerance != 1 || len(h.Servers) != 3 {
		t.Fatalf("autopilot health = %+v, want 3 healthy servers and a failure tolerance of 1", h)
	}
	for _, s := range h.Servers {
		if !s.Healthy || !s.Voter || s.SerfStatus != "alive" || s.Leader != (s.Name == leader.Name) ||
			s.LastContact == nil || s.LastContact.Duration() > time.Second || s.LastTerm == 0 || s.LastIndex == 0 ||
			s.StableSince.IsZero() || s.Version == "" || s.ID == "" || s.Address == "" {
			t.Errorf("server %+v (last contact %s), want a healthy voter", s, s.LastContact)
		}
	}
}

// writeKeys writes n keys prefix000000... through node with conc writers
// and fails the test unless every write is acknowledged.
func writeKeys(t *testing.T, node *Node, prefix string, n, conc int) {
	t.Helper()
	kv := NewKVClient(10*time.Second, conc)
	defer kv.Close()
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for w := range conc {
		wg.Go(func() {
			for i := w; i < n; i += conc {
				key := fmt.Sprintf("%s%06d", prefix, i)
				if ok, err := kv.Put(node, key, []byte(key), ""); err != nil || !ok {
					errs <- fmt.Errorf("PUT %s = %v, %v", key, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// ackWriter writes keys one after the other through whichever server
// answers, and records when each write was acknowledged.
type ackWriter struct {
	stopCh chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	keys   []string
	acks   []time.Time
	errors map[string]int
}

// startAckWriter writes until stop, for at most maxDur and maxWrites. A
// failed write is retried on the next server; after a round in which no
// server took it, it waits 20 ms.
func startAckWriter(t *testing.T, nodes []*Node, maxDur time.Duration, maxWrites int) *ackWriter {
	t.Helper()
	w := &ackWriter{stopCh: make(chan struct{}), done: make(chan struct{}), errors: map[string]int{}}
	kv := NewKVClient(3*time.Second, 2)
	deadline := time.Now().Add(maxDur)
	go func() {
		defer close(w.done)
		defer kv.Close()
		cur := 0
		for i := 0; i < maxWrites; i++ {
			key := fmt.Sprintf("roll/%06d", i)
			for attempt := 1; ; attempt++ {
				select {
				case <-w.stopCh:
					return
				default:
				}
				if time.Now().After(deadline) {
					return
				}
				ok, err := kv.Put(nodes[cur%len(nodes)], key, []byte(key), "")
				if err == nil && ok {
					w.mu.Lock()
					w.keys = append(w.keys, key)
					w.acks = append(w.acks, time.Now())
					w.mu.Unlock()
					break
				}
				w.mu.Lock()
				if err != nil {
					w.errors[errClass(err)]++
				} else {
					w.errors["answered false"]++
				}
				w.mu.Unlock()
				cur++
				if attempt%len(nodes) == 0 { // every server refused: back off
					select {
					case <-w.stopCh:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}
	}()
	t.Cleanup(w.stop)
	return w
}

// stop stops the writer and waits for it; it may be called more than once.
func (w *ackWriter) stop() {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
}

func (w *ackWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// longestGap returns the longest time between two acknowledged writes
// whose interval overlaps [from, to], and when it began. Writes not yet
// acknowledged do not count.
func (w *ackWriter) longestGap(from, to time.Time) (gap time.Duration, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 1; i < len(w.acks); i++ {
		a, b := w.acks[i-1], w.acks[i]
		if b.Before(from) || a.After(to) {
			continue
		}
		if d := b.Sub(a); d > gap {
			gap, at = d, a
		}
	}
	return gap, at
}

// TestRollingRestartGatedOnVoter restarts all three servers one at a time,
// as a StatefulSet rolling update does (SIGTERM, start, highest ordinal
// first), and waits for the restarted server's rollout gate before the
// next step, while a writer writes through the servers that are up. No
// acknowledged write may be lost, and no gap between two acknowledged
// writes may exceed one election. The step that stops the leader must
// hand leadership over; the gap it causes is reported, and compared with
// that of a leader killed without a hand-off.
func TestRollingRestartGatedOnVoter(t *testing.T) {
	nodes := startServers(t, "r", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 60*time.Second, nodes...)
	waitVoterGates(t, 30*time.Second, nodes...)

	w := startAckWriter(t, nodes, 150*time.Second, 200000)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if c := w.count(); c < 50 {
			return fmt.Errorf("%d writes acknowledged", c)
		}
		return nil
	})

	type step struct {
		node           string
		wasLeader      bool
		stop, ready    time.Time
		closedAnswers  int
		reasons        []string
		gap            time.Duration
		handOffLogLine string
	}
	var steps []step
	leaderSteps := 0
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		s := step{node: n.Name, wasLeader: n.Leader() == n.RaftAddr(), stop: time.Now()}
		run := n.Runs()
		n.Terminate()
		n.Start()
		testutil.WaitFor(t, 60*time.Second, func() error {
			code, _, reason := n.VoterGate()
			if code == 503 {
				s.closedAnswers++
				if len(s.reasons) == 0 || s.reasons[len(s.reasons)-1] != reason {
					s.reasons = append(s.reasons, reason)
				}
			}
			if code != 200 {
				return fmt.Errorf("%s ready?voter = %d %s", n.Name, code, reason)
			}
			return nil
		})
		s.ready = time.Now()
		s.gap, _ = w.longestGap(s.stop, s.ready)
		// Let the writer show progress before the next step, so that no
		// gap spans two steps.
		acked := w.count()
		testutil.WaitFor(t, 10*time.Second, func() error {
			if c := w.count(); c < acked+20 {
				return fmt.Errorf("%d writes acknowledged since %s's gate opened", c-acked, n.Name)
			}
			return nil
		})
		if s.wasLeader {
			leaderSteps++
			for _, l := range strings.Split(n.RunLog(run), "\n") {
				if strings.Contains(l, "transferred leadership") || strings.Contains(l, "leadership transfer failed") {
					s.handOffLogLine = l
				}
			}
			if !strings.Contains(s.handOffLogLine, "transferred leadership") {
				t.Errorf("%s stopped as the leader without handing over; its log: %q", n.Name, s.handOffLogLine)
			}
		}
		steps = append(steps, s)
	}

	// For comparison: a leader killed outright cannot hand over, so the
	// others wait an election timeout.
	killed := LeaderNode(nodes...)
	if killed == nil {
		t.Fatal("no leader after the rolling restart")
	}
	killAt := time.Now()
	killed.Kill()
	testutil.WaitFor(t, 20*time.Second, func() error {
		if gap, _ := w.longestGap(killAt, time.Now()); gap == 0 {
			return fmt.Errorf("no write acknowledged since %s was killed", killed.Name)
		}
		return nil
	})
	killGap, _ := w.longestGap(killAt, time.Now())
	killed.Start()
	waitVoterGates(t, 60*time.Second, nodes...)
	w.stop()

	total, at := w.longestGap(time.Time{}, time.Now())
	w.mu.Lock()
	keys, errs := slices.Clone(w.keys), maps.Clone(w.errors)
	w.mu.Unlock()
	for _, s := range steps {
		t.Logf("step %s (leader %t): gate open after %s, %d closed answers first %q, longest write gap %s %s",
			s.node, s.wasLeader, s.ready.Sub(s.stop).Round(time.Millisecond), s.closedAnswers, s.reasons,
			s.gap.Round(time.Millisecond), s.handOffLogLine)
	}
	t.Logf("killed leader %s (no hand-off): longest write gap %s", killed.Name, killGap.Round(time.Millisecond))
	t.Logf("%d writes acknowledged; longest gap %s at %s; failed attempts by kind: %v",
		len(keys), total.Round(time.Millisecond), at.Format("15:04:05.000"), errs)

	if leaderSteps == 0 {
		t.Errorf("no step stopped the leader")
	}
	gated := false
	for _, s := range steps {
		gated = gated || s.closedAnswers > 0
	}
	if !gated {
		t.Errorf("no restarted server's gate was ever closed: the gate did not gate")
	}
	if total > maxWriteGap {
		t.Errorf("longest gap between acknowledged writes = %s, want under %s (one election)", total, maxWriteGap)
	}

	// Every acknowledged write is there.
	kv := NewKVClient(30*time.Second, 1)
	defer kv.Close()
	var pairs map[string]string
	testutil.WaitFor(t, 30*time.Second, func() error {
		list, _, err := kv.List(nodes[0], "roll/", "recurse&consistent")
		if err != nil {
			return err
		}
		pairs = map[string]string{}
		for _, p := range list {
			pairs[p.Key] = string(p.Value)
		}
		return nil
	})
	lost := 0
	for _, k := range keys {
		if pairs[k] != k {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged write %s lost (read %q)", k, pairs[k])
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, len(keys))
	}
}
