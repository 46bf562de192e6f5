package consensus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

// The leader runs hashicorp/raft-autopilot, as Consul and Nomad do, for one
// purpose only: to know how healthy each server is. It never changes the
// Raft configuration; the agent's reconciler stays the only writer of
// membership. Three things make sure of that: reconciliation (promotions,
// demotions, leadership transfers, dead-server pruning) is disabled,
// CleanupDeadServers is off, and the Raft it is given is a read-only view
// (autopilotRaft) whose every change fails.
//
// Autopilot's own types (raft.ServerID keys, autopilot.Server) stay in
// this file: the application answers through AutopilotDelegate, in this
// package's types.

const (
	// AutopilotUpdateInterval is how often the leader refreshes its view:
	// it asks every server for its Raft stats, each within half of it.
	AutopilotUpdateInterval = 500 * time.Millisecond

	// MaxTrailingLogs is how many entries a server may be behind the
	// leader's last index and still count as healthy (Consul's default).
	MaxTrailingLogs = 250

	// minLastContactThreshold is the least time without contact from the
	// leader after which a server is unhealthy; see LastContactThreshold.
	minLastContactThreshold = time.Second

	// defaultStabilizationTime is autopilot's stabilization time. It only
	// matters for promotions, which are disabled; StableSince is reported
	// either way.
	defaultStabilizationTime = 10 * time.Second

	// metaSerfStatus is the autopilot.Server Meta key that holds the
	// gossip status, reported as SerfStatus.
	metaSerfStatus = "serf_status"
)

// errReadOnlyRaft is what every configuration change autopilot asks for
// fails with.
var errReadOnlyRaft = errors.New("autopilot may not change the raft configuration; the reconciler owns it")

// LastContactThreshold is how long a server may go without contact from
// the leader before it is unhealthy: Raft's heartbeat timeout (a follower
// that has not heard from the leader for that long starts to campaign),
// but at least one second, so that one lost stats request does not flip a
// server to unhealthy.
func LastContactThreshold(multiplier int) time.Duration {
	return max(TimingFor(multiplier).HeartbeatTimeout, minLastContactThreshold)
}

// RaftReader is the read-only part of a Node that autopilot and the
// health checks use; tests give it an in-memory Raft.
type RaftReader interface {
	Configuration() ([]Server, uint64, error)
	Leader() (addr, id string)
	State() State
	Stats() map[string]string
	LastIndex() uint64
	CommitIndex() uint64
}

var _ RaftReader = (*Node)(nil)

// MemberStatus is a server's gossip status as autopilot counts it.
type MemberStatus int

// The member statuses autopilot knows. A leaving server counts as left.
const (
	MemberUnknown MemberStatus = iota
	MemberAlive
	MemberLeft
	MemberFailed
)

// AutopilotServer is a server the application knows of.
type AutopilotServer struct {
	ID, Name, Address, Version string
	Status                     MemberStatus
	// SerfStatus is the gossip status in words, reported as is.
	SerfStatus string
}

// AutopilotDelegate is what autopilot asks the application.
type AutopilotDelegate interface {
	// KnownServers lists the servers of this datacenter.
	KnownServers() []AutopilotServer
	// FetchServerStats returns the stats of each server, by ID, within ctx.
	FetchServerStats(ctx context.Context, servers []AutopilotServer) map[string]ServerStats
	// NotifyHealth is told every new view.
	NotifyHealth(AutopilotState)
}

// AutopilotState is the leader's view of the servers' health.
type AutopilotState struct {
	Healthy          bool
	FailureTolerance int
	Servers          []AutopilotServerState
}

// AutopilotServerState is one server in an AutopilotState.
type AutopilotServerState struct {
	AutopilotServer
	Leader, Voter, Healthy bool
	Stats                  ServerStats
	StableSince            time.Time
}

// AutopilotOptions configures an Autopilot.
type AutopilotOptions struct {
	// Delegate answers autopilot's questions. Required.
	Delegate AutopilotDelegate
	// Multiplier is the raft_multiplier; it sets the last-contact
	// threshold (LastContactThreshold).
	Multiplier int
	// UpdateInterval is how often the view is refreshed. Default
	// AutopilotUpdateInterval.
	UpdateInterval time.Duration
	// StabilizationTime is how long a server must be healthy to count as
	// stable. Default 10 s.
	StabilizationTime time.Duration
	// Logger is the parent logger. Optional.
	Logger hclog.Logger
	// Stored returns the replicated autopilot configuration, false when
	// none is stored. Optional: without it, or while it returns false,
	// autopilot runs with DefaultAutopilotConfig. Only its
	// LastContactThreshold and MaxTrailingLogs take effect (libraryConfig).
	Stored func() (AutopilotConfig, bool)
}

// Autopilot runs raft-autopilot on a read-only view of a node's Raft.
type Autopilot struct {
	ap   *autopilot.Autopilot
	raft *autopilotRaft
}

// NewAutopilot builds an Autopilot for r (a *Node in the agent); Run
// starts it.
func NewAutopilot(r RaftReader, cfg AutopilotOptions) *Autopilot {
	return newAutopilot(r, cfg)
}

