package consensus

import (
	"errors"
	"fmt"
	"io"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// Entry is one key/value pair with Consul's bookkeeping. CreateIndex and
// ModifyIndex are the Raft log indexes of the entries that created it and
// last changed it. LockIndex counts lock acquisitions and Session names
// the lock's holder (see OpLock). An Entry
// handed out by a read shares Value with the state machine: do not modify
// it.
type Entry struct {
	Key         string
	Flags       uint64
	Value       []byte
	CreateIndex uint64
	ModifyIndex uint64
	LockIndex   uint64
	Session     string
}

// Result is what an applied command did.
type Result struct {
	// Index is the Raft log index the command was applied at (for
	// View.ReadTxn, the view's applied index).
	Index uint64
	// OK is false when a cas or delete-cas found another ModifyIndex, when
	// a transaction was rolled back (Errors says why), when
	// set-cluster-meta found another cluster ID, and when a CAS
	// set-autopilot-config found another ModifyIndex or no configuration.
	// It is true for every other command.
	OK bool
	// Results holds a committed transaction's results in operation order:
	// the entry for each get (with its value), set, cas and check-index
	// (without the value, as Consul returns them), and every entry of a
	// get-tree (with values).
	Results []Entry
	// Errors holds the reasons a transaction was rolled back, one per
	// failed operation. Nothing was written.
	Errors []TxnError
}

// TxnError is one failed operation of a rolled-back transaction. The field
// names and messages are Consul's, such as "current modify index 5 does not
// match 3" or `key "x" doesn't exist`.
type TxnError struct {
	OpIndex int
	What    string
}

// FSM is the replicated state machine: one go-memdb store of several
// tables (see schema.go), of which the key/value table is Consul's KV
// store. Raft calls Apply (or ApplyBatch), Snapshot and Restore from one
// goroutine; reads (View and the methods that use it) are safe from any
// goroutine and never block writes.
type FSM struct {
	// mu serializes writers. Raft never applies concurrently, but tests
	// and RestoreSnapshot's callers need not know that. memdb has its own
	// writer lock; mu also covers the multi-transaction batch and restore.
	mu sync.Mutex
	db *memdb.MemDB
	// delay holds the lock delays of this server (see lockDelay).
	delay *lockDelay
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// NewFSM returns an empty state machine.
func NewFSM() *FSM { return &FSM{db: newDB(), delay: newLockDelay()} }

// Apply applies one committed log entry. The response is an error for an
// entry it cannot decode or whose command type it does not know (it never
// panics), a *Result for a transaction, and otherwise a bool: false when
// a conditional write did not match (see Result.OK).
func (f *FSM) Apply(l *raft.Log) any {
	var resp [1]any
	f.applyBatch([]*raft.Log{l}, resp[:])
	return resp[0]
}

// ApplyBatch applies a batch of committed log entries; the responses are
// those of Apply. Raft uses it because the FSM implements
// raft.BatchingFSM.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	resp := make([]any, len(logs))
	f.applyBatch(logs, resp)
	return resp
}

// Snapshot captures the current state: a memdb read transaction, which is
// an immutable version, so Persist can stream it while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{v: f.View()}, nil
}

// Restore replaces the state with a snapshot stream (see View.WriteTo) of
// this format or an earlier one. It reads record by record into one write
// transaction that first empties every table, and commits it only when
// the whole stream checked out, so a failed Restore changes nothing and a
// reader sees the old state or the new one. Every watch fires. An empty
// stream is an empty state (snapshots of releases before the key/value
// store, which had no writes, are empty). Lock delays are forgotten.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	txn := f.db.Txn(true)
	defer txn.Abort()
	clearAll(txn)
	if _, err := readSnapshot(rc, txn); err != nil && !errors.Is(err, errEmptySnapshot) {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	// The lock delays were about the keys replaced; Consul's restore,
	// which builds a new state store, forgets them too.
	f.delay.reset()
	txn.Commit()
	return nil
}

// clearAll deletes every row of every table in txn. Deleting in a
// tracked transaction closes the watch channels of every node it copies,
// which is how a restore wakes every blocking query.
func clearAll(txn *memdb.Txn) {
	for _, name := range allTables {
		var err error
		if name == tableKVs {
			// One subtree delete rather than one per key.
			_, err = txn.DeletePrefix(name, "id_prefix", "")
		} else {
			_, err = txn.DeleteAll(name, "id")
		}
		must(err)
	}
}

type fsmSnapshot struct{ v View }

// Persist writes the snapshot stream to sink with a buffered writer.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := writeSnapshot(sink, s.v); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
