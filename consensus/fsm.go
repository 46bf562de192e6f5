package consensus

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	iradix "github.com/hashicorp/go-immutable-radix"
	"github.com/hashicorp/raft"
)

// Entry is one key/value pair with Consul's bookkeeping. CreateIndex and
// ModifyIndex are the Raft log indexes of the entries that created it and
// last changed it. LockIndex counts lock acquisitions; it stays 0 until
// sessions exist. An Entry handed out by a read shares Value with the
// state machine: do not modify it.
type Entry struct {
	Key         string
	Flags       uint64
	Value       []byte
	CreateIndex uint64
	ModifyIndex uint64
	LockIndex   uint64
}

// Result is what an applied command did.
type Result struct {
	// Index is the Raft log index the command was applied at (for
	// View.ReadTxn, the view's applied index).
	Index uint64
	// OK is false when a cas or delete-cas found another ModifyIndex, or
	// when a transaction was rolled back (Errors says why). It is true for
	// every other command.
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

// state is one immutable version of the store. Apply builds the next
// version and publishes it with one atomic store, so reads take no lock
// and a snapshot is a pointer copy.
type state struct {
	// kv maps key to *Entry. Its nodes carry the watch channels that
	// iradix closes when a write copies them.
	kv *iradix.Tree
	// tombs maps the key of a deleted entry, or the prefix of a
	// delete-tree, to the log index of the delete (uint64).
	tombs *iradix.Tree
	// kvIndex is the log index of the last command that changed kv or
	// tombs: Consul's index of the kvs and tombstones tables.
	kvIndex uint64
	// reapThrough is the highest tombstone index reaped so far and
	// reapIndex the log index of that reap; see PrefixIndex.
	reapThrough, reapIndex uint64
	// applied is the index of the last log entry applied.
	applied uint64
}

func emptyState() *state { return &state{kv: iradix.New(), tombs: iradix.New()} }

// FSM is the replicated key/value state machine: Consul's KV store. Raft
// calls Apply (or ApplyBatch), Snapshot and Restore from one goroutine;
// reads (View and the methods that use it) are safe from any goroutine and
// never block writes.
type FSM struct {
	// mu serializes writers. Raft never applies concurrently, but tests
	// and RestoreSnapshot's callers need not know that.
	mu    sync.Mutex
	state atomic.Pointer[state]
	// notify holds the committed radix transactions of the batch being
	// applied; their watch channels are closed once the new state is
	// published, so a woken reader always sees the change.
	notify []*iradix.Txn
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	f := &FSM{}
	f.state.Store(emptyState())
	return f
}

// Apply applies one committed log entry. The response is an error for an
// entry it cannot decode (it never panics), a *Result for a transaction,
// and otherwise a bool: false when a cas or delete-cas did not match.
func (f *FSM) Apply(l *raft.Log) any {
	var resp [1]any
	f.applyBatch([]*raft.Log{l}, resp[:])
	return resp[0]
}

// ApplyBatch applies a batch of committed log entries and publishes the
// result once; the responses are those of Apply. Raft uses it because the
// FSM implements raft.BatchingFSM.
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
	next := *f.state.Load()
	for i, l := range logs {
		// Batches also carry configuration entries, which are Raft's own.
		if l.Type == raft.LogCommand {
			resp[i] = f.applyOne(&next, l)
		}
	}
	next.applied = logs[len(logs)-1].Index
	f.state.Store(&next)
	for i, t := range f.notify {
		t.Notify()
		f.notify[i] = nil
	}
	f.notify = f.notify[:0]
}

// applyOne applies one command to s. A command changes s only when it
// succeeds; a panic (a bug, since input errors are returned) becomes an
// error response on every server alike instead of a crash loop.
func (f *FSM) applyOne(s *state, l *raft.Log) (resp any) {
	defer func() {
		if r := recover(); r != nil {
			resp = fmt.Errorf("apply index %d: internal error: %v", l.Index, r)
		}
	}()
	c, err := decodeCommand(l.Data)
	if err != nil {
		return fmt.Errorf("apply index %d: %w", l.Index, err)
	}
	var t tx
	t.init(s, l.Index, true)
	ok := true
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
			f.commit(s, &t)
		}
		return &res
	}
	f.commit(s, &t)
	return ok
}

