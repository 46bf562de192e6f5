package cluster

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

	"github.com/conclavehq/conclave/consensus"
)

// NodeIDFile is the file in data_dir that holds the agent's permanent node
// ID.
const NodeIDFile = "node-id"

// LoadOrCreateNodeID returns the node ID stored in dataDir, creating and
// persisting a new UUID on first start. The ID is the Raft server ID for the
// life of the data_dir, so it is written with fsync before use.
func LoadOrCreateNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, NodeIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("node ID in %s is not a UUID: %q", path, id)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read node ID: %w", err)
	}
	id := uuid.NewString()
	if err := WriteFileOnce(path, id+"\n"); err != nil {
		return "", fmt.Errorf("write node ID %w", err)
	}
	return id, nil
}

// ClusterIDFile is the file in data_dir that holds the ID of the cluster
// this server belongs to, once it has seen it in its state store.
const ClusterIDFile = "cluster-id"

// clusterIDPoll is how often a server looks for its cluster's ID in its
// state store: until it appears, and then in case a restored snapshot
// brings another.
const clusterIDPoll = 250 * time.Millisecond

// ReadClusterID returns the cluster ID stored in dataDir, or "" when this
// server has not recorded one yet.
func ReadClusterID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, ClusterIDFile)
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

// ClusterIDWatch is what WatchClusterID follows and whom it tells.
type ClusterIDWatch struct {
	// Store is this server's state store.
	Store interface{ View() consensus.View }
	// Path is data_dir/cluster-id; "" when this server keeps no file
	// (dev mode).
	Path string
	// File is the ID the file held at start (ReadClusterID), "" when none.
	File string
	// Known reports whether the agent already has id in its identity and
	// its gossip tag.
	Known func(id string) bool
	// Learn makes id the agent's cluster ID.
	Learn func(id string)
}

// WatchClusterID follows the cluster ID in this server's state store
// until ctx ends, and returns nil then. When the ID first appears it is
// recorded in w.Path (written once, with fsync and rename, as the node
// ID). If the file names another ID than the store, this data_dir holds
// another cluster's state, or the store was restored from another
// cluster's snapshot: WatchClusterID returns that error, which is fatal,
// as no retry can mend it; and a failed write.
func WatchClusterID(ctx context.Context, w ClusterIDWatch) error {
	file := w.File
	t := time.NewTicker(clusterIDPoll)
	defer t.Stop()
	for {
		// A stop must win over a tick that is due too: select picks at
		// random among ready cases, and each pass may block (Learn sets
		// a gossip tag).
		if ctx.Err() != nil {
			return nil
		}
		if meta, ok := w.Store.View().ClusterMeta(); ok {
			id := meta.ClusterID
			if file != "" && id != file {
				return fmt.Errorf("cluster ID mismatch: the state store says this server is in cluster %s, but %s says cluster %s; "+
					"this data_dir holds another cluster's state, see website/operations.md (\"cluster identity\")", id, w.Path, file)
			}
			if file == "" && w.Path != "" {
				if err := WriteFileOnce(w.Path, id+"\n"); err != nil {
					return fmt.Errorf("write cluster ID: %w", err)
				}
			}
			file = id
			if !w.Known(id) {
				w.Learn(id)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// WriteFileOnce writes content to path through a temporary file with
// fsync, then renames it into place, so a crash leaves either no file or
// the whole one.
func WriteFileOnce(path, content string) error {
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
