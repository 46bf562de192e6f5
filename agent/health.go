package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/agent/api"
)

// Three health checks, for three different questions (website/http-api.md
// has the operator's view, agent/DESIGN.md the reasons):
//
//   - GET /v1/agent/health, liveness: is the process serving HTTP? Always
//     200; it depends on nothing else, so a restart never cures what a
//     leaderless cluster needs time for.
//   - GET /v1/status/ready, readiness: has the agent started, and is it not
//     leaving or shutting down? It needs no peer and no leader, because
//     discovery may depend on it: go-discover's k8s provider lists only
//     Running and Ready pods, so a readiness that needed a leader would
//     keep a fresh cluster from ever finding itself.
//   - GET /v1/status/ready?voter, the rollout gate: is this server a
//     caught-up voter, healthy in the leader's autopilot view, and does
//     the cluster again tolerate one failure? A rolling restart waits on it
//     before it stops the next server (hashicorp/consul#8118). It cannot
//     pass before bootstrap, by design.

// voterGateTimeout bounds the rollout gate's question to the leader.
const voterGateTimeout = 2 * time.Second

// agentHealth answers GET /v1/agent/health.
func (a *Agent) agentHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, api.HealthCheck{Node: a.cfg.NodeName, Check: api.CheckAlive, Healthy: true, Reason: "serving HTTP"})
}

// statusReady answers GET /v1/status/ready, and with ?voter the rollout
// gate: 200 and a HealthCheck, or 503 and the reason.
func (a *Agent) statusReady(w http.ResponseWriter, r *http.Request) {
	_, voter := r.URL.Query()["voter"]
	if voter && a.node == nil {
		httpError(w, http.StatusBadRequest, "this agent is not a server")
		return
	}
	if reason := a.notReady(); reason != "" {
		httpError(w, http.StatusServiceUnavailable, reason)
		return
	}
	if !voter {
		reason := "agent started"
		if a.node != nil {
			reason += "; raft " + strings.ToLower(a.node.State())
		}
		writeJSON(w, api.HealthCheck{Node: a.cfg.NodeName, Check: api.CheckReady, Healthy: true, Reason: reason})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), voterGateTimeout)
	defer cancel()
	health, err := a.leaderHealth(ctx)
	if err != nil && !errors.Is(err, errNoLeader) {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	stats := a.node.Stats()
	applied, _ := strconv.ParseUint(stats["applied_index"], 10, 64)
	res := voterCheck{
		selfID:       a.id,
		health:       health,
		applied:      applied,
		lastContact:  raftStats{LastContact: stats["last_contact"]}.serverStats().LastContact,
		maxLag:       maxTrailingLogs,
		contactLimit: lastContactThreshold(a.cfg.Performance.RaftMultiplier),
	}.decide()
	if !res.ok {
		httpError(w, http.StatusServiceUnavailable, res.reason)
		return
	}
	writeJSON(w, api.HealthCheck{
		Node: a.cfg.NodeName, Check: api.CheckVoter, Healthy: true, Reason: res.reason,
		AppliedIndex: applied, LeaderLastIndex: res.leaderLastIndex,
	})
}

// notReady returns why the agent is not ready, or "" when it is: it has
// started, it is not leaving or shutting down, its gossip member is alive
// and, on a server, Raft runs.
func (a *Agent) notReady() string {
	switch {
	case a.stopping.Load():
		return "agent is shutting down"
	case a.Err() != nil:
		return "agent is stopping on an error: " + a.Err().Error()
	case a.leaving.Load():
		return "agent is leaving the cluster"
	case !a.started.Load():
		return "agent is starting"
	}
	if st := a.pool.LocalMember().Status; st != serf.StatusAlive {
		return "gossip member is " + st.String()
	}
	if a.node != nil && a.node.State() == "Shutdown" {
		return "raft is shut down"
	}
	return ""
}

// leaderHealth returns the leader's autopilot view: its own when this
// server leads, else the leader's answer over the server port, as a
// forwarded request. errNoLeader when there is no leader.
func (a *Agent) leaderHealth(ctx context.Context) (*api.OperatorHealthReply, error) {
	if a.node.IsLeader() {
		return a.pilot.health()
	}
	addr, _ := a.node.Leader()
	if addr == "" {
		return nil, errNoLeader
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/operator/autopilot/health", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(forwardedHeader, "1")
	resp, err := a.peers.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the leader %s for autopilot health: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("ask the leader %s for autopilot health: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
		return nil, fmt.Errorf("leader %s: autopilot health: %s", addr, strings.TrimSpace(string(b)))
	}
	var out api.OperatorHealthReply
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("leader %s: decode autopilot health: %w", addr, err)
	}
	return &out, nil
}

