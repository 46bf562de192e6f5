package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// The autopilot configuration and state, in Consul's paths and shapes.
// The configuration is replicated (OpSetAutopilotConfig); autopilot here
// only judges health, so of its settings only LastContactThreshold and
// MaxTrailingLogs take effect (consensus.AutopilotOptions.Stored).

// maxAutopilotBody bounds the body of a configuration PUT: a few hundred
// bytes of JSON.
const maxAutopilotBody = 64 << 10

// autopilotGetConfig answers GET /v1/operator/autopilot/configuration: the
// stored configuration, or the defaults Conclave runs with (indexes 0).
func (s *Service) autopilotGetConfig(w http.ResponseWriter, _ *http.Request) {
	v := s.store.View()
	c, ok := v.AutopilotConfig()
	if !ok {
		c = consensus.DefaultAutopilotConfig(s.cfg.RaftMultiplier)
	}
	s.setMeta(w, v.TableIndex("autopilot_config"))
	writeJSON(w, toAPIAutopilotConfig(c))
}

func toAPIAutopilotConfig(c consensus.AutopilotConfig) api.AutopilotConfiguration {
	return api.AutopilotConfiguration{
		CleanupDeadServers:      c.CleanupDeadServers,
		LastContactThreshold:    api.NewReadableDuration(c.LastContactThreshold),
		MaxTrailingLogs:         c.MaxTrailingLogs,
		MinQuorum:               c.MinQuorum,
		ServerStabilizationTime: api.NewReadableDuration(c.ServerStabilizationTime),
		CreateIndex:             c.CreateIndex,
		ModifyIndex:             c.ModifyIndex,
	}
}

// autopilotSetConfig answers PUT /v1/operator/autopilot/configuration on
// the leader: the body replaces the whole configuration, as in Consul;
// with ?cas=<index> only if the stored ModifyIndex is index. The answer is
// true, or false when the CAS failed.
func (s *Service) autopilotSetConfig(w http.ResponseWriter, r *http.Request) {
	var in api.AutopilotConfiguration
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAutopilotBody))
	if err := dec.Decode(&in); err != nil {
		httpError(w, http.StatusBadRequest, "Error parsing autopilot config: "+err.Error())
		return
	}
	// Enterprise settings: refused rather than stored and ignored.
	switch {
	case in.RedundancyZoneTag != "":
		httpError(w, http.StatusBadRequest, "RedundancyZoneTag: redundancy zones are not supported by Conclave")
		return
	case in.UpgradeVersionTag != "":
		httpError(w, http.StatusBadRequest, "UpgradeVersionTag: upgrade migrations are not supported by Conclave")
		return
	}
	cmd := consensus.Command{Op: consensus.OpSetAutopilotConfig, Autopilot: consensus.AutopilotConfig{
		CleanupDeadServers:      in.CleanupDeadServers,
		LastContactThreshold:    in.LastContactThreshold.Duration(),
		MaxTrailingLogs:         in.MaxTrailingLogs,
		MinQuorum:               in.MinQuorum,
		ServerStabilizationTime: in.ServerStabilizationTime.Duration(),
	}}
	if v := r.URL.Query().Get("cas"); v != "" {
		index, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("Error parsing cas value: %q is not an index", v))
			return
		}
		cmd.CAS, cmd.Index = true, index
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	res, err := s.store.Apply(ctx, cmd)
	if err != nil {
		writeError(w, err)
		return
	}
	writeTrueFalse(w, res.OK)
}

// autopilotState answers GET /v1/operator/autopilot/state on the leader,
// from its autopilot view, in Consul's shape.
func (s *Service) autopilotState(w http.ResponseWriter, _ *http.Request) {
	st := s.cfg.Autopilot.State()
	if st == nil || len(st.Servers) == 0 {
		httpError(w, http.StatusServiceUnavailable, cluster.ErrNoAutopilotState.Error())
		return
	}
	writeJSON(w, toAPIAutopilotState(st))
}

func toAPIAutopilotState(st *consensus.AutopilotState) api.AutopilotState {
	out := api.AutopilotState{
		Healthy: st.Healthy, FailureTolerance: st.FailureTolerance,
		Servers: make(map[string]api.AutopilotServer, len(st.Servers)), Voters: []string{},
	}
	healthyVoters := 0
	for _, srv := range st.Servers {
		status := "non-voter"
		switch {
		case srv.Leader:
			status = "leader"
			out.Leader = srv.ID
		case srv.Voter:
			status = "voter"
		}
		if srv.Voter {
			out.Voters = append(out.Voters, srv.ID)
			if srv.Healthy {
				healthyVoters++
			}
		}
		nodeStatus := srv.SerfStatus
		if nodeStatus == "" {
			nodeStatus = gossip.StatusNone.String()
		}
		out.Servers[srv.ID] = api.AutopilotServer{
			ID: srv.ID, Name: srv.Name, Address: srv.Address, NodeStatus: nodeStatus, Version: srv.Version,
			LastContact: api.NewReadableDuration(srv.Stats.LastContact),
			LastTerm:    srv.Stats.LastTerm, LastIndex: srv.Stats.LastIndex,
			Healthy: srv.Healthy, StableSince: srv.StableSince.Round(time.Second).UTC(),
			Status: status, Meta: map[string]string{}, NodeType: "voter",
		}
	}
	slices.Sort(out.Voters)
	// As raft-autopilot: how many healthy voters could fail with the
	// quorum kept, counting every voter as a failure only once it is
	// unhealthy.
	out.OptimisticFailureTolerance = max(0, healthyVoters-(len(out.Voters)/2+1))
	return out
}
