package agent

import (
	"context"
	"errors"
	"time"

	autopilot "github.com/hashicorp/raft-autopilot"
)

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
// in autopilot's view, or Raft's own pick when autopilot has none. It
// returns the target's name, or "" when Raft chose.
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
	target := a.transferTarget()
	return target.Name, a.node.TransferLeadership(ctx, string(target.ID), string(target.Address))
}

// transferTarget picks the healthy voter, other than this server, with the
// highest last index in autopilot's view. The zero Server, when there is
// none, leaves the choice to Raft.
func (a *Agent) transferTarget() autopilot.Server {
	var best *autopilot.ServerState
	if s := a.pilot.ap.GetState(); s != nil {
		for id, srv := range s.Servers {
			if string(id) == a.id || !srv.HasVotingRights() || !srv.Health.Healthy {
				continue
			}
			if best == nil || srv.Stats.LastIndex > best.Stats.LastIndex {
				best = srv
			}
		}
	}
	if best == nil {
		return autopilot.Server{}
	}
	return best.Server
}
