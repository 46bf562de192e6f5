package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/test/testutil"
)

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
		s.SerfStatus != "alive" || s.Version != testVersion || !s.Leader || !s.Voter || !s.Healthy || s.LastContact.Duration() != 0 ||
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