// voterCheck holds what the rollout gate decides from.
type voterCheck struct {
	// selfID is this server's node ID.
	selfID string
	// health is the leader's autopilot view, nil when there is no leader.
	health *api.OperatorHealthReply
	// applied is this server's applied index.
	applied uint64
	// lastContact is how long ago this server last heard from the leader,
	// by its own Raft: 0 on the leader, negative when it never has.
	lastContact time.Duration
	// maxLag is how many entries this server may be behind the leader.
	maxLag uint64
	// contactLimit is the longest lastContact a healthy server has.
	contactLimit time.Duration
}

// gateResult is the rollout gate's answer: ok, and in one line why.
type gateResult struct {
	ok              bool
	reason          string
	leaderLastIndex uint64
}

// decide applies the rollout gate. In order: there is a leader; this
// server is in the committed configuration, as a voter; it is at most
// maxLag entries behind the leader's last index, by its log and by what
// it applied; it heard from the leader within contactLimit, by its own
// count; the leader counts it healthy; and the cluster tolerates one
// failure (with fewer than three voters, where the tolerance is always 0:
// every voter is healthy).
//
// The leader's view is up to one autopilot interval old, and a server
// restarted within that interval may still look healthy in it from before
// its restart; its own applied index and last contact are current, so the
// gate checks those itself.
func (c voterCheck) decide() gateResult {
	if c.health == nil {
		return gateResult{reason: "no leader"}
	}
	var self, leader *api.ServerHealth
	var voters int
	var unhealthy []string
	for i := range c.health.Servers {
		s := &c.health.Servers[i]
		if s.ID == c.selfID {
			self = s
		}
		if s.Leader {
			leader = s
		}
		if s.Voter {
			voters++
			if !s.Healthy {
				unhealthy = append(unhealthy, cmp.Or(s.Name, s.ID))
			}
		}
	}
	switch {
	case leader == nil:
		return gateResult{reason: "no leader"}
	case self == nil:
		return gateResult{reason: "not in the Raft configuration"}
	case !self.Voter:
		return gateResult{reason: "not a voter"}
	}
	res := gateResult{leaderLastIndex: leader.LastIndex}
	lag := leader.LastIndex - min(c.applied, leader.LastIndex)
	if self.LastContact.Duration() >= 0 { // else the leader has no stats from it: its LastIndex means nothing
		lag = max(lag, leader.LastIndex-min(self.LastIndex, leader.LastIndex))
	}
	if lag > c.maxLag {
		res.reason = fmt.Sprintf("lagging %d entries behind the leader", lag)
		return res
	}
	switch {
	case self.Leader:
	case c.lastContact < 0:
		res.reason = "unhealthy: has not heard from the leader"
		return res
	case c.lastContact > c.contactLimit:
		res.reason = fmt.Sprintf("unhealthy: last contact with the leader %s ago", c.lastContact.Round(time.Millisecond))
		return res
	}
	if !self.Healthy {
		res.reason = unhealthyReason(self, leader)
		return res
	}
	if (voters >= 3 && c.health.FailureTolerance < 1) || (voters < 3 && len(unhealthy) > 0) {
		slices.Sort(unhealthy)
		switch len(unhealthy) {
		case 0:
			res.reason = "failure tolerance 0"
		case 1:
			res.reason = "failure tolerance 0: server " + unhealthy[0] + " is unhealthy"
		default:
			res.reason = "failure tolerance 0: servers " + strings.Join(unhealthy, ", ") + " are unhealthy"
		}
		return res
	}
	res.ok = true
	res.reason = fmt.Sprintf("voter, applied index %d of the leader's %d; failure tolerance %d of %d voters",
		c.applied, leader.LastIndex, c.health.FailureTolerance, voters)
	return res
}

// unhealthyReason says why the leader counts s unhealthy although it is
// not lagging by the gate's own measure.
func unhealthyReason(s, leader *api.ServerHealth) string {
	switch {
	case s.SerfStatus != serf.StatusAlive.String():
		return "unhealthy: gossip status " + s.SerfStatus
	case s.LastContact.Duration() < 0:
		return "unhealthy in the leader's view: no contact reported yet"
	case s.LastTerm != leader.LastTerm:
		return fmt.Sprintf("unhealthy: last log term %d, the leader's %d", s.LastTerm, leader.LastTerm)
	}
	return fmt.Sprintf("unhealthy in the leader's view: last contact %s ago, last index %d of the leader's %d",
		s.LastContact.Duration(), s.LastIndex, leader.LastIndex)
}
