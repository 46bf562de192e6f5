package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// The leader runs hashicorp/raft-autopilot, as Consul and Nomad do, for one
// purpose only: to know how healthy each server is. It never changes the
// Raft configuration; the reconciler (reconcile.go) stays the only writer
// of membership. Three things make sure of that: reconciliation (promotions,
// demotions, leadership transfers, dead-server pruning) is disabled,
// CleanupDeadServers is off, and the Raft it is given is a read-only view
// whose every change fails.
const (
	// autopilotUpdateInterval is how often the leader refreshes its view:
	// it asks every server for its Raft stats, each within half of it.
	// The rollout gate reacts within one or two intervals.
	autopilotUpdateInterval = 500 * time.Millisecond

	// maxTrailingLogs is how many entries a server may be behind the
	// leader's last index and still count as healthy (Consul's default).
	// The rollout gate applies the same margin to this server's applied
	// index.
	maxTrailingLogs = 250

	// minLastContactThreshold is the least time without contact from the
	// leader after which a server is unhealthy; see lastContactThreshold.
	minLastContactThreshold = time.Second

	// serverStabilizationTime is autopilot's stabilization time. It only
	// matters for promotions, which are disabled; StableSince is reported
	// either way.
	serverStabilizationTime = 10 * time.Second

	// raftStatsPath is the internal route on the server port that answers
	// a server's Raft stats to the leader's autopilot.
	raftStatsPath = "/internal/raft/stats"

	// metaSerfStatus is the autopilot.Server Meta key that holds the
	// gossip status, reported as SerfStatus.
	metaSerfStatus = "serf_status"
)

var (
	// errReadOnlyRaft is what every configuration change autopilot asks
	// for fails with.
	errReadOnlyRaft = errors.New("autopilot may not change the raft configuration; the reconciler owns it")
	// errNoAutopilotState is answered (503) while the leader has not yet
	// built its first view, just after it was elected.
	errNoAutopilotState = errors.New("autopilot has no view of the servers yet; retry")
)

// lastContactThreshold is how long a server may go without contact from
// the leader before it is unhealthy: Raft's heartbeat timeout (a follower
// that has not heard from the leader for that long starts to campaign),
// but at least minLastContactThreshold, so that one lost stats request
// (autopilotUpdateInterval) does not flip a server to unhealthy.
func lastContactThreshold(multiplier int) time.Duration {
	return max(consensus.TimingFor(multiplier).HeartbeatTimeout, minLastContactThreshold)
}

// raftView is the read-only part of consensus.Node that autopilot and the
// health checks use; the tests give it an in-memory Raft.
type raftView interface {
	Configuration() ([]consensus.Server, uint64, error)
	Leader() (addr, id string)
	State() string
	Stats() map[string]string
	LastIndex() uint64
	CommitIndex() uint64
}

var _ raftView = (*consensus.Node)(nil)

// raftStats is the answer of GET /internal/raft/stats: what the leader's
// autopilot needs from each server (Consul's RaftStats).
type raftStats struct {
	// LastContact is Raft's last_contact stat: "0" on the leader, "never"
	// on a server that has not heard from one, else a duration string.
	LastContact string
	// LastTerm is the term of the last entry in the log.
	LastTerm uint64
	// LastIndex is the index of the last entry in the log or snapshot.
	LastIndex uint64
}

// localRaftStats reads r's own stats.
func localRaftStats(r raftView) raftStats {
	s := r.Stats()
	term, _ := strconv.ParseUint(s["last_log_term"], 10, 64)
	return raftStats{LastContact: s["last_contact"], LastTerm: term, LastIndex: r.LastIndex()}
}

// serverStats converts s to autopilot's form. A server that never heard
// from a leader gets a negative LastContact, which autopilot counts as
// unhealthy.
func (s raftStats) serverStats() autopilot.ServerStats {
	contact, err := time.ParseDuration(s.LastContact)
	if err != nil {
		contact = -1
	}
	return autopilot.ServerStats{LastContact: contact, LastTerm: s.LastTerm, LastIndex: s.LastIndex}
}

// fetchRaftStats asks the server whose server port is at addr for its
// Raft stats.
func (c *serverClient) fetchRaftStats(ctx context.Context, addr string) (raftStats, error) {
	var out raftStats
	err := c.get(ctx, addr, raftStatsPath, &out)
	return out, err
}

