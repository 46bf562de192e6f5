package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

// memRaft is also a consensus.RaftReader, so autopilot can run on the
// in-memory cluster of reconcile_test.go.
func (m *memRaft) Leader() (addr, id string) {
	a, i := m.r.LeaderWithID()
	return string(a), string(i)
}
func (m *memRaft) State() consensus.State {
	for _, s := range []consensus.State{consensus.StateFollower, consensus.StateCandidate, consensus.StateLeader} {
		if s.String() == m.r.State().String() {
			return s
		}
	}
	return consensus.StateShutdown
}
func (m *memRaft) Stats() map[string]string  { return m.r.Stats() }
func (m *memRaft) LastIndex() uint64         { return m.r.LastIndex() }
func (m *memRaft) CommitIndex() uint64       { return m.r.CommitIndex() }
func (m *memRaft) apply(t *testing.T, n int) { applyN(t, m.r, n) }

func applyN(t *testing.T, r *raft.Raft, n int) {
	t.Helper()
	var last raft.ApplyFuture
	for i := range n {
		last = r.Apply([]byte(strconv.Itoa(i)), 5*time.Second)
	}
	if err := last.Error(); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// statsSource answers the delegate's stats requests from the in-memory
// servers, except those marked down.
type statsSource struct {
	mu     sync.Mutex
	byAddr map[string]*memRaft
	down   map[string]bool
}

func (s *statsSource) fetch(_ context.Context, addr string) (consensus.RaftStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down[addr] {
		return consensus.RaftStats{}, errors.New("connection refused")
	}
	r, ok := s.byAddr[addr]
	if !ok {
		return consensus.RaftStats{}, fmt.Errorf("no server at %s", addr)
	}
	return consensus.ReadRaftStats(r), nil
}

func (s *statsSource) setDown(addr string, down bool) {
	s.mu.Lock()
	s.down[addr] = down
	s.mu.Unlock()
}

// disconnect cuts (or restores) the in-memory network between addr and
// every other server.
func (c *memCluster) disconnect(addr string, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	me := c.trans[addr]
	for a, other := range c.trans {
		if a == addr {
			continue
		}
		if cut {
			me.Disconnect(raft.ServerAddress(a))
			other.Disconnect(raft.ServerAddress(addr))
		} else {
			me.Connect(raft.ServerAddress(a), other)
			other.Connect(raft.ServerAddress(addr), me)
		}
	}
}

// gate runs the rollout gate for server id against the autopilot's view,
// as the ready endpoint does.
func gate(p *consensus.Autopilot, id string, r *memRaft) GateResult {
	h, err := HealthReply(p.State())
	if err != nil {
		return GateResult{Reason: err.Error()}
	}
	stats := r.Stats()
	applied, _ := strconv.ParseUint(stats["applied_index"], 10, 64)
	return VoterCheck{
		SelfID: id, Health: h, Applied: applied, LastContact: consensus.RaftStats{LastContact: stats["last_contact"]}.ServerStats().LastContact,
		MaxLag: consensus.MaxTrailingLogs, ContactLimit: consensus.LastContactThreshold(1),
	}.Decide()
}

func waitGate(t *testing.T, p *consensus.Autopilot, id string, r *memRaft, ok bool, reason string) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got := gate(p, id, r); got.OK != ok || (reason != "" && got.Reason != reason) {
			return fmt.Errorf("gate(%s) = %v %q, want %v %q", id, got.OK, got.Reason, ok, reason)
		}
		return nil
	})
}

