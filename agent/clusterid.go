package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/gossip"
)

// clusterIDFile is the file in data_dir that holds the ID of the cluster
// this server belongs to, once it has seen it in its state store.
const clusterIDFile = "cluster-id"

// clusterIDPoll is how often a server looks for its cluster's ID in its
// state store: until it appears, and then in case a restored snapshot
// brings another.
const clusterIDPoll = 250 * time.Millisecond

// readClusterID returns the cluster ID stored in dataDir, or "" when this
// server has not recorded one yet.
func readClusterID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, clusterIDFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read cluster ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if _, perr := uuid.Parse(id); perr != nil {
		return "", fmt.Errorf("cluster ID in %s is not a UUID: %q (remove the file to learn the ID from the cluster again)", path, id)
	}
	return id, nil
}

// openClusterID reads the cluster ID this server recorded earlier. Dev
// servers and clients keep none.
func (a *Agent) openClusterID() (err error) {
	if a.node == nil || a.cfg.DevMode || a.cfg.DataDir == "" {
		return nil
	}
	a.fileClusterID, err = readClusterID(a.cfg.DataDir)
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
	if err := a.pool.SetTag(gossip.TagClusterID, id); err != nil {
		a.logger.Warn("set the cluster_id gossip tag", "error", err)
	}
	if a.recon != nil {
		a.recon.Poke()
	}
}

// watchClusterID follows the cluster ID in this server's state store
// until ctx ends. When it first appears it is recorded in
// data_dir/cluster-id (written once, with fsync and rename, as the node
// ID). If the file names another ID than the store, this data_dir holds
// another cluster's state, or the store was restored from another
// cluster's snapshot: that is fatal, as no retry can mend it.
func (a *Agent) watchClusterID(ctx context.Context) {
	persist := !a.cfg.DevMode && a.cfg.DataDir != ""
	path := filepath.Join(a.cfg.DataDir, clusterIDFile)
	file := a.fileClusterID
	t := time.NewTicker(clusterIDPoll)
	defer t.Stop()
	for {
		if meta, ok := a.node.View().ClusterMeta(); ok {
			id := meta.ClusterID
			if file != "" && id != file {
				a.fail(fmt.Errorf("cluster ID mismatch: the state store says this server is in cluster %s, but %s says cluster %s; "+
					"this data_dir holds another cluster's state, see website/operations.md (\"cluster identity\")", id, path, file))
				return
			}
			if file == "" && persist {
				if err := writeFileOnce(path, id+"\n"); err != nil {
					a.fail(fmt.Errorf("write cluster ID: %w", err))
					return
				}
			}
			file = id
			if a.ClusterID() != id || a.pool.LocalMember().Tags[gossip.TagClusterID] != id {
				a.learnClusterID(id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// writeFileOnce writes content to path through a temporary file with
// fsync, then renames it into place, so a crash leaves either no file or
// the whole one.
func writeFileOnce(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(content)
	if serr := f.Sync(); werr == nil {
		werr = serr
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, werr)
	}
	return nil
}
