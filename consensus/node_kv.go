package consensus

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// Apply checks cmd (see Command.Validate), replicates it through the log
// and returns once it is applied to this leader's state machine, with what
// it did: the log index, whether a cas, delete-cas or transaction went
// through, and a transaction's results or errors. A failed check is a
// Result with OK false, not an error; so is an acquire during its key's
// lock delay, answered without the log. Only the leader can do this.
func (n *Node) Apply(ctx context.Context, cmd Command) (Result, error) {
	if n.cfg.FSM != nil {
		return Result{}, ErrNoKVStore
	}
	if err := cmd.Validate(n.cfg.MaxValueSize); err != nil {
		return Result{}, err
	}
	if res, answered := n.lockDelayed(cmd); answered {
		return res, nil
	}
	b, err := cmd.encode()
	if err != nil {
		return Result{}, err
	}
	f := n.raft.Apply(b, timeoutOf(ctx))
	if err := n.wait(ctx, f); err != nil {
		return Result{}, err
	}
	res := Result{Index: f.Index()}
	switch r := f.Response().(type) {
	case error:
		return res, r
	case bool:
		res.OK = r
	case *Result:
		res.OK, res.Results, res.Errors = r.OK, r.Results, r.Errors
	}
	return res, nil
}

// Get reads key from the local state machine.
func (n *Node) Get(key string) (Entry, bool) { return n.fsm.Get(key) }

// List returns the local entries under prefix, sorted by key.
func (n *Node) List(prefix string) []Entry { return n.fsm.List(prefix) }

// Keys returns the local keys under prefix, cut at separator (see
// View.Keys).
func (n *Node) Keys(prefix, separator string) []string { return n.fsm.Keys(prefix, separator) }

// View returns the current version of the local state machine, for reads
// that must agree with each other and with the index they report.
func (n *Node) View() View { return n.fsm.View() }

// WaitKey is a blocking query on key; see FSM.WaitKey.
func (n *Node) WaitKey(ctx context.Context, key string, minIndex uint64) (View, error) {
	return n.fsm.WaitKey(ctx, key, minIndex)
}

// WaitPrefix is a blocking query on prefix; see FSM.WaitPrefix.
func (n *Node) WaitPrefix(ctx context.Context, prefix string, minIndex uint64) (View, error) {
	return n.fsm.WaitPrefix(ctx, prefix, minIndex)
}

// SaveSnapshot writes the local state machine to w as a snapshot stream
// and describes what it wrote. It reads one immutable version, so it
// neither blocks writes nor forces a Raft snapshot. For an up-to-date
// backup call it on the leader after VerifyLeader.
func (n *Node) SaveSnapshot(w io.Writer) (SnapshotInfo, error) {
	if n.cfg.FSM != nil {
		return SnapshotInfo{}, ErrNoKVStore
	}
	return writeSnapshot(w, n.fsm.View())
}

// RestoreSnapshot replaces the state of the whole cluster with the
// snapshot stream read from r, through Raft's user restore. Only the
// leader can do this.
//
// Raft panics if the state machine fails to restore a user snapshot, so
// the stream is first read and checked in full, then written in the
// current format to a temporary file (in data_dir/raft, or the system's
// temporary directory in memory mode); only an intact stream reaches
// Raft. The cluster keeps its own cluster ID: the stream's, when it comes
// from another cluster, is replaced (see adoptSnapshot). Raft moves its log index past the
// stream's highest index, so later writes get higher indexes than any in
// the stream. Blocking-query indexes can still go back to the stream's, as
// in Consul after a restore.
func (n *Node) RestoreSnapshot(ctx context.Context, r io.Reader) (SnapshotInfo, error) {
	select {
	case <-n.shutdownCh:
		return SnapshotInfo{}, ErrShutdown
	default:
	}
	if n.cfg.FSM != nil {
		return SnapshotInfo{}, ErrNoKVStore
	}
	if !n.IsLeader() {
		return SnapshotInfo{}, ErrNotLeader
	}
	dir := os.TempDir()
	if !n.cfg.InMemory {
		dir = filepath.Join(n.cfg.DataDir, "raft")
	}
	tmp, err := os.CreateTemp(dir, "restore-*.snap")
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("create restore file: %w", err)
	}
	cleanup := func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}
	own, hasOwn := n.fsm.View().ClusterMeta()
	info, err := adoptSnapshot(r, tmp, own, hasOwn)
	if err != nil {
		cleanup()
		return info, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return info, fmt.Errorf("rewind restore file: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: info.Index, Size: info.Size}
	// raft.Restore is a call, not a future; the goroutine owns the file
	// until Raft is done with it, even if ctx ends first.
	done := make(chan error, 1)
	go func() {
		defer cleanup()
		done <- n.raft.Restore(meta, tmp, timeoutOf(ctx))
	}()
	select {
	case err := <-done:
		return info, mapErr(err)
	case <-ctx.Done():
		return info, ctx.Err()
	case <-n.shutdownCh:
		return info, ErrShutdown
	}
}
