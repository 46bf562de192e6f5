package cluster

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// RaftStatsPath is the internal route on the server port that answers a
// server's Raft stats (consensus.RaftStats) to the leader's autopilot.
const RaftStatsPath = "/internal/raft/stats"

// ErrNoAutopilotState is answered (503) while the leader has not yet built
// its first view, just after it was elected.
var ErrNoAutopilotState = errors.New("autopilot has no view of the servers yet; retry")

// AutopilotDelegate answers the leader's autopilot (consensus.Autopilot)
// from gossip: which servers exist, and their Raft stats, fetched from
// each over the server port. This is the part of autopilot that knows
// gossip; the part that knows Raft is in consensus.
type AutopilotDelegate struct {
	logger hclog.Logger
	local  func() consensus.RaftStats
	pool   Members
	selfID string
	dc     string
	// fetch asks the server at a Raft address for its stats; the leader's
	// own come from local.
	fetch func(ctx context.Context, addr string) (consensus.RaftStats, error)

	mu      sync.Mutex
	last    map[string]fetchedStats // last stats each server answered, by ID
	failing map[string]bool         // the last fetch failed
	healthy map[string]bool         // as of the last NotifyHealth
}

type fetchedStats struct {
	stats consensus.ServerStats
	at    time.Time
}

// NewAutopilotDelegate returns the delegate of server selfID in datacenter
// dc: local reads its own stats, fetch another server's.
func NewAutopilotDelegate(logger hclog.Logger, local func() consensus.RaftStats, pool Members, selfID, dc string,
	fetch func(ctx context.Context, addr string) (consensus.RaftStats, error)) *AutopilotDelegate {
	return &AutopilotDelegate{
		logger:  logger,
		local:   local,
		pool:    pool,
		selfID:  selfID,
		dc:      dc,
		fetch:   fetch,
		last:    make(map[string]fetchedStats),
		failing: make(map[string]bool),
		healthy: make(map[string]bool),
	}
}

// KnownServers lists the servers of this datacenter in the gossip pool.
func (d *AutopilotDelegate) KnownServers() []consensus.AutopilotServer {
	var out []consensus.AutopilotServer
	for _, m := range d.pool.Members() {
		s, ok := gossip.ParseServer(m)
		if !ok || s.Datacenter != d.dc {
			continue
		}
		out = append(out, consensus.AutopilotServer{
			ID: s.ID, Name: s.Name, Address: s.RaftAddr(), Version: s.Version,
			Status: memberStatus(m.Status), SerfStatus: m.Status.String(),
		})
	}
	return out
}

// memberStatus maps a gossip status to autopilot's. A leaving server
// counts as left: it is going away, so it is not healthy.
func memberStatus(s gossip.Status) consensus.MemberStatus {
	switch s {
	case gossip.StatusAlive:
		return consensus.MemberAlive
	case gossip.StatusLeaving, gossip.StatusLeft:
		return consensus.MemberLeft
	case gossip.StatusFailed:
		return consensus.MemberFailed
	}
	return consensus.MemberUnknown
}

// FetchServerStats asks every server for its stats at once, within ctx
// (half an update interval). A server that does not answer keeps the
// stats it last answered, with its LastContact grown by the time since
// then: past the last-contact threshold without an answer it is
// unhealthy, rather than healthy on stale numbers until gossip declares
// it failed.
func (d *AutopilotDelegate) FetchServerStats(ctx context.Context, servers []consensus.AutopilotServer) map[string]consensus.ServerStats {
	results := make(chan statsResult, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			if srv.ID == d.selfID {
				results <- statsResult{id: srv.ID, name: srv.Name, stats: d.local()}
				return
			}
			st, err := d.fetch(ctx, srv.Address)
			results <- statsResult{id: srv.ID, name: srv.Name, stats: st, err: err}
		})
	}
	wg.Wait()
	close(results)
	return d.record(servers, results)
}