// autopilotRaft is the Raft autopilot is given: reads go to the node, and
// every change fails with errReadOnlyRaft. GetConfiguration returns the
// latest configuration known to be committed, so that a server counts as
// a voter only once its vote is committed.
type autopilotRaft struct {
	view raftView

	mu sync.Mutex
	// pending is the latest configuration seen, and pendingAt the last log
	// index when it was first seen: the entry that made it is at or below
	// pendingAt, so it is committed once the commit index reaches
	// pendingAt.
	pending   []consensus.Server
	pendingAt uint64
	committed []consensus.Server
	known     bool // committed holds a configuration
}

// reset forgets what the previous period of leadership saw.
func (r *autopilotRaft) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending, r.pendingAt, r.committed, r.known = nil, 0, nil, false
}

// observe records latest, read before lastIndex and commitIndex, and
// returns the latest configuration known to be committed; ok is false
// while there is none.
func (r *autopilotRaft) observe(latest []consensus.Server, lastIndex, commitIndex uint64) (committed []consensus.Server, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil || !slices.Equal(latest, r.pending) {
		r.pending, r.pendingAt = slices.Clone(latest), lastIndex
	}
	if commitIndex >= r.pendingAt {
		r.committed, r.known = r.pending, true
	}
	return r.committed, r.known
}

// waitCommitted waits until the configuration seen last is committed, for
// at most max or until ctx ends.
func (r *autopilotRaft) waitCommitted(ctx context.Context, max time.Duration) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	timeout := time.After(max)
	for {
		r.mu.Lock()
		mark := r.pendingAt
		r.mu.Unlock()
		if r.view.CommitIndex() >= mark {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-timeout:
			return
		case <-t.C:
		}
	}
}

func (r *autopilotRaft) GetConfiguration() raft.ConfigurationFuture {
	latest, _, err := r.view.Configuration()
	if err != nil {
		return configFuture{err: err}
	}
	// Read the indexes after the configuration: the entry that made it is
	// then at or below lastIndex.
	lastIndex := r.view.LastIndex()
	committed, _ := r.observe(latest, lastIndex, r.view.CommitIndex())
	// Until a configuration is known to be committed, autopilot sees none:
	// its view stays empty and the health endpoint answers 503.
	var conf raft.Configuration
	for _, s := range committed {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
	}
	return configFuture{conf: conf}
}

func (r *autopilotRaft) LastIndex() uint64 { return r.view.LastIndex() }

func (r *autopilotRaft) Leader() raft.ServerAddress {
	addr, _ := r.view.Leader()
	return raft.ServerAddress(addr)
}

func (r *autopilotRaft) Stats() map[string]string { return r.view.Stats() }

func (r *autopilotRaft) State() raft.RaftState {
	for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		if s.String() == r.view.State() {
			return s
		}
	}
	return raft.Shutdown
}

func (r *autopilotRaft) AddNonvoter(raft.ServerID, raft.ServerAddress, uint64, time.Duration) raft.IndexFuture {
	return configFuture{err: errReadOnlyRaft}
}

func (r *autopilotRaft) AddVoter(raft.ServerID, raft.ServerAddress, uint64, time.Duration) raft.IndexFuture {
	return configFuture{err: errReadOnlyRaft}
}

func (r *autopilotRaft) DemoteVoter(raft.ServerID, uint64, time.Duration) raft.IndexFuture {
	return configFuture{err: errReadOnlyRaft}
}

func (r *autopilotRaft) RemoveServer(raft.ServerID, uint64, time.Duration) raft.IndexFuture {
	return configFuture{err: errReadOnlyRaft}
}

func (r *autopilotRaft) LeadershipTransferToServer(raft.ServerID, raft.ServerAddress) raft.Future {
	return configFuture{err: errReadOnlyRaft}
}

// configFuture is a raft.ConfigurationFuture that is already resolved; it
// also serves as the failed IndexFuture and Future of refused changes.
type configFuture struct {
	conf raft.Configuration
	err  error
}

func (f configFuture) Error() error                      { return f.err }
func (f configFuture) Index() uint64                     { return 0 }
func (f configFuture) Configuration() raft.Configuration { return f.conf }

