package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/test/testutil"
)

// healthOf builds a leader's autopilot view for the gate table: s1 leads
// at last index 1000, every server is a healthy, caught-up voter unless a
// change says otherwise.
func healthOf(tolerance int, servers ...api.ServerHealth) *api.OperatorHealthReply {
	h := &api.OperatorHealthReply{Healthy: true, FailureTolerance: tolerance}
	for _, s := range servers {
		h.Healthy = h.Healthy && s.Healthy
		h.Servers = append(h.Servers, s)
	}
	return h
}

func server(name string, change func(*api.ServerHealth)) api.ServerHealth {
	s := api.ServerHealth{
		ID: "id-" + name, Name: name, Address: name + ":8300", SerfStatus: "alive",
		LastContact: api.NewReadableDuration(10 * time.Millisecond), LastTerm: 7, LastIndex: 1000,
		Healthy: true, Voter: true, Leader: name == "s1",
	}
	if s.Leader {
		s.LastContact = api.NewReadableDuration(0)
	}
	if change != nil {
		change(&s)
	}
	return s
}

func unhealthy(s *api.ServerHealth) { s.Healthy = false }

func TestVoterCheckDecide(t *testing.T) {
	cases := []struct {
		name    string
		self    string
		health  *api.OperatorHealthReply
		applied uint64
		contact time.Duration // this server's own last contact; 0 means 20ms
		wantOK  bool
		want    string
	}{
		{
			name: "healthy voter, three voters", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 1 of 3 voters",
		},
		{
			name: "the leader itself", self: "id-s1", applied: 998, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "voter, applied index 998 of the leader's 1000; failure tolerance 1 of 3 voters",
		},
		{
			name: "no leader", self: "id-s2", applied: 1000,
			health: nil,
			want:   "no leader",
		},
		{
			name: "a view without a leader", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s2", nil), server("s3", nil)),
			want:   "no leader",
		},
		{
			name: "not in the configuration", self: "id-s4", applied: 1000,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "not in the Raft configuration",
		},
		{
			name: "not a voter", self: "id-s4", applied: 1000,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil),
				server("s4", func(s *api.ServerHealth) { s.Voter = false })),
			want: "not a voter",
		},
		{
			name: "applied index lagging", self: "id-s2", applied: 600,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "lagging 400 entries behind the leader",
		},
		{
			name: "log lagging in the leader's view", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) { s.LastIndex = 10; s.Healthy = false }), server("s3", nil)),
			want:   "lagging 990 entries behind the leader",
		},
		{
			name: "lag within the margin but unhealthy: old contact", self: "id-s2", applied: 900,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) {
				s.LastContact = api.NewReadableDuration(3 * time.Second)
				s.Healthy = false
			}), server("s3", nil)),
			want: "unhealthy in the leader's view: last contact 3s ago, last index 1000 of the leader's 1000",
		},
		{
			name: "the leader's view is stale: this server has not heard from the leader", self: "id-s2", applied: 1000, contact: -1,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "unhealthy: has not heard from the leader",
		},
		{
			name: "the leader's view is stale: this server's last contact is old", self: "id-s2", applied: 1000, contact: 1500 * time.Millisecond,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "unhealthy: last contact with the leader 1.5s ago",
		},
		{
			name: "unhealthy: older term", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) { s.LastTerm = 6; s.Healthy = false }), server("s3", nil)),
			want:   "unhealthy: last log term 6, the leader's 7",
		},
		{
			name: "unhealthy: the leader has no stats from it", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) {
				s.LastContact = api.NewReadableDuration(-1)
				s.LastTerm, s.LastIndex = 0, 0
				s.Healthy = false
			}), server("s3", nil)),
			want: "unhealthy in the leader's view: no contact reported yet",
		},
		{
			name: "unhealthy: gossip failed", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) { s.SerfStatus = "failed"; s.Healthy = false }), server("s3", nil)),
			want:   "unhealthy: gossip status failed",
		},
		{
			name: "tolerance 0: another server is down", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", nil), server("s3", unhealthy)),
			want:   "failure tolerance 0: server s3 is unhealthy",
		},
		{
			name: "tolerance 0 with five voters", self: "id-s1", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", nil), server("s5", unhealthy), server("s3", nil), server("s4", unhealthy)),
			want:   "failure tolerance 0: servers s4, s5 are unhealthy",
		},
		{
			name: "five voters, one down, tolerance 1", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil), server("s4", nil), server("s5", unhealthy)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 1 of 5 voters",
		},
		{
			name: "an unhealthy non-voter does not count", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil),
				server("s4", func(s *api.ServerHealth) { s.Voter = false; s.Healthy = false })),
			want: "voter, applied index 1000 of the leader's 1000; failure tolerance 1 of 3 voters",
		},
		{
			name: "single voter, healthy", self: "id-s1", applied: 1000, wantOK: true,
			health: healthOf(0, server("s1", nil)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 0 of 1 voters",
		},
		{
			name: "two voters, both healthy", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(0, server("s1", nil), server("s2", nil)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 0 of 2 voters",
		},
		{
			name: "two voters, the other unhealthy", self: "id-s1", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", unhealthy)),
			want:   "failure tolerance 0: server s2 is unhealthy",
		},
		{
			name: "an unnamed server is named by its ID", self: "id-s1", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", nil), server("s3", func(s *api.ServerHealth) { s.Name = ""; s.Healthy = false })),
			want:   "failure tolerance 0: server id-s3 is unhealthy",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			contact := tc.contact
			if contact == 0 {
				contact = 20 * time.Millisecond
			}
			got := voterCheck{selfID: tc.self, health: tc.health, applied: tc.applied, lastContact: contact,
				maxLag: 250, contactLimit: time.Second}.decide()
			if got.ok != tc.wantOK || got.reason != tc.want {
				t.Errorf("decide() = %v %q, want %v %q", got.ok, got.reason, tc.wantOK, tc.want)
			}
		})
	}
}