type statsResult struct {
	id, name string
	stats    consensus.RaftStats
	err      error
}

// record keeps what answered and ages what did not.
func (d *AutopilotDelegate) record(servers []consensus.AutopilotServer, results <-chan statsResult) map[string]consensus.ServerStats {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	current := make(map[string]bool, len(servers))
	for _, s := range servers {
		current[s.ID] = true
	}
	for id := range d.last {
		if !current[id] {
			delete(d.last, id)
			delete(d.failing, id)
		}
	}
	out := make(map[string]consensus.ServerStats, len(servers))
	for r := range results {
		if r.err == nil {
			st := r.stats.ServerStats()
			d.last[r.id] = fetchedStats{stats: st, at: now}
			out[r.id] = st
			if d.failing[r.id] {
				d.logger.Info("server answers stats again", "server", r.name)
				delete(d.failing, r.id)
			}
			continue
		}
		if !d.failing[r.id] {
			d.logger.Warn("cannot fetch server stats", "server", r.name, "error", r.err)
			d.failing[r.id] = true
		}
		st := consensus.ServerStats{LastContact: -1}
		if prev, ok := d.last[r.id]; ok {
			st = prev.stats
			if st.LastContact >= 0 {
				st.LastContact += now.Sub(prev.at)
			}
		}
		out[r.id] = st
	}
	return out
}

// NotifyHealth logs every change of a server's health.
func (d *AutopilotDelegate) NotifyHealth(s consensus.AutopilotState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := make(map[string]bool, len(s.Servers))
	for _, srv := range s.Servers {
		seen[srv.ID] = true
		if was, ok := d.healthy[srv.ID]; !ok || was != srv.Healthy {
			d.logger.Info("server health", "server", srv.Name, "id", srv.ID, "healthy", srv.Healthy,
				"failure_tolerance", s.FailureTolerance)
			d.healthy[srv.ID] = srv.Healthy
		}
	}
	for id := range d.healthy {
		if !seen[id] {
			delete(d.healthy, id)
		}
	}
}

// HealthReply is the leader's autopilot view in Consul's shape, servers
// sorted by name; ErrNoAutopilotState before the first view.
func HealthReply(s *consensus.AutopilotState) (*api.OperatorHealthReply, error) {
	if s == nil || len(s.Servers) == 0 {
		return nil, ErrNoAutopilotState
	}
	out := &api.OperatorHealthReply{Healthy: s.Healthy, FailureTolerance: s.FailureTolerance, Servers: []api.ServerHealth{}}
	for _, srv := range s.Servers {
		status := srv.SerfStatus
		if status == "" {
			status = gossip.StatusNone.String()
		}
		out.Servers = append(out.Servers, api.ServerHealth{
			ID:          srv.ID,
			Name:        srv.Name,
			Address:     srv.Address,
			SerfStatus:  status,
			Version:     srv.Version,
			Leader:      srv.Leader,
			LastContact: api.NewReadableDuration(srv.Stats.LastContact),
			LastTerm:    srv.Stats.LastTerm,
			LastIndex:   srv.Stats.LastIndex,
			Healthy:     srv.Healthy,
			Voter:       srv.Voter,
			StableSince: srv.StableSince.Round(time.Second).UTC(),
		})
	}
	slices.SortFunc(out.Servers, func(a, b api.ServerHealth) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// TransferTarget picks the healthy voter, other than selfID, with the
// highest last index in the autopilot view s; ok is false when there is
// none, which leaves the choice to Raft.
func TransferTarget(s *consensus.AutopilotState, selfID string) (target consensus.AutopilotServerState, ok bool) {
	if s == nil {
		return target, false
	}
	for _, srv := range s.Servers {
		if srv.ID == selfID || !srv.Voter || !srv.Healthy {
			continue
		}
		if !ok || srv.Stats.LastIndex > target.Stats.LastIndex {
			target, ok = srv, true
		}
	}
	return target, ok
}
