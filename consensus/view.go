package consensus

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// View is one consistent, immutable version of the store: a go-memdb read
// transaction. Reads on a View take no lock, and all of them answer from
// the same Raft index, so an entry and the index reported with it always
// agree. Take a new View to see later writes. The zero View is not usable;
// get one from FSM.View, Node.View or a Wait method.
type View struct{ txn *memdb.Txn }

// View returns the current version of the store.
func (f *FSM) View() View { return View{f.db.Txn(false)} }

// AppliedIndex is the index of the last log entry this version includes
// (for a restored snapshot, the index it was taken at).
func (v View) AppliedIndex() uint64 { return index(v.txn, idxApplied) }

// Len returns the number of keys. It counts them.
func (v View) Len() int {
	n := 0
	v.each("", func(*Entry) { n++ })
	return n
}

func (v View) each(prefix string, fn func(*Entry)) { (&tx{mt: v.txn}).each(prefix, fn) }

func (v View) entry(key string) *Entry { return (&tx{mt: v.txn}).get(key) }

// Get returns the entry for key.
func (v View) Get(key string) (Entry, bool) {
	if e := v.entry(key); e != nil {
		return *e, true
	}
	return Entry{}, false
}

// List returns the entries whose keys begin with prefix, sorted by key.
func (v View) List(prefix string) []Entry {
	var out []Entry
	v.each(prefix, func(e *Entry) { out = append(out, *e) })
	return out
}

// Keys returns the keys that begin with prefix, sorted, as Consul's
// ?keys&separator= does: with a separator, a key that contains it after
// the prefix is cut just after its first occurrence there, and repeats are
// dropped, so "a/b/c" and "a/b/d" under prefix "a/" with separator "/"
// give one "a/b/".
func (v View) Keys(prefix, separator string) []string {
	var out []string
	v.each(prefix, func(e *Entry) {
		k := e.Key
		if separator != "" {
			if i := strings.Index(k[len(prefix):], separator); i >= 0 {
				k = k[:len(prefix)+i+len(separator)]
				// Keys that share a cut are adjacent in key order.
				if n := len(out); n > 0 && out[n-1] == k {
					return
				}
			}
		}
		out = append(out, k)
	})
	return out
}

// kvIndex is the log index of the last command that changed the key/value
// table or its tombstones: Consul's index of the kvs and tombstones tables.
func (v View) kvIndex() uint64 { return index(v.txn, tableKVs) }

// KeyIndex is the index to report (as X-Consul-Index) for a read of key:
// the entry's ModifyIndex; for a missing key, the index of the delete
// that removed it if its tombstone is still kept; otherwise the table's
// last change (Consul's answer for a missing key). It is never 0, since
// index 0 would make a blocking query return at once.
func (v View) KeyIndex(key string) uint64 {
	if e := v.entry(key); e != nil {
		return e.ModifyIndex
	}
	raw, err := v.txn.First(tableTombstones, "id", key)
	must(err)
	if raw != nil {
		return raw.(*tombstone).Index
	}
	return max(v.kvIndex(), 1)
}

// PrefixIndex is the index to report for a list or keys read of prefix:
// the highest ModifyIndex under the prefix or tombstone under it (so a
// delete moves it forward); the table's last change when there is
// neither, or for the empty prefix, as in Consul. Unlike Consul's, it never
// goes backwards when tombstones are reaped: a result no higher than the
// reaped tombstones is raised to the index of the reap. It is never 0.
func (v View) PrefixIndex(prefix string) uint64 {
	if prefix == "" {
		return max(v.kvIndex(), 1)
	}
	var idx uint64
	v.each(prefix, func(e *Entry) { idx = max(idx, e.ModifyIndex) })
	it, err := v.txn.Get(tableTombstones, "id_prefix", prefix)
	must(err)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		idx = max(idx, raw.(*tombstone).Index)
	}
	switch {
	case idx == 0:
		return max(v.kvIndex(), 1)
	case idx <= index(v.txn, idxReapThrough):
		return max(idx, index(v.txn, idxReapIndex))
	}
	return idx
}