func (f *FSM) commit(s *state, t *tx) {
	if !t.kvDirty && !t.tombsDirty {
		return
	}
	if t.kvDirty {
		s.kv = t.kv.CommitOnly()
		f.notify = append(f.notify, t.kv)
	}
	if t.tombsDirty {
		s.tombs = t.tombs.CommitOnly()
	}
	s.kvIndex = t.idx
	if t.reaped {
		s.reapThrough = max(s.reapThrough, t.reapThrough)
		s.reapIndex = t.idx
	}
}

// Snapshot captures the current state. It copies one pointer: the state
// is immutable, so Persist can stream it while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{s: f.state.Load()}, nil
}

// Restore replaces the state with a snapshot stream (see View.WriteTo). It
// reads record by record, builds the new state aside and swaps it in only
// when the whole stream checked out, so a failed Restore changes nothing.
// Every watch fires. An empty stream is an empty state (snapshots of
// earlier versions, which had no KV writes, are empty).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, _, err := readSnapshot(rc, true)
	if err == errEmptySnapshot {
		s, err = emptyState(), nil
	}
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.state.Swap(s)
	closeWatches(old.kv)
	return nil
}

// closeWatches closes the watch channel of every node of t: deleting the
// whole tree in a tracked transaction does exactly that, and t itself is
// not changed.
func closeWatches(t *iradix.Tree) {
	txn := t.Txn()
	txn.TrackMutate(true)
	txn.DeletePrefix(nil)
	txn.Notify()
}

type fsmSnapshot struct{ s *state }

// Persist writes the snapshot stream to sink with a buffered writer.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := writeSnapshot(sink, s.s); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// tx is one command's change to a state: radix transactions on the two
// trees, created as needed.
type tx struct {
	idx       uint64
	kv        *iradix.Txn
	tombsBase *iradix.Tree
	tombs     *iradix.Txn

	kvDirty, tombsDirty bool
	reaped              bool
	reapThrough         uint64
}

func (t *tx) init(s *state, idx uint64, track bool) {
	t.idx = idx
	t.kv = s.kv.Txn()
	t.kv.TrackMutate(track)
	t.tombsBase = s.tombs
}

func (t *tx) tombsTxn() *iradix.Txn {
	if t.tombs == nil {
		t.tombs = t.tombsBase.Txn()
	}
	return t.tombs
}

func (t *tx) tombsRoot() *iradix.Node {
	if t.tombs != nil {
		return t.tombs.Root()
	}
	return t.tombsBase.Root()
}

func (t *tx) get(key []byte) *Entry {
	if v, ok := t.kv.Get(key); ok {
		return v.(*Entry)
	}
	return nil
}

// set writes key as Consul's kvsSetTxn does: it keeps CreateIndex, and a
// write that changes nothing keeps ModifyIndex and wakes no watcher.
func (t *tx) set(key string, value []byte, flags uint64) *Entry {
	kb := []byte(key)
	old := t.get(kb)
	if old != nil && old.Flags == flags && old.LockIndex == 0 && bytes.Equal(old.Value, value) {
		return old
	}
	e := &Entry{Key: key, Flags: flags, CreateIndex: t.idx, ModifyIndex: t.idx}
	if len(value) > 0 {
		// The log entry's buffer is Raft's; the store keeps its own copy.
		e.Value = bytes.Clone(value)
	}
	if old != nil {
		e.CreateIndex = old.CreateIndex
	} else if _, ok := t.tombsRoot().Get(kb); ok {
		// The live entry's ModifyIndex is above the tombstone's, so every
		// index the tombstone contributed to stays as high without it.
		t.tombsTxn().Delete(kb)
		t.tombsDirty = true
	}
	t.kv.Insert(kb, e)
	t.kvDirty = true
	return e
}

func (t *tx) cas(key string, value []byte, flags, index uint64) (*Entry, bool) {
	old := t.get([]byte(key))
	if index == 0 && old != nil || index != 0 && (old == nil || old.ModifyIndex != index) {
		return nil, false
	}
	return t.set(key, value, flags), true
}

// del removes key and leaves a tombstone at this index. A missing key is
// not an error and changes nothing.
func (t *tx) del(key string) {
	kb := []byte(key)
	if _, ok := t.kv.Delete(kb); !ok {
		return
	}
	t.tombsTxn().Insert(kb, t.idx)
	t.kvDirty, t.tombsDirty = true, true
}

