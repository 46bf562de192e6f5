package consensus

import (
	"errors"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// Applying a batch. The commands of a batch share one memdb write
// transaction, committed once at the end, so a batch costs one commit and
// one publication, and a reader sees the batch whole or not at all. Two
// kinds of command break the sharing:
//
//   - A transaction (OpTxn) can fail after some of its operations wrote,
//     and must then leave nothing. It runs in a write transaction of its
//     own, committed only if it succeeds; the shared one is committed just
//     before it.
//   - A panic (a bug) can leave the shared transaction half-written. It is
//     aborted and the commands before the failed one are applied again to
//     a fresh transaction. They succeeded once and are deterministic, so
//     they do exactly what they did and answered; the failed one answers
//     an error, on every server alike.
//
// Every other command either writes completely or, when its condition
// fails, not at all, so it cannot leave a partial write behind.

func (f *FSM) applyBatch(logs []*raft.Log, resp []any) {
	if len(logs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := batch{db: f.db, delay: f.delay, logs: logs}
	b.open(0)
	for i, l := range logs {
		// Batches also carry configuration entries, which are Raft's own;
		// they count as applied.
		if l.Type == raft.LogCommand {
			resp[i] = b.apply(i)
		}
		b.last = l.Index
	}
	b.t.commit(b.last)
}

// batch is the state of one applyBatch.
type batch struct {
	db    *memdb.MemDB
	delay *lockDelay
	logs  []*raft.Log
	// t is the shared transaction, opened for the entries from logs[start].
	t     tx
	start int
	// last is the index of the last entry handled.
	last uint64
}

func (b *batch) open(start int) {
	b.t = tx{mt: b.db.Txn(true), delay: b.delay}
	b.start = start
}

// apply applies logs[i] and returns its response.
func (b *batch) apply(i int) any {
	l := b.logs[i]
	c, err := decodeCommand(l.Data)
	if err != nil {
		var u unknownTypeError
		if errors.As(err, &u) {
			return fmt.Errorf("unknown command type %d at log index %d: written by a newer Conclave?", u.op, l.Index)
		}
		return fmt.Errorf("apply index %d: %w", l.Index, err)
	}
	if c.Op == OpTxn {
		b.t.commit(b.last)
		resp := applyTxn(b.db, b.delay, l.Index, c.Ops)
		b.open(i + 1)
		return resp
	}
	resp, panicked := b.t.applySafe(l.Index, c)
	if panicked {
		b.t.mt.Abort()
		b.open(b.start)
		b.replay(i)
	}
	return resp
}

// replay applies the commands of logs[b.start:end] again, after a panic
// in logs[end] threw their writes away. None of them is a transaction
// (one would have ended the shared transaction) and none panicked.
func (b *batch) replay(end int) {
	for _, l := range b.logs[b.start:end] {
		if l.Type != raft.LogCommand {
			continue
		}
		if c, err := decodeCommand(l.Data); err == nil {
			b.t.applySafe(l.Index, c)
		}
	}
	b.start = end + 1
}

// applyFault, when set (by tests only), runs before each command of a
// shared transaction, so a test can make one panic halfway.
var applyFault func(Command)

// applySafe applies one command other than a transaction to the shared
// transaction. It reports a panic, recovered into the error response.
func (t *tx) applySafe(idx uint64, c Command) (resp any, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			resp, panicked = fmt.Errorf("apply index %d: internal error: %v", idx, r), true
		}
	}()
	t.idx = idx
	if applyFault != nil {
		applyFault(c)
	}
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
	case OpSetClusterMeta:
		ok = t.setClusterMeta(c.ClusterID)
	case OpSetAutopilotConfig:
		ok = t.setAutopilotConfig(c.Autopilot, c.CAS, c.Index)
	case OpSessionCreate:
		ok = t.sessionCreate(c.Session)
	case OpSessionDestroy:
		t.sessionDestroy(c.Session.ID)
	case OpLock:
		var err error
		if _, ok, err = t.lock(c.Key, c.Value, c.Flags, c.Session.ID); err != nil {
			return err, false
		}
	case OpUnlock:
		_, ok = t.unlock(c.Key, c.Value, c.Flags, c.Session.ID)
	default:
		// decodeCommand knows no other type.
		panic(fmt.Sprintf("no apply for %s", c.Op))
	}
	return ok, false
}

// applyTxn runs a transaction in a write transaction of its own, committed
// only when every operation succeeded.
func applyTxn(db *memdb.MemDB, delay *lockDelay, idx uint64, ops []TxnOp) (resp any) {
	t := tx{idx: idx, mt: db.Txn(true), delay: delay}
	defer func() {
		if r := recover(); r != nil {
			resp = fmt.Errorf("apply index %d: internal error: %v", idx, r)
		}
		t.mt.Abort() // a no-op after Commit
	}()
	res := t.txn(ops)
	if res.OK {
		t.commit(idx)
	}
	return &res
}

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

// tx is a change to the store in progress: a memdb write transaction (or,
// for View.ReadTxn, a read one), the index of the command being applied,
// and what the commands so far changed, for the index rows written at
// commit. Reads in it see its own writes.
type tx struct {
	idx uint64
	mt  *memdb.Txn

	// changed holds, per table with an index row, the index of the last
	// command that changed it; 0 if none did (kvs stands for kvs and
	// tombstones, as Consul's KV index does).
	changed [numIndexed]uint64
	// reapThrough is the highest tombstone index reaped and reapIndex the
	// index of that reap; 0 without one.
	reapThrough, reapIndex uint64
	// delays are the lock delays of the invalidations so far, recorded in
	// delay at commit (nil for View.ReadTxn, which never commits).
	delays []keyDelay
	delay  *lockDelay
}

// Tables with an index row, by position in tx.changed.
const (
	indexedKVs = iota
	indexedMeta
	indexedAutopilot
	indexedSessions
	numIndexed
)

var indexedTables = [numIndexed]string{tableKVs, tableMeta, tableAutopilot, tableSessions}

func (t *tx) touch(table int) { t.changed[table] = t.idx }

// commit writes the index rows, with applied as the index of the last
// entry applied, and commits. memdb publishes the new version before it
// closes the watch channels, so a woken reader always sees the change.
func (t *tx) commit(applied uint64) {
	if applied != 0 {
		setIndex(t.mt, idxApplied, applied)
	}
	for i, idx := range t.changed {
		if idx != 0 {
			setIndex(t.mt, indexedTables[i], idx)
		}
	}
	if t.reapIndex != 0 {
		setIndex(t.mt, idxReapThrough, max(index(t.mt, idxReapThrough), t.reapThrough))
		setIndex(t.mt, idxReapIndex, t.reapIndex)
	}
	// The delays are in place before the keys they guard are seen
	// unlocked, so the leader's acquire check never sees one without the
	// other.
	t.delay.set(t.delays)
	t.delays = nil
	t.mt.Commit()
}