// WatchKey returns a channel that is closed when a later write may have
// changed key. It can close for a nearby key too (the channel belongs to
// the closest radix node of the table's index); compare KeyIndex before
// and after.
func (v View) WatchKey(key string) <-chan struct{} {
	ch, _, err := v.txn.FirstWatch(tableKVs, "id", key)
	must(err)
	return ch
}

// WatchPrefix returns a channel that is closed when a later write changes
// a key under prefix. It does not close for keys outside the prefix,
// except when nothing under the prefix exists: then it is the channel of
// the closest radix node, which a write nearby closes too. Registering
// costs nothing and needs no cancel: a watcher that loses interest drops
// the channel.
func (v View) WatchPrefix(prefix string) <-chan struct{} {
	it, err := v.txn.Get(tableKVs, "id_prefix", prefix)
	must(err)
	return it.WatchCh()
}

// WatchTable returns a channel that is closed when a later write changes
// table ("kvs", "tombstones", "meta", "autopilot_config"): the channel of
// the root of the table's primary index, which every write to the table
// copies. A blocking query on a whole table compares TableIndex.
func (v View) WatchTable(table string) <-chan struct{} {
	ch, _, err := v.txn.FirstWatch(table, "id")
	must(err)
	return ch
}

// ClusterMeta returns the cluster's metadata, and false before
// set-cluster-meta has written it.
func (v View) ClusterMeta() (ClusterMeta, bool) {
	raw, err := v.txn.First(tableMeta, "id")
	must(err)
	if raw == nil {
		return ClusterMeta{}, false
	}
	return *raw.(*ClusterMeta), true
}

// AutopilotConfig returns the replicated autopilot configuration, and
// false before set-autopilot-config has written one.
func (v View) AutopilotConfig() (AutopilotConfig, bool) {
	raw, err := v.txn.First(tableAutopilot, "id")
	must(err)
	if raw == nil {
		return AutopilotConfig{}, false
	}
	return *raw.(*AutopilotConfig), true
}

// TableIndex is the log index of the last change to table ("kvs",
// "meta", "autopilot_config", "sessions"), for X-Consul-Index on a read of
// the whole table; 0 if it never changed.
func (v View) TableIndex(table string) uint64 { return index(v.txn, table) }

// SessionGet returns the session with the given ID, and false if there is
// none (never created, or invalidated).
func (v View) SessionGet(id string) (Session, bool) {
	if s := (&tx{mt: v.txn}).session(id); s != nil {
		return cloneSession(s), true
	}
	return Session{}, false
}

// SessionList returns every session, sorted by ID.
func (v View) SessionList() []Session {
	return v.sessions(v.txn.Get(tableSessions, "id"))
}

// SessionsByNode returns the sessions of node, sorted by ID.
func (v View) SessionsByNode(node string) []Session {
	return v.sessions(v.txn.Get(tableSessions, "node", node))
}

func (v View) sessions(it memdb.ResultIterator, err error) []Session {
	must(err)
	var out []Session
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, cloneSession(raw.(*Session)))
	}
	return out
}

func cloneSession(s *Session) Session {
	c := *s
	c.NodeChecks = slices.Clone(s.NodeChecks)
	return c
}

// SessionIndex is the index to report for any read of sessions (info,
// node, list), as Consul reports the sessions table's index: the last
// create or destroy. It is never 0.
func (v View) SessionIndex() uint64 { return max(index(v.txn, tableSessions), 1) }

// WatchSessions returns a channel that is closed when a later write
// creates or destroys a session: the blocking query of every session read
// waits on it and compares SessionIndex.
func (v View) WatchSessions() <-chan struct{} {
	it, err := v.txn.Get(tableSessions, "id_prefix", "")
	must(err)
	return it.WatchCh()
}

