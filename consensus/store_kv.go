package consensus

import (
	"bytes"
	"fmt"
)

// The key/value table's writes and transaction, as Consul's state store
// does them (kvs.go, txn.go).

func (t *tx) get(key string) *Entry {
	raw, err := t.mt.First(tableKVs, "id", key)
	must(err)
	if raw == nil {
		return nil
	}
	return raw.(*Entry)
}

// set writes key as Consul's kvsSetTxn does: it keeps CreateIndex, and a
// write that changes nothing keeps ModifyIndex and wakes no watcher. A
// lock's holder and LockIndex stay: a plain write to a locked key changes
// its value, not its lock, as in Consul.
func (t *tx) set(key string, value []byte, flags uint64) *Entry {
	old := t.get(key)
	e := &Entry{Key: key, Flags: flags, Value: value}
	if old != nil {
		e.LockIndex, e.Session = old.LockIndex, old.Session
	}
	return t.put(old, e)
}

// put writes e over old, the entry stored under e.Key (nil if none),
// setting e's indexes: CreateIndex stays, and an e equal to old in value,
// flags and lock changes nothing and returns old.
func (t *tx) put(old, e *Entry) *Entry {
	if old != nil && old.Flags == e.Flags && old.LockIndex == e.LockIndex && old.Session == e.Session &&
		bytes.Equal(old.Value, e.Value) {
		return old
	}
	e.CreateIndex, e.ModifyIndex = t.idx, t.idx
	if len(e.Value) > 0 {
		// The log entry's buffer is Raft's; the store keeps its own copy.
		e.Value = bytes.Clone(e.Value)
	} else {
		e.Value = nil
	}
	if old != nil {
		e.CreateIndex = old.CreateIndex
	} else {
		raw, err := t.mt.First(tableTombstones, "id", e.Key)
		must(err)
		if raw != nil {
			// The live entry's ModifyIndex is above the tombstone's, so
			// every index the tombstone contributed to stays as high
			// without it.
			must(t.mt.Delete(tableTombstones, raw))
		}
	}
	must(t.mt.Insert(tableKVs, e))
	t.touch(indexedKVs)
	return e
}

func (t *tx) cas(key string, value []byte, flags, index uint64) (*Entry, bool) {
	old := t.get(key)
	if index == 0 && old != nil || index != 0 && (old == nil || old.ModifyIndex != index) {
		return nil, false
	}
	return t.set(key, value, flags), true
}

// del removes key and leaves a tombstone at this index. A missing key is
// not an error and changes nothing.
func (t *tx) del(key string) {
	old := t.get(key)
	if old == nil {
		return
	}
	must(t.mt.Delete(tableKVs, old))
	must(t.mt.Insert(tableTombstones, &tombstone{Key: key, Index: t.idx}))
	t.touch(indexedKVs)
}

// deleteCAS is Consul's kvsDeleteCASTxn: true if the key matched and was
// removed, or did not exist.
func (t *tx) deleteCAS(key string, index uint64) bool {
	old := t.get(key)
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
// whose queries use the table index); the tombstones under the prefix are
// older and are dropped.
func (t *tx) deleteTree(prefix string) {
	found, err := t.mt.DeletePrefix(tableKVs, "id_prefix", prefix)
	must(err)
	if !found {
		return
	}
	_, err = t.mt.DeletePrefix(tableTombstones, "id_prefix", prefix)
	must(err)
	if prefix != "" {
		must(t.mt.Insert(tableTombstones, &tombstone{Key: prefix, Index: t.idx}))
	}
	t.touch(indexedKVs)
}

// reap forgets the tombstones at index through or lower.
func (t *tx) reap(through uint64) {
	if through >= t.idx && t.idx > 0 {
		through = t.idx - 1
	}
	it, err := t.mt.Get(tableTombstones, "id")
	must(err)
	var dead []any
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if raw.(*tombstone).Index <= through {
			dead = append(dead, raw)
		}
	}
	if len(dead) == 0 {
		return
	}
	for _, raw := range dead {
		must(t.mt.Delete(tableTombstones, raw))
	}
	t.touch(indexedKVs)
	t.reapThrough, t.reapIndex = max(t.reapThrough, through), t.idx
}

// each calls fn for every entry under prefix, in key order.
func (t *tx) each(prefix string, fn func(*Entry)) {
	it, err := t.mt.Get(tableKVs, "id_prefix", prefix)
	must(err)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		fn(raw.(*Entry))
	}
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
		e := t.get(op.Key)
		if e == nil {
			return fmt.Errorf("key %q doesn't exist", op.Key)
		}
		res.Results = append(res.Results, *e)
	case VerbGetTree:
		t.each(op.Key, func(e *Entry) { res.Results = append(res.Results, *e) })
	case VerbCheckIndex:
		e := t.get(op.Key)
		if e == nil {
			return fmt.Errorf("key %q doesn't exist", op.Key)
		}
		if e.ModifyIndex != op.Index {
			return fmt.Errorf("current modify index %d does not match %d", e.ModifyIndex, op.Index)
		}
		res.Results = append(res.Results, withoutValue(e))
	case VerbCheckNotExists:
		if t.get(op.Key) != nil {
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
	case VerbLock:
		e, ok, err := t.lock(op.Key, op.Value, op.Flags, op.Session)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("failed to lock key %q, lock is already held", op.Key)
		}
		res.Results = append(res.Results, withoutValue(e))
	case VerbUnlock:
		e, ok := t.unlock(op.Key, op.Value, op.Flags, op.Session)
		if !ok {
			return fmt.Errorf("failed to unlock key %q, lock isn't held, or is held by another session", op.Key)
		}
		res.Results = append(res.Results, withoutValue(e))
	case VerbCheckSession:
		e := t.get(op.Key)
		switch {
		case e == nil:
			return fmt.Errorf("failed to check session, key %q doesn't exist", op.Key)
		case e.Session != op.Session:
			return fmt.Errorf("failed session check for key %q, current session %q != %q", op.Key, e.Session, op.Session)
		}
		res.Results = append(res.Results, withoutValue(e))
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
