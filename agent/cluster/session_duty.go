package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/sessions"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// The leader's session duty: it runs the TTL timers (sessions.Timers) and
// invalidates the sessions of nodes that gossip says failed or left, as
// Consul's leader does (session_ttl.go, and the serfHealth check going
// critical or the node being deregistered).
//
//   - On gaining leadership it re-arms every TTL session at its full 2×TTL
//     (RearmAll); on losing it, it stops every timer.
//   - A member event (failed, left, reaped) starts a pass at once.
//   - Every sessionRepairInterval a pass repairs what a missed event left
//     behind. A pass destroys the sessions of failed nodes (with the
//     serfHealth check) and of nodes that left or were reaped; a node
//     absent from the member list counts as gone only once this server has
//     led for a whole interval, so that a leader whose gossip has not yet
//     heard of every node (it has just started) invalidates nothing by
//     mistake.
const (
	sessionRepairInterval = 30 * time.Second
	// sessionDestroyTimeout bounds one session-destroy.
	sessionDestroyTimeout = 10 * time.Second
	// sessionDestroyAttempts is how often an expiry is tried while this
	// server leads, as Consul's maxInvalidateAttempts.
	sessionDestroyAttempts = 6
)

// SessionNode is the part of consensus.Node the session duty uses.
type SessionNode interface {
	Apply(ctx context.Context, cmd consensus.Command) (consensus.Result, error)
	IsLeader() bool
	SessionList() []consensus.Session
}

// SessionMembers is the part of gossip.Pool the session duty uses.
type SessionMembers interface {
	Members() []gossip.Member
}

// SessionDuty is the leader's session work. Arm and Stop are what the
// HTTP API calls (httpapi.SessionTimers); Run is a leader duty; Event is
// fed by the gossip event loop.
type SessionDuty struct {
	logger hclog.Logger
	node   SessionNode
	pool   SessionMembers
	timers *sessions.Timers

	trigger chan struct{}

	mu       sync.Mutex
	reaped   map[string]bool // node names reaped since the last pass
	leading  bool            // Run is running
	settleAt time.Time       // when absent nodes start to count as gone
}

// NewSessionDuty returns the session duty of a server whose Raft node is
// node and whose gossip pool is pool.
func NewSessionDuty(logger hclog.Logger, node SessionNode, pool SessionMembers) *SessionDuty {
	d := &SessionDuty{logger: logger.Named("sessions"), node: node, pool: pool,
		trigger: make(chan struct{}, 1), reaped: map[string]bool{}}
	d.timers = sessions.NewTimers(d.expire)
	return d
}

// Arm starts or restarts the TTL timer of session id, while this server
// leads.
func (d *SessionDuty) Arm(id string, ttl time.Duration) {
	// Under mu, so that an Arm cannot fall between Run's reading of the
	// sessions and its RearmAll, which would drop the timer.
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leading && d.node.IsLeader() {
		d.timers.Arm(id, ttl)
	}
}

// Stop ends the TTL timer of session id.
func (d *SessionDuty) Stop(id string) { d.timers.Stop(id) }

// Event takes a gossip event: a failed, left or reaped member starts a
// pass. A reaped member is remembered, since it is gone from the member
// list.
func (d *SessionDuty) Event(e gossip.Event) {
	switch e.Type {
	case gossip.EventMemberReap:
		d.mu.Lock()
		for _, m := range e.Members {
			d.reaped[m.Name] = true
		}
		d.mu.Unlock()
	case gossip.EventMemberFailed, gossip.EventMemberLeave:
	default:
		return
	}
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// Run is the leader duty: timers re-armed, passes on events and every
// sessionRepairInterval, until ctx ends.
func (d *SessionDuty) Run(ctx context.Context) {
	d.mu.Lock()
	d.leading = true
	d.settleAt = time.Now().Add(sessionRepairInterval)
	d.timers.RearmAll(d.node.SessionList())
	d.mu.Unlock()
	d.logger.Info("gained leadership; session timers armed", "timers", d.timers.Len())
	defer func() {
		d.mu.Lock()
		d.leading = false
		d.mu.Unlock()
		d.timers.StopAll()
	}()
	t := time.NewTicker(sessionRepairInterval)
	defer t.Stop()
	for {
		d.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-d.trigger:
		case <-t.C:
		}
	}
}

// pass destroys every session that gossip says must go.
func (d *SessionDuty) pass(ctx context.Context) {
	d.mu.Lock()
	reaped := d.reaped
	d.reaped = map[string]bool{}
	settled := !time.Now().Before(d.settleAt)
	d.mu.Unlock()
	list := d.node.SessionList()
	if len(list) == 0 {
		return
	}
	for _, id := range staleSessions(list, d.pool.Members(), reaped, settled) {
		if ctx.Err() != nil {
			return
		}
		d.logger.Info("invalidating session: its node failed or left", "session", id)
		d.destroy(ctx, id)
	}
}

// staleSessions returns, sorted and once each, the IDs of the sessions of
// list that gossip invalidates: the node failed (sessions with the
// serfHealth check), left, was reaped, or (when settled) is not in the
// member list at all. It is the pure core of a pass.
func staleSessions(list []consensus.Session, members []gossip.Member, reaped map[string]bool, settled bool) []string {
	status := make(map[string]gossip.Status, len(members))
	for _, m := range members {
		status[m.Name] = m.Status
	}
	nodes := map[string]sessions.NodeChange{}
	for _, s := range list {
		st, known := status[s.Node]
		switch {
		case reaped[s.Node] && st != gossip.StatusAlive, known && st == gossip.StatusLeft, !known && settled:
			nodes[s.Node] = sessions.NodeLeft
		case known && st == gossip.StatusFailed:
			nodes[s.Node] = sessions.NodeFailed
		}
	}
	seen := map[string]bool{}
	var ids []string
	for node, change := range nodes {
		for _, id := range sessions.ToInvalidate(list, node, change) {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// expire is the timers' callback: the session's TTL ran out.
func (d *SessionDuty) expire(id string) {
	d.logger.Info("session TTL expired; invalidating it", "session", id)
	d.destroy(context.Background(), id)
}

// destroy applies a session-destroy, retrying while this server leads.
func (d *SessionDuty) destroy(ctx context.Context, id string) {
	var err error
	for attempt := 1; attempt <= sessionDestroyAttempts; attempt++ {
		actx, cancel := context.WithTimeout(ctx, sessionDestroyTimeout)
		_, err = d.node.Apply(actx, consensus.Command{Op: consensus.OpSessionDestroy, Session: consensus.Session{ID: id}})
		cancel()
		if err == nil {
			d.timers.Stop(id)
			return
		}
		if ctx.Err() != nil || !d.node.IsLeader() || errors.Is(err, consensus.ErrShutdown) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	d.logger.Warn("failed to invalidate session; a new leader will", "session", id, "error", err)
}