func TestAutopilotRaftReportsOnlyCommittedConfigurations(t *testing.T) {
	a := []consensus.Server{{ID: "s1", Address: "a1", Voter: true}}
	ab := append(a[:1:1], consensus.Server{ID: "s2", Address: "a2", Voter: true})
	r := &autopilotRaft{}
	steps := []struct {
		name          string
		latest        []consensus.Server
		last, commit  uint64
		want          []consensus.Server
		wantCommitted bool
	}{
		{name: "first sight, not yet committed", latest: a, last: 5, commit: 4},
		{name: "committed once the commit index reaches the last index seen", latest: a, last: 9, commit: 5, want: a, wantCommitted: true},
		{name: "a new voter, uncommitted: still the old one", latest: ab, last: 12, commit: 9, want: a, wantCommitted: true},
		{name: "later entries do not move the mark", latest: ab, last: 20, commit: 11, want: a, wantCommitted: true},
		{name: "the new configuration commits", latest: ab, last: 21, commit: 12, want: ab, wantCommitted: true},
	}
	for _, s := range steps {
		got, ok := r.observe(s.latest, s.last, s.commit)
		if ok != s.wantCommitted || fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s: observe() = %v %v, want %v %v", s.name, got, ok, s.want, s.wantCommitted)
		}
	}
	r.reset()
	if got, ok := r.observe(ab, 30, 29); ok || got != nil {
		t.Errorf("after reset: observe() = %v %v, want nothing committed", got, ok)
	}
}

func TestAutopilotRaftRefusesChanges(t *testing.T) {
	r := &autopilotRaft{}
	for name, f := range map[string]raft.Future{
		"AddVoter":                   r.AddVoter("x", "a", 0, 0),
		"AddNonvoter":                r.AddNonvoter("x", "a", 0, 0),
		"DemoteVoter":                r.DemoteVoter("x", 0, 0),
		"RemoveServer":               r.RemoveServer("x", 0, 0),
		"LeadershipTransferToServer": r.LeadershipTransferToServer("x", "a"),
	} {
		if err := f.Error(); !errors.Is(err, errReadOnlyRaft) {
			t.Errorf("%s().Error() = %v, want errReadOnlyRaft", name, err)
		}
	}
}