// autopilotDelegate is autopilot's ApplicationIntegration: servers come
// from gossip, stats from each server's internal route.
type autopilotDelegate struct {
	logger hclog.Logger
	view   raftView
	pool   memberSource
	selfID string
	dc     string
	config *autopilot.Config
	// fetch asks the server at a Raft address for its stats; the leader's
	// own come from view.
	fetch func(ctx context.Context, addr string) (raftStats, error)

	mu      sync.Mutex
	last    map[raft.ServerID]fetchedStats // last stats each server answered
	failing map[raft.ServerID]bool         // the last fetch failed
	healthy map[raft.ServerID]bool         // as of the last NotifyState
}

type fetchedStats struct {
	stats autopilot.ServerStats
	at    time.Time
}

func newAutopilotDelegate(logger hclog.Logger, view raftView, pool memberSource, selfID, dc string, multiplier int,
	fetch func(ctx context.Context, addr string) (raftStats, error)) *autopilotDelegate {
	return &autopilotDelegate{
		logger: logger,
		view:   view,
		pool:   pool,
		selfID: selfID,
		dc:     dc,
		config: &autopilot.Config{
			CleanupDeadServers:      false,
			LastContactThreshold:    lastContactThreshold(multiplier),
			MaxTrailingLogs:         maxTrailingLogs,
			ServerStabilizationTime: serverStabilizationTime,
		},
		fetch:   fetch,
		last:    make(map[raft.ServerID]fetchedStats),
		failing: make(map[raft.ServerID]bool),
		healthy: make(map[raft.ServerID]bool),
	}
}

func (d *autopilotDelegate) AutopilotConfig() *autopilot.Config { return d.config }

// KnownServers lists the servers of this datacenter in the gossip pool.
func (d *autopilotDelegate) KnownServers() map[raft.ServerID]*autopilot.Server {
	_, leaderID := d.view.Leader()
	out := make(map[raft.ServerID]*autopilot.Server)
	for _, m := range d.pool.Members() {
		s, ok := gossip.ParseServer(m)
		if !ok || s.Datacenter != d.dc {
			continue
		}
		id := raft.ServerID(s.ID)
		if prev, ok := out[id]; ok && prev.NodeStatus == autopilot.NodeAlive {
			continue // an alive member wins over a departed one with the same ID
		}
		out[id] = &autopilot.Server{
			ID:          id,
			Name:        s.Name,
			Address:     raft.ServerAddress(s.RaftAddr()),
			NodeStatus:  nodeStatus(m.Status),
			Version:     s.Version,
			Meta:        map[string]string{metaSerfStatus: m.Status.String()},
			RaftVersion: 3,
			IsLeader:    s.ID == leaderID,
		}
	}
	return out
}

// nodeStatus maps a gossip status to autopilot's. A leaving server counts
// as left: it is going away, so it is not healthy.
func nodeStatus(s serf.MemberStatus) autopilot.NodeStatus {
	switch s {
	case serf.StatusAlive:
		return autopilot.NodeAlive
	case serf.StatusLeaving, serf.StatusLeft:
		return autopilot.NodeLeft
	case serf.StatusFailed:
		return autopilot.NodeFailed
	}
	return autopilot.NodeUnknown
}

// FetchServerStats asks every server for its stats at once, within ctx
// (half an update interval). A server that does not answer keeps the
// stats it last answered, with its LastContact grown by the time since
// then: after minLastContactThreshold without an answer it is unhealthy,
// rather than healthy on stale numbers until gossip declares it failed.
func (d *autopilotDelegate) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	type result struct {
		id    raft.ServerID
		name  string
		stats raftStats
		err   error
	}
	results := make(chan result, len(servers))
	var wg sync.WaitGroup
	for id, srv := range servers {
		wg.Go(func() {
			if string(id) == d.selfID {
				results <- result{id: id, name: srv.Name, stats: localRaftStats(d.view)}
				return
			}
			st, err := d.fetch(ctx, string(srv.Address))
			results <- result{id: id, name: srv.Name, stats: st, err: err}
		})
	}
	wg.Wait()
	close(results)

	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range d.last {
		if _, ok := servers[id]; !ok {
			delete(d.last, id)
			delete(d.failing, id)
		}
	}
	out := make(map[raft.ServerID]*autopilot.ServerStats, len(servers))
	for r := range results {
		if r.err == nil {
			st := r.stats.serverStats()
			d.last[r.id] = fetchedStats{stats: st, at: now}
			out[r.id] = &st
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
		st := autopilot.ServerStats{LastContact: -1}
		if prev, ok := d.last[r.id]; ok {
			st = prev.stats
			if st.LastContact >= 0 {
				st.LastContact += now.Sub(prev.at)
			}
		}
		out[r.id] = &st
	}
	return out
}