// ReadTxn runs a transaction of reads only (get, get-tree, check-index,
// check-not-exists, check-session) against this view, without Raft, as Consul serves a
// read-only /v1/txn. Its Result has the same shape as a written one. It
// returns a *TxnOpError for an invalid operation or one that writes.
func (v View) ReadTxn(ops []TxnOp) (Result, error) {
	for i, op := range ops {
		if err := op.validate(math.MaxInt); err != nil {
			return Result{}, &TxnOpError{OpIndex: i, Err: err}
		}
		if op.Verb.Writes() {
			return Result{}, &TxnOpError{OpIndex: i, Err: errNotRead(op.Verb)}
		}
	}
	// The reads run on the view's read transaction; none of them writes.
	t := tx{idx: v.AppliedIndex(), mt: v.txn}
	return t.txn(ops), nil
}

// WriteTo writes this version as a snapshot stream, the format FSM.Restore
// and Node.RestoreSnapshot read.
func (v View) WriteTo(w io.Writer) (int64, error) {
	info, err := writeSnapshot(w, v)
	return info.Size, err
}

// Get returns the entry for key.
func (f *FSM) Get(key string) (Entry, bool) { return f.View().Get(key) }

// List returns the entries under prefix, sorted by key.
func (f *FSM) List(prefix string) []Entry { return f.View().List(prefix) }

// Keys returns the keys under prefix, cut at separator (see View.Keys).
func (f *FSM) Keys(prefix, separator string) []string { return f.View().Keys(prefix, separator) }

// Len returns the number of keys.
func (f *FSM) Len() int { return f.View().Len() }

// AppliedIndex is the index of the last log entry applied.
func (f *FSM) AppliedIndex() uint64 { return f.View().AppliedIndex() }

// WaitKey blocks until KeyIndex(key) is above minIndex, or ctx ends, and
// returns the view it saw then; when ctx ends it also returns ctx.Err().
// This is a Consul blocking query on one key. It holds no resources once
// it returns, so any number of waiters may come and go.
func (f *FSM) WaitKey(ctx context.Context, key string, minIndex uint64) (View, error) {
	return f.wait(ctx, minIndex, func(v View) (uint64, <-chan struct{}) {
		return v.KeyIndex(key), v.WatchKey(key)
	})
}

// WaitSessions blocks until SessionIndex is above minIndex, or ctx ends:
// the blocking query of /v1/session/info, /node and /list.
func (f *FSM) WaitSessions(ctx context.Context, minIndex uint64) (View, error) {
	return f.wait(ctx, minIndex, func(v View) (uint64, <-chan struct{}) {
		return v.SessionIndex(), v.WatchSessions()
	})
}

// LockDelay returns the end of key's lock delay on this server, and false
// when an acquire of key is not delayed now (see OpLock).
func (f *FSM) LockDelay(key string) (time.Time, bool) { return f.delay.until(key) }

// WaitPrefix is WaitKey for a list or keys read of prefix: it waits until
// PrefixIndex(prefix) is above minIndex.
func (f *FSM) WaitPrefix(ctx context.Context, prefix string, minIndex uint64) (View, error) {
	return f.wait(ctx, minIndex, func(v View) (uint64, <-chan struct{}) {
		return v.PrefixIndex(prefix), v.WatchPrefix(prefix)
	})
}

func (f *FSM) wait(ctx context.Context, minIndex uint64, probe func(View) (uint64, <-chan struct{})) (View, error) {
	for {
		// The watch channel comes from the same version as the index, and
		// Apply closes it only after publishing the next version, so no
		// change can slip between the check and the wait.
		v := f.View()
		idx, ch := probe(v)
		if idx > minIndex {
			return v, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return f.View(), ctx.Err()
		}
	}
}

func errNotRead(v Verb) error { return fmt.Errorf("%w: %s is not a read", ErrInvalidCommand, v) }