// deleteCAS is Consul's kvsDeleteCASTxn: true if the key matched and was
// removed, or did not exist.
func (t *tx) deleteCAS(key string, index uint64) bool {
	old := t.get([]byte(key))
	if old == nil {
		return true
	}
	if old.ModifyIndex != index {
		return false
	}
	t.del(key)
	return true
}

// deleteTree removes every key under prefix. As in Consul it leaves one
// tombstone for the prefix, not one per key (none for the empty prefix,
// whose queries use kvIndex); the tombstones under the prefix are older
// and are dropped.
func (t *tx) deleteTree(prefix string) {
	pb := []byte(prefix)
	if !hasPrefix(t.kv.Root(), pb) {
		return
	}
	t.kv.DeletePrefix(pb)
	t.kvDirty = true
	if hasPrefix(t.tombsRoot(), pb) {
		t.tombsTxn().DeletePrefix(pb)
		t.tombsDirty = true
	}
	if prefix != "" {
		t.tombsTxn().Insert(pb, t.idx)
		t.tombsDirty = true
	}
}

// reap forgets the tombstones at index through or lower.
func (t *tx) reap(through uint64) {
	if through >= t.idx && t.idx > 0 {
		through = t.idx - 1
	}
	var dead [][]byte
	t.tombsRoot().Walk(func(k []byte, v any) bool {
		if v.(uint64) <= through {
			dead = append(dead, k)
		}
		return false
	})
	if len(dead) == 0 {
		return
	}
	tt := t.tombsTxn()
	for _, k := range dead {
		tt.Delete(k)
	}
	t.tombsDirty = true
	t.reaped, t.reapThrough = true, through
}

// txn runs ops in order as Consul's txnDispatch does: every operation
// runs, each failure is recorded with its position, and any failure
// discards all results (the caller then does not commit).
func (t *tx) txn(ops []TxnOp) Result {
	res := Result{Index: t.idx}
	for i, op := range ops {
		if err := t.txnOp(op, &res); err != nil {
			res.Errors = append(res.Errors, TxnError{OpIndex: i, What: err.Error()})
		}
	}
	res.OK = len(res.Errors) == 0
	if !res.OK {
		res.Results = nil
	}
	return res
}

func (t *tx) txnOp(op TxnOp, res *Result) error {
	switch op.Verb {
	case VerbSet:
		res.Results = append(res.Results, withoutValue(t.set(op.Key, op.Value, op.Flags)))
	case VerbCAS:
		e, ok := t.cas(op.Key, op.Value, op.Flags, op.Index)
		if !ok {
			return fmt.Errorf("failed to set key %q, index is stale", op.Key)
		}
		res.Results = append(res.Results, withoutValue(e))
	case VerbGet:
		e := t.get([]byte(op.Key))
		if e == nil {
			return fmt.Errorf("key %q doesn't exist", op.Key)
		}
		res.Results = append(res.Results, *e)
	case VerbGetTree:
		it := t.kv.Root().Iterator()
		it.SeekPrefix([]byte(op.Key))
		for _, v, ok := it.Next(); ok; _, v, ok = it.Next() {
			res.Results = append(res.Results, *v.(*Entry))
		}
	case VerbCheckIndex:
		e := t.get([]byte(op.Key))
		if e == nil {
			return fmt.Errorf("key %q doesn't exist", op.Key)
		}
		if e.ModifyIndex != op.Index {
			return fmt.Errorf("current modify index %d does not match %d", e.ModifyIndex, op.Index)
		}
		res.Results = append(res.Results, withoutValue(e))
	case VerbCheckNotExists:
		if t.get([]byte(op.Key)) != nil {
			return fmt.Errorf("key %q exists", op.Key)
		}
	case VerbDelete:
		t.del(op.Key)
	case VerbDeleteTree:
		t.deleteTree(op.Key)
	case VerbDeleteCAS:
		if !t.deleteCAS(op.Key, op.Index) {
			return fmt.Errorf("failed to delete key %q, index is stale", op.Key)
		}
	default:
		return fmt.Errorf("unknown KV verb %q", op.Verb)
	}
	return nil
}

func withoutValue(e *Entry) Entry {
	c := *e
	c.Value = nil
	return c
}

func hasPrefix(n *iradix.Node, prefix []byte) bool {
	it := n.Iterator()
	it.SeekPrefix(prefix)
	_, _, ok := it.Next()
	return ok
}
