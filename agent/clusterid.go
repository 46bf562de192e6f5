package agent

import (
	"context"
	"path/filepath"

	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/gossip"
)

// openClusterID reads the cluster ID this server recorded earlier. Dev
// servers and clients keep none.
func (a *Agent) openClusterID() (err error) {
	if a.node == nil || a.cfg.DevMode || a.cfg.DataDir == "" {
		return nil
	}
	a.fileClusterID, err = cluster.ReadClusterID(a.cfg.DataDir)
	a.clusterID.Store(a.fileClusterID)
	return err
}

// ClusterID is the ID of the cluster this server belongs to, "" when it
// knows none yet (and always on a client).
func (a *Agent) ClusterID() string {
	id, _ := a.clusterID.Load().(string)
	return id
}

// identity is what this agent answers on cluster.IdentityPath, and what
// its reconciler compares other servers with.
func (a *Agent) identity() cluster.Identity {
	return cluster.Identity{
		NodeID: a.id, ClusterID: a.ClusterID(), Datacenter: a.cfg.Datacenter,
		HasState: a.node != nil && a.node.HasState(),
	}
}

// probeIdentity asks the server whose server port is at addr who it is.
func (a *Agent) probeIdentity(ctx context.Context, addr string) (cluster.Identity, error) {
	var out cluster.Identity
	err := a.peers.Get(ctx, addr, cluster.IdentityPath, &out)
	return out, err
}

// learnClusterID makes id this agent's cluster ID: in its identity, its
// gossip tag (which also arms the merge delegate) and, on a leader that
// just wrote it, the reconciler, which adds no server before it is set.
func (a *Agent) learnClusterID(id string) {
	if a.ClusterID() != id {
		a.clusterID.Store(id)
		a.logger.Info("cluster ID", "cluster_id", id)
	}
	if a.leaving.Load() || a.stopping.Load() {
		// The pool is leaving: a tag update would wait for a broadcast
		// that no member takes any more (5 s each time).
		return
	}
	if err := a.pool.SetTag(gossip.TagClusterID, id); err != nil {
		a.logger.Warn("set the cluster_id gossip tag", "error", err)
	}
	if a.recon != nil {
		a.recon.Poke()
	}
}

// watchClusterID runs cluster.WatchClusterID until ctx ends; the error
// it returns (another cluster's data_dir, a failed write) is fatal.
func (a *Agent) watchClusterID(ctx context.Context) {
	var path string
	if !a.cfg.DevMode && a.cfg.DataDir != "" {
		path = filepath.Join(a.cfg.DataDir, cluster.ClusterIDFile)
	}
	err := cluster.WatchClusterID(ctx, cluster.ClusterIDWatch{
		Store: a.node, Path: path, File: a.fileClusterID, Learn: a.learnClusterID,
		Known: func(id string) bool {
			return a.ClusterID() == id && a.pool.LocalMember().Tags[gossip.TagClusterID] == id
		},
	})
	if err != nil {
		a.fail(err)
	}
}