// NotifyState logs every change of a server's health.
func (d *autopilotDelegate) NotifyState(s *autopilot.State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, srv := range s.Servers {
		if was, ok := d.healthy[id]; !ok || was != srv.Health.Healthy {
			d.logger.Info("server health", "server", srv.Server.Name, "id", id, "healthy", srv.Health.Healthy,
				"failure_tolerance", s.FailureTolerance)
			d.healthy[id] = srv.Health.Healthy
		}
	}
	for id := range d.healthy {
		if _, ok := s.Servers[id]; !ok {
			delete(d.healthy, id)
		}
	}
}

// RemoveFailedServer is never called: CleanupDeadServers is off and
// reconciliation disabled. Removing servers is the reconciler's job.
func (d *autopilotDelegate) RemoveFailedServer(srv *autopilot.Server) {
	d.logger.Warn("ignoring autopilot's request to remove a failed server", "server", srv.Name, "id", srv.ID)
}

// pilot runs autopilot while this server leads.
type pilot struct {
	ap   *autopilot.Autopilot
	raft *autopilotRaft
}

// newPilot builds the autopilot; opts come after the defaults (tests
// shorten intervals with them).
func newPilot(logger hclog.Logger, view raftView, d *autopilotDelegate, opts ...autopilot.Option) *pilot {
	r := &autopilotRaft{view: view}
	opts = append([]autopilot.Option{
		autopilot.WithLogger(logger),
		autopilot.WithUpdateInterval(autopilotUpdateInterval),
		autopilot.WithReconciliationDisabled(),
	}, opts...)
	return &pilot{ap: autopilot.New(r, d, opts...), raft: r}
}

// run is a leader task (see reconciler.tasks): autopilot runs until ctx
// ends, that is until leadership is lost or the agent stops.
func (p *pilot) run(ctx context.Context) {
	p.raft.reset()
	// Start builds the first view at once. Give it the servers: note the
	// configuration this leader inherited, and wait (briefly) until it is
	// committed, which this leader's first entry does within a round trip.
	p.raft.GetConfiguration()
	p.raft.waitCommitted(ctx, time.Second)
	p.ap.Start(ctx)
	<-ctx.Done()
	<-p.ap.Stop()
}

// health is the leader's current view in Consul's shape, servers sorted
// by name.
func (p *pilot) health() (*api.OperatorHealthReply, error) {
	s := p.ap.GetState()
	if s == nil || len(s.Servers) == 0 {
		return nil, errNoAutopilotState
	}
	out := &api.OperatorHealthReply{Healthy: s.Healthy, FailureTolerance: s.FailureTolerance, Servers: []api.ServerHealth{}}
	for id, srv := range s.Servers {
		status := srv.Server.Meta[metaSerfStatus]
		if status == "" {
			status = serf.StatusNone.String()
		}
		out.Servers = append(out.Servers, api.ServerHealth{
			ID:          string(id),
			Name:        srv.Server.Name,
			Address:     string(srv.Server.Address),
			SerfStatus:  status,
			Version:     srv.Server.Version,
			Leader:      srv.State == autopilot.RaftLeader,
			LastContact: api.NewReadableDuration(srv.Stats.LastContact),
			LastTerm:    srv.Stats.LastTerm,
			LastIndex:   srv.Stats.LastIndex,
			Healthy:     srv.Health.Healthy,
			Voter:       srv.HasVotingRights(),
			StableSince: srv.Health.StableSince.Round(time.Second).UTC(),
		})
	}
	slices.SortFunc(out.Servers, func(a, b api.ServerHealth) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// operatorAutopilotHealth answers GET /v1/operator/autopilot/health on the
// leader: 200 when every server is healthy, 429 otherwise, as Consul does.
func (a *Agent) operatorAutopilotHealth(w http.ResponseWriter, _ *http.Request) {
	reply, err := a.pilot.health()
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

// internalRaftStats answers GET /internal/raft/stats on the server port.
func (a *Agent) internalRaftStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, localRaftStats(a.node))
}

// writeJSONStatus is writeJSON with a status code other than 200.
func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
