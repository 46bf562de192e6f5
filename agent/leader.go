package agent

import (
	"context"
	"errors"
	"time"

	"github.com/conclavehq/conclave/agent/cluster"
)

// runLeader owns LeaderCh: for each period of this server's leadership it
// runs the leader's duties, and stops them when leadership is lost, until
// ctx ends.
func (a *Agent) runLeader(ctx context.Context) {
	cluster.WhileLeader(ctx, a.node, a.leaderDuties())
}

// leaderDuties are what a leader does while it leads, each in its own
// goroutine until leadership is lost or the agent stops.
func (a *Agent) leaderDuties() []cluster.Duty {
	duties := []cluster.Duty{
		// Turn gossip membership into Raft membership.
		a.recon.Run,
		// Keep the servers' health view (the rollout gate, the hand-off).
		a.pilot.Run,
	}
	if a.fsm == nil {
		// The cluster ID, the tombstones and the sessions live in the
		// key/value store's tables; an application's state machine has
		// none of them.
		duties = append(duties,
			// Expire sessions by TTL, and invalidate those of failed or
			// gone nodes.
			a.sess.Run,
			// Give the cluster its ID, if it has none yet: the first entry
			// of a new cluster's first leader.
			func(ctx context.Context) {
				cluster.EnsureClusterID(ctx, a.logger.Named("cluster_id"), a.node, a.ClusterID, a.learnClusterID)
			},
			// Forget the tombstones of old deletes.
			func(ctx context.Context) { cluster.ReapTombstones(ctx, a.logger.Named("tombstones"), a.node) },
		)
	}
	return duties
}

// leadershipTransferTimeout bounds the hand-off a leader attempts when it
// shuts down without leaving. Raft itself gives up after an election
// timeout when the target does not win.
const leadershipTransferTimeout = 5 * time.Second

// errNoTransferTarget is returned by transferLeadership when there is no
// other voter to hand leadership to.
var errNoTransferTarget = errors.New("no other voter to hand leadership to")

// handOffLeadership is called by Shutdown. A leader that stops without
// leaving (SIGTERM or SIGINT with the default leave settings, which is how
// a rolling restart stops it) stays in the configuration, and without a
// hand-off the others would wait an election timeout before they notice
// it is gone. A leader that left has already removed itself.
func (a *Agent) handOffLeadership() {
	if a.node == nil || a.leaving.Load() || !a.node.IsLeader() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leadershipTransferTimeout)
	defer cancel()
	start := time.Now()
	a.logger.Info("transferring leadership before shutdown")
	to, err := a.transferLeadership(ctx)
	switch {
	case errors.Is(err, errNoTransferTarget):
		a.logger.Info("not transferring leadership", "reason", err)
	case err != nil:
		a.logger.Warn("leadership transfer failed; the others elect a leader after an election timeout",
			"error", err, "duration", time.Since(start))
	default:
		a.logger.Info("transferred leadership", "to", to, "duration", time.Since(start))
	}
}

// transferLeadership asks another voter to take over and waits until this
// server has stepped down: the healthy voter with the highest last index
// in autopilot's view (cluster.TransferTarget), or Raft's own pick when
// there is none. It returns the target's name, or "" when Raft chose.
func (a *Agent) transferLeadership(ctx context.Context) (string, error) {
	servers, _, err := a.node.Configuration()
	if err != nil {
		return "", err
	}
	others := false
	for _, s := range servers {
		others = others || (s.Voter && s.ID != a.id)
	}
	if !others {
		return "", errNoTransferTarget
	}
	target, _ := cluster.TransferTarget(a.pilot.State(), a.id)
	return target.Name, a.node.TransferLeadership(ctx, target.ID, target.Address)
}
