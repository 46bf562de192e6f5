package consensus

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// StateMachine is an application's own replicated state machine, which a
// Node runs instead of the key/value store when Config.FSM is set. It is
// raft.FSM in this package's types, so that an application needs no Raft
// import. Raft calls Apply, Snapshot and Restore from one goroutine; the
// application's reads may run concurrently with them and must lock what
// they share.
type StateMachine interface {
	// Apply applies the command data committed at log index. It must be
	// deterministic: every server applies the same commands in the same
	// order and must reach the same state. What it returns is the answer
	// Node.ApplyBytes gives the leader's caller; an error value is
	// returned there as the error.
	Apply(index uint64, data []byte) any
	// Snapshot captures the current state. The WriterTo may run
	// concurrently with later calls to Apply, so it must write the state
	// as it was when Snapshot returned.
	Snapshot() (io.WriterTo, error)
	// Restore replaces the whole state with what a WriterTo from Snapshot
	// wrote. It is called on a restart that finds a snapshot and when a
	// follower is too far behind to catch up from the log.
	Restore(r io.Reader) error
}

// appFSM runs a StateMachine as Raft's state machine.
type appFSM struct{ sm StateMachine }

var _ raft.FSM = appFSM{}

// Apply passes a committed command to the application. A panic in it (a
// bug) becomes an error answer naming the index, as in the key/value
// store, so that every server answers alike instead of crash-looping on
// replay.
func (f appFSM) Apply(l *raft.Log) (resp any) {
	if ok, _ := isCheckpoint(l); ok {
		return nil // log verification's own entry, as checkpointFilter
	}
	defer func() {
		if v := recover(); v != nil {
			resp = fmt.Errorf("apply log index %d: state machine panicked: %v", l.Index, v)
		}
	}()
	return f.sm.Apply(l.Index, l.Data)
}

func (f appFSM) Snapshot() (raft.FSMSnapshot, error) {
	w, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return appSnapshot{w}, nil
}

func (f appFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.sm.Restore(bufio.NewReaderSize(rc, 64<<10)); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	return nil
}

type appSnapshot struct{ w io.WriterTo }

// Persist writes the application's snapshot to sink with a buffered
// writer.
func (s appSnapshot) Persist(sink raft.SnapshotSink) error {
	bw := bufio.NewWriterSize(sink, 64<<10)
	_, err := s.w.WriteTo(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (appSnapshot) Release() {}

// ApplyBytes replicates the application command data through the log and
// returns once this leader's StateMachine has applied it, with what its
// Apply returned; an error it returned is the error. The errors of Raft
// are those of Apply: ErrNotLeader on a follower, ErrNotLeader with
// ErrOutcomeUnknown when leadership was lost after the command entered
// the log (it may still be committed), ErrShutdown, or ctx's error.
// Without Config.FSM it fails with ErrNoStateMachine.
func (n *Node) ApplyBytes(ctx context.Context, data []byte) (any, error) {
	if n.cfg.FSM == nil {
		return nil, ErrNoStateMachine
	}
	f := n.raft.Apply(data, timeoutOf(ctx))
	if err := n.wait(ctx, f); err != nil {
		return nil, err
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// Barrier waits until every command committed before it is applied to
// this leader's state machine, so that a read after it sees every write
// acknowledged before it. Only the leader can do this.
func (n *Node) Barrier(ctx context.Context) error {
	return n.wait(ctx, n.raft.Barrier(timeoutOf(ctx)))
}
