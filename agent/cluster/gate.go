package cluster

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/gossip"
)

// The rollout gate, GET /v1/status/ready?voter: is this server a caught-up
// voter, healthy in the leader's autopilot view, and does the cluster again
// tolerate one failure? A rolling restart waits on it before it stops the
// next server (hashicorp/consul#8118). It cannot pass before bootstrap, by
// design. Decide is pure; agent/httpapi gathers what it decides from.

// VoterCheck holds what the rollout gate decides from.
type VoterCheck struct {
	// SelfID is this server's node ID.
	SelfID string
	// Health is the leader's autopilot view, nil when there is no leader.
	Health *api.OperatorHealthReply
	// Applied is this server's applied index.
	Applied uint64
	// LastContact is how long ago this server last heard from the leader,
	// by its own Raft: 0 on the leader, negative when it never has.
	LastContact time.Duration
	// MaxLag is how many entries this server may be behind the leader.
	MaxLag uint64
	// ContactLimit is the longest LastContact a healthy server has.
	ContactLimit time.Duration
}

// GateResult is the rollout gate's answer: OK, and in one line why.
type GateResult struct {
	OK              bool
	Reason          string
	LeaderLastIndex uint64
}

// Decide applies the rollout gate. In order: there is a leader; this
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
func (c VoterCheck) Decide() GateResult {
	if c.Health == nil {
		return GateResult{Reason: "no leader"}
	}
	var self, leader *api.ServerHealth
	var voters int
	var unhealthy []string
	for i := range c.Health.Servers {
		s := &c.Health.Servers[i]
		if s.ID == c.SelfID {
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
		return GateResult{Reason: "no leader"}
	case self == nil:
		return GateResult{Reason: "not in the Raft configuration"}
	case !self.Voter:
		return GateResult{Reason: "not a voter"}
	}
	res := GateResult{LeaderLastIndex: leader.LastIndex}
	lag := leader.LastIndex - min(c.Applied, leader.LastIndex)
	if self.LastContact.Duration() >= 0 { // else the leader has no stats from it: its LastIndex means nothing
		lag = max(lag, leader.LastIndex-min(self.LastIndex, leader.LastIndex))
	}
	if lag > c.MaxLag {
		res.Reason = fmt.Sprintf("lagging %d entries behind the leader", lag)
		return res
	}
	switch {
	case self.Leader:
	case c.LastContact < 0:
		res.Reason = "unhealthy: has not heard from the leader"
		return res
	case c.LastContact > c.ContactLimit:
		res.Reason = fmt.Sprintf("unhealthy: last contact with the leader %s ago", c.LastContact.Round(time.Millisecond))
		return res
	}
	if !self.Healthy {
		res.Reason = unhealthyReason(self, leader)
		return res
	}
	if (voters >= 3 && c.Health.FailureTolerance < 1) || (voters < 3 && len(unhealthy) > 0) {
		slices.Sort(unhealthy)
		switch len(unhealthy) {
		case 0:
			res.Reason = "failure tolerance 0"
		case 1:
			res.Reason = "failure tolerance 0: server " + unhealthy[0] + " is unhealthy"
		default:
			res.Reason = "failure tolerance 0: servers " + strings.Join(unhealthy, ", ") + " are unhealthy"
		}
		return res
	}
	res.OK = true
	res.Reason = fmt.Sprintf("voter, applied index %d of the leader's %d; failure tolerance %d of %d voters",
		c.Applied, leader.LastIndex, c.Health.FailureTolerance, voters)
	return res
}

// unhealthyReason says why the leader counts s unhealthy although it is
// not lagging by the gate's own measure.
func unhealthyReason(s, leader *api.ServerHealth) string {
	switch {
	case s.SerfStatus != gossip.StatusAlive.String():
		return "unhealthy: gossip status " + s.SerfStatus
	case s.LastContact.Duration() < 0:
		return "unhealthy in the leader's view: no contact reported yet"
	case s.LastTerm != leader.LastTerm:
		return fmt.Sprintf("unhealthy: last log term %d, the leader's %d", s.LastTerm, leader.LastTerm)
	}
	return fmt.Sprintf("unhealthy in the leader's view: last contact %s ago, last index %d of the leader's %d",
		s.LastContact.Duration(), s.LastIndex, leader.LastIndex)
}