// TestAutopilotOnInmemRaft runs the real raft-autopilot with the delegate
// and the read-only Raft view on an in-memory cluster of three voters and a
// non-voter: health follows stats and lag, and autopilot never changes the
// configuration. (consensus's TestAutopilotNeverChangesTheConfiguration
// switches its reconciliation on.)
func TestAutopilotOnInmemRaft(t *testing.T) {
	c := newMemCluster(t)
	l := leaderOf(t, c)
	src := &statsSource{byAddr: map[string]*memRaft{"127.0.0.1:9001": l}, down: map[string]bool{}}
	members := &fakeMembers{}
	ms := []gossip.Member{member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive)}
	for i := 2; i <= 4; i++ {
		id, addr := fmt.Sprintf("s%d", i), fmt.Sprintf("127.0.0.1:900%d", i)
		src.byAddr[addr] = c.start(id, addr)
		ms = append(ms, member(id, id, addr, gossip.StatusAlive))
		var err error
		if i < 4 {
			err = l.r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second).Error()
		} else {
			err = l.r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second).Error()
		}
		if err != nil {
			t.Fatalf("add %s: %v", id, err)
		}
	}
	members.set(ms...)
	s3 := src.byAddr["127.0.0.1:9003"]

	d := NewAutopilotDelegate(testutil.Logger(t), func() consensus.RaftStats { return consensus.ReadRaftStats(l) }, members, "s1", "dc1", src.fetch)
	p := consensus.NewAutopilot(l, consensus.AutopilotOptions{
		Delegate: d, Multiplier: 1, UpdateInterval: 50 * time.Millisecond, Logger: testutil.Logger(t),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	testutil.WaitFor(t, 10*time.Second, func() error {
		h, err := HealthReply(p.State())
		if err != nil {
			return err
		}
		if !h.Healthy || h.FailureTolerance != 1 || len(h.Servers) != 4 {
			return fmt.Errorf("health = %+v, want 4 healthy servers, tolerance 1", h)
		}
		for _, s := range h.Servers {
			if s.Voter != (s.ID != "s4") || s.Leader != (s.ID == "s1") || s.SerfStatus != "alive" || s.Name != s.ID {
				return fmt.Errorf("server %+v", s)
			}
		}
		return nil
	})
	waitGate(t, p, "s3", s3, true, "")
	if got := gate(p, "s4", src.byAddr["127.0.0.1:9004"]); got.OK || got.Reason != "not a voter" {
		t.Errorf("gate(s4) = %v %q, want not a voter", got.OK, got.Reason)
	}

	// s3 stops answering: once its last contact is older than the
	// threshold (1 s), it is unhealthy and the others' gate closes.
	src.setDown("127.0.0.1:9003", true)
	waitGate(t, p, "s2", src.byAddr["127.0.0.1:9002"], false, "failure tolerance 0: server s3 is unhealthy")
	h, _ := HealthReply(p.State())
	if got := serverHealth(h, "s3"); got.Healthy || got.LastContact.Duration() < time.Second {
		t.Errorf("s3 while down = %+v, want unhealthy with a last contact of 1s or more", got)
	}

	// s3 answers again but misses 400 entries: lagging, then caught up.
	c.disconnect("127.0.0.1:9003", true)
	src.setDown("127.0.0.1:9003", false)
	l.apply(t, 2*consensus.MaxTrailingLogs)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got := gate(p, "s3", s3); got.OK || !isLagging(got.Reason) {
			return fmt.Errorf("gate(s3) = %v %q, want lagging", got.OK, got.Reason)
		}
		return nil
	})
	c.disconnect("127.0.0.1:9003", false)
	waitGate(t, p, "s3", s3, true, "")
	waitGate(t, p, "s2", src.byAddr["127.0.0.1:9002"], true, "")

	// Through all this the configuration never changed.
	if got, want := configString(t, l), "s1@127.0.0.1:9001:true s2@127.0.0.1:9002:true s3@127.0.0.1:9003:true s4@127.0.0.1:9004:false"; got != want {
		t.Errorf("configuration = %s, want %s", got, want)
	}
}

func isLagging(reason string) bool {
	var n int
	_, err := fmt.Sscanf(reason, "lagging %d entries behind the leader", &n)
	return err == nil && n > consensus.MaxTrailingLogs
}

func serverHealth(h *api.OperatorHealthReply, id string) api.ServerHealth {
	for _, s := range h.Servers {
		if s.ID == id {
			return s
		}
	}
	return api.ServerHealth{}
}

// TestFetchServerStatsAgesUnansweredServers: a server that stops answering
// keeps its last stats with a growing LastContact; one that never answered
// has never been in contact.
func TestFetchServerStatsAgesUnansweredServers(t *testing.T) {
	answer := map[string]consensus.RaftStats{"a1": {LastContact: "20ms", LastTerm: 3, LastIndex: 40}}
	fetch := func(_ context.Context, addr string) (consensus.RaftStats, error) {
		if st, ok := answer[addr]; ok {
			return st, nil
		}
		return consensus.RaftStats{}, errors.New("down")
	}
	d := NewAutopilotDelegate(testutil.Logger(t), nil, &fakeMembers{}, "self", "dc1", fetch)
	servers := []consensus.AutopilotServer{
		{ID: "x1", Name: "n1", Address: "a1"},
		{ID: "x2", Name: "n2", Address: "a2"},
	}
	got := d.FetchServerStats(context.Background(), servers)
	if got["x1"] != (consensus.ServerStats{LastContact: 20 * time.Millisecond, LastTerm: 3, LastIndex: 40}) {
		t.Errorf("x1 stats = %+v", got["x1"])
	}
	if got["x2"].LastContact >= 0 {
		t.Errorf("x2 (never answered) LastContact = %s, want negative", got["x2"].LastContact)
	}

	delete(answer, "a1")
	d.mu.Lock()
	d.last["x1"] = fetchedStats{stats: d.last["x1"].stats, at: time.Now().Add(-2 * time.Second)}
	d.mu.Unlock()
	got = d.FetchServerStats(context.Background(), servers)
	if st := got["x1"]; st.LastTerm != 3 || st.LastIndex != 40 || st.LastContact < 2*time.Second || st.LastContact > 3*time.Second {
		t.Errorf("x1 stats after it stopped answering = %+v, want term 3, index 40, last contact 2s and a bit", st)
	}
}
