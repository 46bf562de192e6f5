package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/metrics"
	"github.com/hashicorp/raft-wal/verifier"
)

// checkpointData is the Data of a verification checkpoint entry. The first
// byte is no Op (see command.go), so decodeCommand would refuse it; the FSM
// never sees it anyway, since checkpointFilter turns it into a no-op.
var checkpointData = []byte("\xffconclave-log-verifier-checkpoint")

// isCheckpoint is the verifier's IsCheckpointFn: a LogCommand whose Data
// is checkpointData.
func isCheckpoint(l *raft.Log) (bool, error) {
	return l.Type == raft.LogCommand && bytes.Equal(l.Data, checkpointData), nil
}

// checkpointFilter is the FSM Raft is given: the KV FSM with the
// verifier's checkpoint entries turned into raft.LogNoop entries, which the
// FSM skips (it applies LogCommand entries only) while still advancing its
// applied index. Raft replicates a checkpoint as a LogCommand, since
// Raft.ApplyLog only makes those, so a follower must filter it whether or
// not it verifies itself.
type checkpointFilter struct{ *FSM }

func (f checkpointFilter) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

func (f checkpointFilter) ApplyBatch(logs []*raft.Log) []any {
	var out []*raft.Log
	for i, l := range logs {
		if ok, _ := isCheckpoint(l); !ok {
			continue
		}
		if out == nil {
			out = append([]*raft.Log(nil), logs...)
		}
		noop := *l
		noop.Type, noop.Data = raft.LogNoop, nil
		out[i] = &noop
	}
	if out == nil {
		out = logs
	}
	return f.FSM.ApplyBatch(out)
}

// VerificationStatus is what log verification has found so far on this
// server (Node.Verification).
type VerificationStatus struct {
	// Enabled is true when raft_logstore.verification is on.
	Enabled bool
	// Checked is how many checkpoint ranges were read back and compared.
	Checked uint64
	// Last is the outcome of the last check; zero before the first.
	Last VerificationResult
	// Failure is the first failed check, nil when none failed. Once set
	// it stays: the server stops (see Config.OnFatal).
	Failure *VerificationResult
}

// VerificationResult is the outcome of one checkpoint check.
type VerificationResult struct {
	// Start and End are the log range checked, [Start, End).
	Start, End uint64
	// Expected is the leader's checksum of the range, Read this server's
	// checksum of what its store returns, Written its checksum of what it
	// wrote (0 when it did not write the whole range since it started).
	Expected, Read, Written uint64
	// At is when the check finished.
	At time.Time
	// Err is why the check failed or could not be made; nil when the
	// range matched.
	Err error
}

// verification runs the log verifier for one Node.
type verification struct {
	n        *Node
	interval time.Duration

	mu     sync.Mutex
	status VerificationStatus
}

// newVerification wraps logs in raft-wal's verifying store when cfg
// enables it; otherwise it returns logs and a disabled verification.
func newVerification(n *Node, cfg VerificationConfig, logs raft.LogStore) (*verification, raft.LogStore) {
	v := &verification{n: n, interval: cfg.Interval}
	if !cfg.Enabled {
		return v, logs
	}
	if v.interval <= 0 {
		v.interval = DefaultVerificationInterval
	}
	v.status.Enabled = true
	return v, verifier.NewLogStore(logs, isCheckpoint, v.report, &metrics.NoOpCollector{})
}

// Verification returns what log verification has found so far.
func (n *Node) Verification() VerificationStatus {
	if n.verify == nil {
		return VerificationStatus{}
	}
	n.verify.mu.Lock()
	defer n.verify.mu.Unlock()
	return n.verify.status
}

// run appends a checkpoint every interval while this node is the leader,
// until the node shuts down. It is a no-op when verification is off.
func (v *verification) run() {
	if !v.status.Enabled {
		return
	}
	t := time.NewTicker(v.interval)
	defer t.Stop()
	for {
		select {
		case <-v.n.shutdownCh:
			return
		case <-t.C:
		}
		if !v.n.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), v.interval)
		err := v.n.wait(ctx, v.n.raft.ApplyLog(raft.Log{Data: checkpointData}, v.interval))
		cancel()
		if err != nil && !errors.Is(err, ErrShutdown) && !errors.Is(err, ErrNotLeader) {
			v.n.logger.Warn("log verification: failed to append checkpoint", "error", err)
		}
	}
}

