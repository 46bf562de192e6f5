package gossip

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/hashicorp/serf/serf"
)

// mergeDelegate refuses members that must not be in this pool:
//
//   - a member whose name is already held by a node with a different ID
//     that has not left: this node's own name, or a name this node knows
//     from the pool, alive or failed. Serf's own name conflict resolution
//     would shut one of them down silently; Conclave refuses loudly
//     instead, on both sides of the join. A failed holder of a name keeps
//     it until an operator runs force-leave on it (or it is reaped); the
//     same node ID coming back, at any address, is always welcome;
//   - a member of another cluster: its cluster_id tag and this agent's are
//     both set and differ. An empty tag (a client, or a server that
//     belongs to no cluster yet) passes;
//   - a member of another datacenter (both dc tags set and different): a
//     pool holds one datacenter, as Consul's LAN pool does;
//   - a member that uses this node's ID, or the ID of a member this node
//     knows that has not left, under another name (a copied data_dir); as
//     with names, a failed holder keeps its ID until force-leave or reap.
//
// Serf calls it for the members of a join or push/pull and for every
// alive message, with Serf's locks possibly held, so it reads only its
// own state.
type mergeDelegate struct {
	name, id, dc string
	clusterID    atomic.Value // string: this agent's cluster ID, "" for none yet
	names        *names
	// refused is the last refusal, for Join to return unflattened.
	refused atomic.Pointer[error]
}

func (d *mergeDelegate) NotifyMerge(members []*serf.Member) error {
	if err := d.check(members); err != nil {
		d.refused.Store(&err)
		return err
	}
	return nil
}

func (d *mergeDelegate) check(members []*serf.Member) error {
	local, _ := d.clusterID.Load().(string)
	for _, m := range members {
		// Serf hands us no alive/failed state here, only "left".
		if m.Status == serf.StatusLeft {
			continue
		}
		id := m.Tags[TagID]
		holder, taken := d.names.holder(m.Name)
		if m.Name == d.name {
			holder, taken = d.id, true
		}
		if taken && holder != id {
			return fmt.Errorf("%w: %q is used by node ID %s; refusing node ID %s at %s (if the holder is gone for good, run force-leave on it first)",
				ErrDuplicateName, m.Name, holder, id, net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
		}
		other, dc := m.Tags[TagClusterID], m.Tags[TagDC]
		if other != "" && local != "" && other != local {
			return fmt.Errorf("%w with node %s (cluster %s, %s): this agent is in cluster %s (%s); two clusters must not be joined, see website/operations.md",
				ErrRefusedMerge, m.Name, other, dc, local, d.dc)
		}
		if dc != "" && d.dc != "" && dc != d.dc {
			return fmt.Errorf("%w with node %s (cluster %s, %s): this agent is in datacenter %s (cluster %s); a gossip pool holds one datacenter, see website/operations.md",
				ErrRefusedMerge, m.Name, clusterName(other), dc, d.dc, clusterName(local))
		}
		if id == "" {
			continue
		}
		if id == d.id && m.Name != d.name {
			return fmt.Errorf("%w with node %s: it uses node ID %s, which is this agent's (%s); give it its own data_dir",
				ErrRefusedMerge, m.Name, id, d.name)
		}
		if holder, ok := d.names.nameOf(id); ok && holder != m.Name {
			return fmt.Errorf("%w with node %s: it uses node ID %s, which is node %s's (if %s is gone for good, run force-leave on it first); give each node its own data_dir",
				ErrRefusedMerge, m.Name, id, holder, holder)
		}
	}
	return nil
}

// clusterName is a cluster ID as the refusals print it.
func clusterName(id string) string {
	if id == "" {
		return "no cluster yet"
	}
	return id
}