func newAutopilot(r RaftReader, cfg AutopilotOptions, opts ...autopilot.Option) *Autopilot {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.UpdateInterval <= 0 {
		cfg.UpdateInterval = AutopilotUpdateInterval
	}
	if cfg.StabilizationTime <= 0 {
		cfg.StabilizationTime = defaultStabilizationTime
	}
	ar := &autopilotRaft{view: r}
	defaults := DefaultAutopilotConfig(cfg.Multiplier)
	defaults.ServerStabilizationTime = cfg.StabilizationTime
	d := &autopilotApp{
		view:     r,
		delegate: cfg.Delegate,
		logger:   cfg.Logger,
		config:   libraryConfig(defaults),
		stored:   cfg.Stored,
	}
	opts = append([]autopilot.Option{
		autopilot.WithLogger(cfg.Logger),
		autopilot.WithUpdateInterval(cfg.UpdateInterval),
		autopilot.WithReconciliationDisabled(),
	}, opts...)
	return &Autopilot{ap: autopilot.New(ar, d, opts...), raft: ar}
}

// Run runs autopilot until ctx ends (the agent ends it when leadership
// is lost) and waits for its goroutines.
func (p *Autopilot) Run(ctx context.Context) {
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

// State returns the current view, or nil before the first one.
func (p *Autopilot) State() *AutopilotState {
	s := p.ap.GetState()
	if s == nil {
		return nil
	}
	st := stateFrom(s)
	return &st
}

func stateFrom(s *autopilot.State) AutopilotState {
	out := AutopilotState{Healthy: s.Healthy, FailureTolerance: s.FailureTolerance}
	for id, srv := range s.Servers {
		out.Servers = append(out.Servers, AutopilotServerState{
			AutopilotServer: AutopilotServer{
				ID: string(id), Name: srv.Server.Name, Address: string(srv.Server.Address),
				Version: srv.Server.Version, SerfStatus: srv.Server.Meta[metaSerfStatus],
			},
			Leader:      srv.State == autopilot.RaftLeader,
			Voter:       srv.HasVotingRights(),
			Healthy:     srv.Health.Healthy,
			Stats:       ServerStats{LastContact: srv.Stats.LastContact, LastTerm: srv.Stats.LastTerm, LastIndex: srv.Stats.LastIndex},
			StableSince: srv.Health.StableSince,
		})
	}
	return out
}

// autopilotApp is autopilot's ApplicationIntegration: it turns the
// delegate's answers into autopilot's types.
type autopilotApp struct {
	view     RaftReader
	delegate AutopilotDelegate
	logger   hclog.Logger
	config   *autopilot.Config
	stored   func() (AutopilotConfig, bool)
}

func (d *autopilotApp) AutopilotConfig() *autopilot.Config { return d.currentConfig() }

func (d *autopilotApp) KnownServers() map[raft.ServerID]*autopilot.Server {
	_, leaderID := d.view.Leader()
	out := make(map[raft.ServerID]*autopilot.Server)
	for _, s := range d.delegate.KnownServers() {
		id := raft.ServerID(s.ID)
		if prev, ok := out[id]; ok && prev.NodeStatus == autopilot.NodeAlive {
			continue // an alive member wins over a departed one with the same ID
		}
		out[id] = &autopilot.Server{
			ID:          id,
			Name:        s.Name,
			Address:     raft.ServerAddress(s.Address),
			NodeStatus:  nodeStatus(s.Status),
			Version:     s.Version,
			Meta:        map[string]string{metaSerfStatus: s.SerfStatus},
			RaftVersion: 3,
			IsLeader:    s.ID == leaderID,
		}
	}
	return out
}

func nodeStatus(s MemberStatus) autopilot.NodeStatus {
	switch s {
	case MemberAlive:
		return autopilot.NodeAlive
	case MemberLeft:
		return autopilot.NodeLeft
	case MemberFailed:
		return autopilot.NodeFailed
	}
	return autopilot.NodeUnknown
}

func (d *autopilotApp) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	list := make([]AutopilotServer, 0, len(servers))
	for id, s := range servers {
		list = append(list, AutopilotServer{ID: string(id), Name: s.Name, Address: string(s.Address), Version: s.Version})
	}
	out := make(map[raft.ServerID]*autopilot.ServerStats, len(servers))
	for id, st := range d.delegate.FetchServerStats(ctx, list) {
		out[raft.ServerID(id)] = &autopilot.ServerStats{LastContact: st.LastContact, LastTerm: st.LastTerm, LastIndex: st.LastIndex}
	}
	return out
}

func (d *autopilotApp) NotifyState(s *autopilot.State) { d.delegate.NotifyHealth(stateFrom(s)) }

// RemoveFailedServer is never called: CleanupDeadServers is off and
// reconciliation disabled. Removing servers is the reconciler's job.
func (d *autopilotApp) RemoveFailedServer(srv *autopilot.Server) {
	d.logger.Warn("ignoring autopilot's request to remove a failed server", "server", srv.Name, "id", srv.ID)
}

// autopilotRaft is the Raft autopilot is given: reads go to the node, and
// every change fails with errReadOnlyRaft. GetConfiguration returns the
// latest configuration known to be committed, so that a server counts as
// a voter only once its vote is committed.
type autopilotRaft struct {
	view RaftReader

	mu sync.Mutex
	// pending is the latest configuration seen, and pendingAt the last log
	// index when it was first seen: the entry that made it is at or below
	// pendingAt, so it is committed once the commit index reaches
	// pendingAt.
	pending   []Server
	pendingAt uint64
	committed []Server
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
func (r *autopilotRaft) observe(latest []Server, lastIndex, commitIndex uint64) (committed []Server, ok bool) {
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

func (r *autopilotRaft) State() raft.RaftState { return r.view.State().raftState() }

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