// report is the verifier's ReportFn. A range that no longer is in this
// server's log cannot be checked and is only a warning; any other failure
// means the store does not return what was written, and is fatal.
func (v *verification) report(r verifier.VerificationReport) {
	res := VerificationResult{
		Start: r.Range.Start, End: r.Range.End,
		Expected: r.ExpectedSum, Read: r.ReadSum, Written: r.WrittenSum,
		At: time.Now(), Err: r.Err,
	}
	logger := v.n.logger.With("server", v.n.cfg.Name, "server_id", v.n.cfg.ID, "store", v.n.storePath(),
		"range", r.Range.String(), "leader_checksum", fmt.Sprintf("%016x", r.ExpectedSum))
	if r.SkippedRange != nil {
		logger.Warn("log verification skipped a range; raise raft_logstore.verification.interval if this repeats",
			"skipped", r.SkippedRange.String())
	}

	v.mu.Lock()
	v.status.Checked++
	v.status.Last = res
	first := false
	if r.Err != nil && !errors.Is(r.Err, verifier.ErrRangeMismatch) && v.status.Failure == nil {
		v.status.Failure = &res
		first = true
	}
	v.mu.Unlock()

	switch {
	case r.Err == nil:
		logger.Debug("log verification passed", "read_checksum", fmt.Sprintf("%016x", r.ReadSum), "elapsed", r.Elapsed)
		return
	case errors.Is(r.Err, verifier.ErrRangeMismatch):
		logger.Warn("log verification could not check a range this server no longer holds; lower the interval or raise trailing logs if this repeats")
		return
	case !first:
		return
	}

	kind := "the store returned different data than was written (storage corruption)"
	if r.WrittenSum != 0 && r.WrittenSum != r.ExpectedSum {
		kind = "this server wrote different data than the leader sent (in-memory or network corruption)"
	}
	err := fmt.Errorf("%w on server %s for log range %s: %s: leader checksum %016x, read %016x, written %016x: %v; %s",
		ErrVerificationFailed, v.n.cfg.ID, r.Range, kind, r.ExpectedSum, r.ReadSum, r.WrittenSum, r.Err, remedy)
	logger.Error("log verification FAILED: this server's raft store is damaged; it stops and will not start again until an operator acts",
		"read_checksum", fmt.Sprintf("%016x", r.ReadSum), "written_checksum", fmt.Sprintf("%016x", r.WrittenSum),
		"error", r.Err, "remedy", remedy)
	v.fail(err)
}

// fail stops this server from serving or voting at once, leaves a marker
// that keeps New from opening the store again, and hands err to OnFatal.
func (v *verification) fail(err error) {
	n := v.n
	if !n.cfg.InMemory {
		marker := filepath.Join(n.cfg.DataDir, "raft", verifyFailedFile)
		if werr := os.WriteFile(marker, []byte(err.Error()+"\n"), 0o600); werr != nil {
			n.logger.Error("log verification: failed to write marker", "path", marker, "error", werr)
		}
	}
	// Raft's Shutdown waits for Raft's goroutines, and this one is the
	// verifier's, so it cannot deadlock; Node.Shutdown later finds Raft
	// already stopped.
	go func() {
		n.raft.Shutdown()
		if n.cfg.OnFatal != nil {
			n.cfg.OnFatal(err)
		}
	}()
}

// checkVerificationMarker refuses a store whose verification failed
// before, until an operator removes the marker or the data_dir.
func checkVerificationMarker(dir string) error {
	path := filepath.Join(dir, verifyFailedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return fmt.Errorf("%w earlier, as %s records: %s; once the store is known good again, delete %s",
		ErrVerificationFailed, path, bytes.TrimSpace(b), path)
}

// storePath is the file or directory of the log store, for messages.
func (n *Node) storePath() string {
	if n.store == nil || n.store.path == "" {
		return "memory"
	}
	return n.store.path
}