func getStatus(t *testing.T, a *Agent, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestHealthEndpointsOnALoneServer: a server waiting for bootstrap_expect
// is alive and ready (it needs no leader for that), but not a voter.
func TestHealthEndpointsOnALoneServer(t *testing.T) {
	a := testAgent(t, "lone", func(c *config.Config) { c.BootstrapExpect = 3 })
	var h api.HealthCheck
	if code := getJSON(t, a, "/v1/agent/health", &h); code != 200 || h != (api.HealthCheck{Node: "lone", Check: "alive", Healthy: true, Reason: "serving HTTP"}) {
		t.Errorf("GET /v1/agent/health = %d %+v", code, h)
	}
	if code := getJSON(t, a, "/v1/status/ready", &h); code != 200 || h.Check != "ready" || !h.Healthy || h.Reason != "agent started; raft follower" {
		t.Errorf("GET /v1/status/ready = %d %+v, want 200 ready", code, h)
	}
	if code, body := getStatus(t, a, "/v1/status/ready?voter"); code != 503 || body != "no leader" {
		t.Errorf("GET /v1/status/ready?voter = %d %q, want 503 no leader", code, body)
	}
	if code, body := getStatus(t, a, "/v1/operator/autopilot/health"); code != 503 || body != "No cluster leader" {
		t.Errorf("GET /v1/operator/autopilot/health = %d %q, want 503 No cluster leader", code, body)
	}
}

// TestHealthEndpointsOnABootstrappedServer: a single bootstrapped server
// is its own healthy voter; after Shutdown begins it is no longer ready.
func TestHealthEndpointsOnABootstrappedServer(t *testing.T) {
	a := testAgent(t, "solo", func(c *config.Config) { c.Bootstrap = true })
	var h api.HealthCheck
	testutil.WaitFor(t, 10*time.Second, func() error {
		if code, body := getStatus(t, a, "/v1/status/ready?voter"); code != 200 {
			return fmt.Errorf("ready?voter = %d %s", code, body)
		}
		return nil
	})
	getJSON(t, a, "/v1/status/ready?voter", &h)
	if h.Check != "voter" || !h.Healthy || h.LeaderLastIndex == 0 || !strings.Contains(h.Reason, "failure tolerance 0 of 1 voters") {
		t.Errorf("ready?voter = %+v, want a healthy single voter", h)
	}

	var reply api.OperatorHealthReply
	if code := getJSON(t, a, "/v1/operator/autopilot/health", &reply); code != 200 {
		t.Fatalf("GET /v1/operator/autopilot/health = %d", code)
	}
	if len(reply.Servers) != 1 {
		t.Fatalf("autopilot health servers = %+v, want one", reply.Servers)
	}
	s := reply.Servers[0]
	if !reply.Healthy || reply.FailureTolerance != 0 || s.ID != a.NodeID() || s.Name != "solo" || s.Address != a.RaftAddr() ||
		s.SerfStatus != "alive" || s.Version != Version || !s.Leader || !s.Voter || !s.Healthy || s.LastContact.Duration() != 0 ||
		s.LastTerm == 0 || s.LastIndex == 0 || s.StableSince.IsZero() {
		t.Errorf("autopilot health = %+v %+v", reply, s)
	}

	a.stopping.Store(true) // as Shutdown does first
	if code, body := getStatus(t, a, "/v1/status/ready"); code != 503 || body != "agent is shutting down" {
		t.Errorf("GET /v1/status/ready while stopping = %d %q, want 503 agent is shutting down", code, body)
	}
	if code, _ := getStatus(t, a, "/v1/agent/health"); code != 200 {
		t.Errorf("GET /v1/agent/health while stopping = %d, want 200", code)
	}
}

// TestHealthEndpointsOnAClient: a client is ready without any server; the
// rollout gate is a server's.
func TestHealthEndpointsOnAClient(t *testing.T) {
	a := testAgent(t, "cli", func(c *config.Config) { c.Server = false })
	var h api.HealthCheck
	if code := getJSON(t, a, "/v1/status/ready", &h); code != 200 || h.Reason != "agent started" {
		t.Errorf("GET /v1/status/ready on a client = %d %+v, want 200 agent started", code, h)
	}
	if code, body := getStatus(t, a, "/v1/status/ready?voter"); code != 400 || body != "this agent is not a server" {
		t.Errorf("GET /v1/status/ready?voter on a client = %d %q, want 400 this agent is not a server", code, body)
	}
}

// TestLeadershipTransfer: three servers; the leader hands leadership to a
// healthy voter of its autopilot view, and steps down at once.
func TestLeadershipTransfer(t *testing.T) {
	var agents []*Agent
	var join []string
	for _, name := range []string{"t1", "t2", "t3"} {
		a := testAgent(t, name, func(c *config.Config) {
			c.BootstrapExpect = 3
			c.RetryJoin = append([]string(nil), join...)
		})
		join = append(join, a.serfAddr())
		agents = append(agents, a)
	}
	if _, err := agents[0].pool.Join([]string{agents[2].serfAddr()}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	waitCluster(t, agents, 3)
	var leader *Agent
	for _, a := range agents {
		if a.node.IsLeader() {
			leader = a
		}
	}
	// Wait until every server is healthy, so the leader has a target.
	testutil.WaitFor(t, 15*time.Second, func() error {
		if code, body := getStatus(t, leader, "/v1/status/ready?voter"); code != 200 {
			return fmt.Errorf("leader ready?voter = %d %s", code, body)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), leadershipTransferTimeout)
	defer cancel()
	start := time.Now()
	to, err := leader.transferLeadership(ctx)
	if err != nil {
		t.Fatalf("transferLeadership() error = %v", err)
	}
	t.Logf("leadership moved from %s to %s in %s", leader.cfg.NodeName, to, time.Since(start))
	if to == "" || to == leader.cfg.NodeName {
		t.Fatalf("transferLeadership() target = %q, want another server", to)
	}
	if leader.node.IsLeader() {
		t.Errorf("%s still leads after the transfer", leader.cfg.NodeName)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		for _, a := range agents {
			if a.cfg.NodeName == to && a.node.IsLeader() {
				return nil
			}
		}
		return fmt.Errorf("%s does not lead", to)
	})
}
