package consensus

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// State is a node's Raft state.
type State int

// The Raft states. A node starts as a follower; StateShutdown is final.
const (
	StateFollower State = iota
	StateCandidate
	StateLeader
	StateShutdown
)

// String is the state in Raft's words: "Follower", "Candidate", "Leader"
// or "Shutdown".
func (s State) String() string {
	switch s {
	case StateFollower:
		return "Follower"
	case StateCandidate:
		return "Candidate"
	case StateLeader:
		return "Leader"
	}
	return "Shutdown"
}

func stateOf(s raft.RaftState) State {
	switch s {
	case raft.Follower:
		return StateFollower
	case raft.Candidate:
		return StateCandidate
	case raft.Leader:
		return StateLeader
	}
	return StateShutdown
}

func (s State) raftState() raft.RaftState {
	switch s {
	case StateFollower:
		return raft.Follower
	case StateCandidate:
		return raft.Candidate
	case StateLeader:
		return raft.Leader
	}
	return raft.Shutdown
}

// State returns the node's Raft state.
func (n *Node) State() State { return stateOf(n.raft.State()) }

// RaftStats is what the leader's autopilot needs from each server
// (Consul's RaftStats), and the answer of the server port's stats route.
type RaftStats struct {
	// LastContact is Raft's last_contact stat: "0" on the leader, "never"
	// on a server that has not heard from one, else a duration string.
	LastContact string
	// LastTerm is the term of the last entry in the log.
	LastTerm uint64
	// LastIndex is the index of the last entry in the log or snapshot.
	LastIndex uint64
}

// RaftStats returns this node's own stats.
func (n *Node) RaftStats() RaftStats { return ReadRaftStats(n) }

// ReadRaftStats reads the stats of r.
func ReadRaftStats(r RaftReader) RaftStats {
	s := r.Stats()
	term, _ := strconv.ParseUint(s["last_log_term"], 10, 64)
	return RaftStats{LastContact: s["last_contact"], LastTerm: term, LastIndex: r.LastIndex()}
}

// ServerStats converts s to numbers. A server that never heard from a
// leader gets a negative LastContact, which counts as unhealthy.
func (s RaftStats) ServerStats() ServerStats {
	contact, err := time.ParseDuration(s.LastContact)
	if err != nil {
		contact = -1
	}
	return ServerStats{LastContact: contact, LastTerm: s.LastTerm, LastIndex: s.LastIndex}
}

// ServerStats is one server's Raft progress, as autopilot judges it.
type ServerStats struct {
	// LastContact is how long ago the server last heard from the leader:
	// 0 on the leader, negative when it never has.
	LastContact time.Duration
	// LastTerm is the term of the last entry in its log.
	LastTerm uint64
	// LastIndex is the index of the last entry in its log.
	LastIndex uint64
}
