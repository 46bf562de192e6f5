package consensus

import (
	"context"

	"github.com/hashicorp/raft"
)

// LastIndex is the index of the last entry in this node's Raft log, or of
// its last snapshot when that is newer.
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// CommitIndex is the highest log index this node knows to be committed.
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// TransferLeadership hands leadership to the voter with the given ID and
// Raft address, or, when id is empty, to the voter Raft finds most up to
// date. It returns once this node has stepped down, ctx ends, or Raft gives
// up (the target did not win within an election timeout). While it runs,
// Apply fails with ErrNotLeader. Only the leader can do this.
func (n *Node) TransferLeadership(ctx context.Context, id, addr string) error {
	if id == "" {
		return n.wait(ctx, n.raft.LeadershipTransfer())
	}
	return n.wait(ctx, n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)))
}
