package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/consensus"
)

// Cluster identity: two clusters on one network must stay two. A cluster
// takes a random ID when its first leader is elected (EnsureClusterID, the
// first entry that leader writes after bootstrap), every server learns it
// from its replicated state store, and the leader's reconciler adds a
// server as a voter only when admit agrees, from the server's gossip tag
// and from what it answers on its server port (IdentityPath). The gossip
// merge delegate refuses the other cluster's members first; this is the
// guard for what gossip does not see, and for servers of earlier versions
// or with Raft state but no ID.

// IdentityPath is the internal route on the server port that answers an
// Identity.
const IdentityPath = "/internal/identity"

// Identity is what a server says about itself on IdentityPath.
type Identity struct {
	// NodeID is its permanent node ID, the Raft server ID.
	NodeID string
	// ClusterID is the ID of the cluster it belongs to, "" when it knows
	// none (a fresh server, or one of a cluster made by an earlier
	// version whose leader has not written one yet).
	ClusterID string
	// Datacenter is its datacenter.
	Datacenter string
	// HasState is true when it has Raft state.
	HasState bool
}

// IdentityProbe asks the server whose server port is at addr for its
// Identity; serverport.Client.Get on IdentityPath does.
type IdentityProbe func(ctx context.Context, addr string) (Identity, error)

// candidate is what the reconciler knows about a server it may add.
type candidate struct {
	name, id   string
	datacenter string // from its dc tag
	tag        string // its cluster_id tag, "" when absent
	known      bool   // its ID is already in the configuration (an address update)
	probe      *Identity
}

// admit decides whether the leader (its own Identity) may AddVoter c. It
// takes no locks and does no I/O. reason, when ok is false, names both
// sides, for the log.
//
// The rules, in order: c must be of the leader's datacenter; its
// cluster_id tag, when set, must be the leader's cluster ID. A server
// already in the configuration (its address changed) is then admitted:
// Raft has it already, it may not be able to answer a probe before the
// leader reaches it, and a leader that has just restarted may not know its
// cluster's ID yet (its state store replays only once it commits). Any
// other needs a leader that knows its cluster's ID, and must have answered
// the probe: as the node ID its tag says, of the leader's datacenter, and
// either with the leader's cluster ID or with none and no Raft state (a
// server that belongs to no cluster yet). Raft state without a cluster ID
// is refused: that server holds another cluster's log, of an earlier
// version or one that never wrote its ID.
func admit(c candidate, leader Identity) (ok bool, reason string) {
	side := fmt.Sprintf("this cluster is %s (%s)", clusterName(leader.ClusterID), leader.Datacenter)
	switch {
	case c.datacenter != leader.Datacenter:
		return false, fmt.Sprintf("node %s is in datacenter %s; %s", c.name, c.datacenter, side)
	case c.tag != "" && leader.ClusterID != "" && c.tag != leader.ClusterID:
		return false, fmt.Sprintf("node %s is in cluster %s (%s) by its cluster_id tag; %s", c.name, c.tag, c.datacenter, side)
	case c.known:
		return true, ""
	case leader.ClusterID == "":
		return false, "this leader has not written its cluster ID yet"
	case c.probe == nil:
		return false, fmt.Sprintf("node %s has not said who it is; %s", c.name, side)
	}
	p := *c.probe
	switch {
	case p.NodeID != c.id:
		return false, fmt.Sprintf("node %s (gossip node ID %s) answers as node ID %s on its server port; %s", c.name, c.id, p.NodeID, side)
	case p.Datacenter != leader.Datacenter:
		return false, fmt.Sprintf("node %s answers that it is in datacenter %s; %s", c.name, p.Datacenter, side)
	case p.ClusterID != "" && p.ClusterID != leader.ClusterID:
		return false, fmt.Sprintf("node %s answers that it is in cluster %s (%s); %s", c.name, p.ClusterID, p.Datacenter, side)
	case p.ClusterID == "" && p.HasState:
		return false, fmt.Sprintf("node %s has Raft state but no cluster ID (another cluster's, or an earlier version's); %s", c.name, side)
	}
	return true, ""
}

// clusterName is a cluster ID as the refusals print it.
func clusterName(id string) string {
	if id == "" {
		return "no cluster yet"
	}
	return id
}

// refusals remembers which refusals have been logged, so that each is
// logged once per candidate and reason, not on every pass.
type refusals struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // node ID -> reason -> logged
}

// first reports whether reason is new for id, and records it.
func (r *refusals) first(id, reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[string]map[string]bool)
	}
	if r.seen[id][reason] {
		return false
	}
	if r.seen[id] == nil {
		r.seen[id] = make(map[string]bool)
	}
	r.seen[id][reason] = true
	return true
}

// forget drops what was logged for id: it has been admitted, so a later
// refusal is news again.
func (r *refusals) forget(id string) {
	r.mu.Lock()
	delete(r.seen, id)
	r.mu.Unlock()
}

// ClusterStore is the part of consensus.Node EnsureClusterID uses.
type ClusterStore interface {
	View() consensus.View
	Apply(ctx context.Context, cmd consensus.Command) (consensus.Result, error)
}

// ensureInterval is how often EnsureClusterID looks at the state store
// while this server leads, and how long it waits after a failed write.
const ensureInterval = time.Second

// EnsureClusterID is a leader duty: whenever the state store holds no
// cluster ID, it writes one (OpSetClusterMeta): known when this server
// knows its cluster's ID already (its data_dir/cluster-id), else a new
// random UUID. On a freshly bootstrapped cluster this is the first entry
// the first leader writes; on a cluster made by an earlier version, its
// first leader after the upgrade writes it; after a restore of a snapshot
// that holds none (an earlier version's), the leader writes the ID it
// knew, so the cluster keeps its identity. It looks again every
// ensureInterval until ctx ends, and calls written after each successful
// write.
func EnsureClusterID(ctx context.Context, logger hclog.Logger, store ClusterStore, known func() string, written func(id string)) {
	t := time.NewTicker(ensureInterval)
	defer t.Stop()
	for {
		if _, ok := store.View().ClusterMeta(); !ok {
			if err := writeClusterID(ctx, logger, store, known(), written); err != nil {
				if errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrShutdown) {
					return
				}
				if ctx.Err() == nil {
					logger.Warn("writing the cluster ID failed; retrying", "error", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// writeClusterID applies OpSetClusterMeta with id, or a new UUID when id
// is empty. Another ID stored first is not an error: it is the cluster's.
func writeClusterID(ctx context.Context, logger hclog.Logger, store ClusterStore, id string, written func(id string)) error {
	if id == "" {
		id = uuid.NewString()
	}
	octx, cancel := context.WithTimeout(ctx, reconcileOpTimeout)
	defer cancel()
	res, err := store.Apply(octx, consensus.Command{Op: consensus.OpSetClusterMeta, ClusterID: id})
	if err != nil {
		return err
	}
	if res.OK {
		logger.Info("wrote the cluster ID", "cluster_id", id)
		written(id)
	}
	return nil
}
