package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/gossip"
)

// The /v1/operator endpoints: the Raft configuration, autopilot's health
// view and the bootstrap state (/v1/operator/discover is in discover.go).

func (s *Service) raftConfiguration(w http.ResponseWriter, _ *http.Request) {
	servers, index, err := s.store.Configuration()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	names := make(map[string]string)
	for _, m := range s.cfg.Pool.Members() {
		if srv, ok := gossip.ParseServer(m); ok {
			names[srv.ID] = srv.Name
		}
	}
	_, leaderID := s.store.Leader()
	out := api.RaftConfiguration{Servers: []*api.RaftServer{}, Index: index}
	for _, srv := range servers {
		out.Servers = append(out.Servers, &api.RaftServer{
			ID: srv.ID, Node: names[srv.ID], Address: srv.Address,
			Leader: srv.ID == leaderID, Voter: srv.Voter, ProtocolVersion: "3",
		})
	}
	writeJSON(w, out)
}

func (s *Service) raftRemovePeer(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		httpError(w, http.StatusBadRequest, "Must specify ?id with the server ID to remove")
		return
	}
	servers, _, err := s.store.Configuration()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	found := false
	for _, srv := range servers {
		found = found || srv.ID == id
	}
	if !found {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("id %q was not found in the Raft configuration", id))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := s.store.RemoveServer(ctx, id); err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, nil)
}

func (s *Service) operatorBootstrap(w http.ResponseWriter, _ *http.Request) {
	st := s.cfg.Bootstrap.Status()
	st.ClusterID = s.cfg.Identity().ClusterID
	writeJSON(w, st)
}

// autopilotHealth answers GET /v1/operator/autopilot/health on the leader:
// 200 when every server is healthy, 429 otherwise, as Consul does.
func (s *Service) autopilotHealth(w http.ResponseWriter, _ *http.Request) {
	reply, err := cluster.HealthReply(s.cfg.Autopilot.State())
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	code := http.StatusOK
	if !reply.Healthy {
		code = http.StatusTooManyRequests
	}
	writeJSONStatus(w, code, reply)
}

// The internal routes of the server port, which only other servers call.

// identity answers who this server is: the leader's reconciler asks before
// it adds it as a voter.
func (s *Service) identity(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.cfg.Identity())
}

// bootstrapClaim answers another server's bootstrap claim.
func (s *Service) bootstrapClaim(w http.ResponseWriter, r *http.Request) {
	var c cluster.Claim
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&c); err != nil {
		httpError(w, http.StatusBadRequest, "malformed claim: "+err.Error())
		return
	}
	writeJSON(w, s.cfg.Bootstrap.Answer(c))
}

// bootstrapRelease takes the withdrawal of a claim that failed.
func (s *Service) bootstrapRelease(w http.ResponseWriter, r *http.Request) {
	var c cluster.Claim
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&c); err != nil {
		httpError(w, http.StatusBadRequest, "malformed release: "+err.Error())
		return
	}
	s.cfg.Bootstrap.Release(c)
	writeJSON(w, nil)
}

// raftStats answers the leader's autopilot with this server's Raft stats.
func (s *Service) raftStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.store.RaftStats())
}
