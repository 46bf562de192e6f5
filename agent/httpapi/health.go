package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/agent/serverport"
	"github.com/conclavehq/conclave/consensus"
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
//   - GET /v1/status/ready?voter, the rollout gate (cluster.VoterCheck).

// voterGateTimeout bounds the rollout gate's question to the leader.
const voterGateTimeout = 2 * time.Second

// agentHealth answers GET /v1/agent/health.
func (s *Service) agentHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, api.HealthCheck{Node: s.cfg.Name, Check: api.CheckAlive, Healthy: true, Reason: "serving HTTP"})
}

// statusReady answers GET /v1/status/ready, and with ?voter the rollout
// gate: 200 and a HealthCheck, or 503 and the reason.
func (s *Service) statusReady(w http.ResponseWriter, r *http.Request) {
	_, voter := r.URL.Query()["voter"]
	if voter && s.store == nil {
		httpError(w, http.StatusBadRequest, "this agent is not a server")
		return
	}
	if reason := s.notReady(); reason != "" {
		httpError(w, http.StatusServiceUnavailable, reason)
		return
	}
	if !voter {
		reason := "agent started"
		if s.store != nil {
			reason += "; raft " + strings.ToLower(s.store.State().String())
		}
		writeJSON(w, api.HealthCheck{Node: s.cfg.Name, Check: api.CheckReady, Healthy: true, Reason: reason})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), voterGateTimeout)
	defer cancel()
	health, err := s.leaderHealth(ctx)
	if err != nil && !errors.Is(err, serverport.ErrNoLeader) {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	stats := s.store.Stats()
	applied, _ := strconv.ParseUint(stats["applied_index"], 10, 64)
	res := cluster.VoterCheck{
		SelfID:       s.cfg.ID,
		Health:       health,
		Applied:      applied,
		LastContact:  consensus.RaftStats{LastContact: stats["last_contact"]}.ServerStats().LastContact,
		MaxLag:       consensus.MaxTrailingLogs,
		ContactLimit: consensus.LastContactThreshold(s.cfg.RaftMultiplier),
	}.Decide()
	if !res.OK {
		httpError(w, http.StatusServiceUnavailable, res.Reason)
		return
	}
	writeJSON(w, api.HealthCheck{
		Node: s.cfg.Name, Check: api.CheckVoter, Healthy: true, Reason: res.Reason,
		AppliedIndex: applied, LeaderLastIndex: res.LeaderLastIndex,
	})
}

// notReady is the agent's reason, and on a server also Raft's.
func (s *Service) notReady() string {
	if reason := s.cfg.Agent.NotReady(); reason != "" {
		return reason
	}
	if s.store != nil && s.store.State() == consensus.StateShutdown {
		return "raft is shut down"
	}
	return ""
}

// leaderHealth returns the leader's autopilot view: its own when this
// server leads, else the leader's answer over the server port, as a
// forwarded request. serverport.ErrNoLeader when there is no leader.
func (s *Service) leaderHealth(ctx context.Context) (*api.OperatorHealthReply, error) {
	if s.store.IsLeader() {
		return cluster.HealthReply(s.cfg.Autopilot.State())
	}
	addr, _ := s.store.Leader()
	if addr == "" {
		return nil, serverport.ErrNoLeader
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/operator/autopilot/health", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(serverport.ForwardedHeader, "1")
	resp, err := s.cfg.Peers.Send(req)
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
