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
// the lock's holder; they stay 0 and empty until sessions exist. An Entry
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
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// NewFSM returns an empty state machine.
func NewFSM() *FSM { return &FSM{db: newDB()} }

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

func (f *FSM) applyBatch(logs []*raft.Log, resp []any) {
	if len(logs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var committed uint64
	for i, l := range logs {
		// Batches also carry configuration entries, which are Raft's own.
		if l.Type == raft.LogCommand {
			var ok bool
			if resp[i], ok = f.applyOne(l); ok {
				committed = l.Index
			}
		}
	}
	// A command that changed nothing, and Raft's own entries, still count
	// as applied.
	if last := logs[len(logs)-1].Index; committed != last {
		txn := f.db.Txn(true)
		setIndex(txn, idxApplied, last)
		txn.Commit()
	}
}

// applyOne applies one command in its own memdb transaction, committed
// only when the command succeeds; ok reports a commit. A panic (a bug,
// since input errors are returned) becomes an error response on every
// server alike instead of a crash loop, and aborts the transaction.
func (f *FSM) applyOne(l *raft.Log) (resp any, ok bool) {
	c, err := decodeCommand(l.Data)
	if err != nil {
		var u unknownTypeError
		if errors.As(err, &u) {
			return fmt.Errorf("unknown command type %d at log index %d: written by a newer Conclave?", u.op, l.Index), false
		}
		return fmt.Errorf("apply index %d: %w", l.Index, err), false
	}
	t := tx{idx: l.Index, mt: f.db.Txn(true)}
	defer func() {
		if r := recover(); r != nil {
			resp, ok = fmt.Errorf("apply index %d: internal error: %v", l.Index, r), false
		}
		t.mt.Abort() // a no-op after Commit
	}()
	ok = true
	switch c.Op {
	case OpSet:
		t.set(c.Key, c.Value, c.Flags)
	case OpDelete:
		t.del(c.Key)
	case OpCAS:
		_, ok = t.cas(c.Key, c.Value, c.Flags, c.Index)
	case OpDeleteCAS:
		ok = t.deleteCAS(c.Key, c.Index)
	case OpDeleteTree:
		t.deleteTree(c.Key)
	case OpReapTombstones:
		t.reap(c.Index)
	case OpTxn:
		res := t.txn(c.Ops)
		if res.OK {
			t.commit()
		}
		return &res, res.OK
	case OpSetClusterMeta:
		ok = t.setClusterMeta(c.ClusterID)
	case OpSetAutopilotConfig:
		ok = t.setAutopilotConfig(c.Autopilot, c.CAS, c.Index)
	}
	if ok {
		t.commit()
	}
	return ok, ok
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
// store, which had no writes, are empty).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	txn := f.db.Txn(true)
	defer txn.Abort()
	clearAll(txn)
	if _, err := readSnapshot(rc, txn); err != nil && err != errEmptySnapshot {
		return fmt.Errorf("restore snapshot: %w", err)
	}
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

// must panics on an error of memdb that the fixed schema rules out: a
// missing table or index, or a row without its key. Apply turns the panic
// into an error response.
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("state store: %v", err))
	}
}

// setIndex writes the named row of tableIndex.
func setIndex(txn *memdb.Txn, name string, v uint64) {
	must(txn.Insert(tableIndex, &indexRow{Name: name, Value: v}))
}

// index reads the named row of tableIndex; 0 if there is none.
func index(txn *memdb.Txn, name string) uint64 {
	raw, err := txn.First(tableIndex, "id", name)
	must(err)
	if raw == nil {
		return 0
	}
	return raw.(*indexRow).Value
}

// tx is one command's change to the store: a memdb write transaction and
// what the command changed, for the index rows written at commit. Reads
// in it see its own writes.
type tx struct {
	idx uint64
	mt  *memdb.Txn

	// changed marks the tables whose index row moves to idx at commit
	// (kvs stands for kvs and tombstones, as Consul's KV index does).
	changed [numIndexed]bool
	// reapThrough is set by a reap that forgot tombstones.
	reaped      bool
	reapThrough uint64
}

// Tables with an index row, by position in tx.changed.
const (
	indexedKVs = iota
	indexedMeta
	indexedAutopilot
	numIndexed
)

var indexedTables = [numIndexed]string{tableKVs, tableMeta, tableAutopilot}

func (t *tx) touch(table int) { t.changed[table] = true }

// commit writes the index rows and commits. memdb publishes the new
// version before it closes the watch channels, so a woken reader always
// sees the change.
func (t *tx) commit() {
	setIndex(t.mt, idxApplied, t.idx)
	for i, changed := range t.changed {
		if changed {
			setIndex(t.mt, indexedTables[i], t.idx)
		}
	}
	if t.reaped {
		setIndex(t.mt, idxReapThrough, max(index(t.mt, idxReapThrough), t.reapThrough))
		setIndex(t.mt, idxReapIndex, t.idx)
	}
	t.mt.Commit()
}
