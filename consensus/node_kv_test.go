package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conclavehq/conclave/test/testutil"
)

// startCluster starts n nodes on BoltDB and loopback TCP, bootstraps them
// and returns them with the leader.
func startCluster(t *testing.T, n int) ([]*Node, *Node) {
	t.Helper()
	var nodes []*Node
	var servers []Server
	for i := range n {
		node := newTestNode(t, fmt.Sprintf("node-%d", i+1), nil)
		nodes = append(nodes, node)
		servers = append(servers, self(node))
	}
	if err := nodes[0].Bootstrap(servers); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	return nodes, waitForLeader(t, nodes...)
}

func mustApplyNode(t *testing.T, n *Node, c Command) Result {
	t.Helper()
	res, err := n.Apply(ctxFor(t), c)
	if err != nil {
		t.Fatalf("Apply(%s %q): %v", c.Op, c.Key, err)
	}
	return res
}

// waitApplied waits until every node has applied index.
func waitApplied(t *testing.T, index uint64, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		testutil.WaitFor(t, waitTimeout, func() error {
			if got := n.AppliedIndex(); got < index {
				return fmt.Errorf("%s: AppliedIndex() = %d, want at least %d", n.ID(), got, index)
			}
			return nil
		})
	}
}

// TestKVThreeNodes writes through the leader of a three-server cluster on
// BoltDB and TCP, and checks that every follower ends with the same
// entries and reports the same indexes.
func TestKVThreeNodes(t *testing.T) {
	nodes, leader := startCluster(t, 3)

	r := mustApplyNode(t, leader, Command{Op: OpSet, Key: "config/a", Value: []byte("1"), Flags: 42})
	if !r.OK || r.Index == 0 {
		t.Fatalf("Apply(set) = %+v, want OK at a log index", r)
	}
	a1 := r.Index
	if e, ok := leader.Get("config/a"); !ok || e.CreateIndex != a1 || e.ModifyIndex != a1 || e.Flags != 42 {
		t.Errorf("leader Get(config/a) = %+v, %v; want created and modified at %d with flags 42", e, ok, a1)
	}
	r = mustApplyNode(t, leader, Command{Op: OpCAS, Key: "config/a", Value: []byte("2"), Index: a1})
	if !r.OK {
		t.Errorf("Apply(cas at the current index) = %+v, want OK", r)
	}
	a2 := r.Index
	if r = mustApplyNode(t, leader, Command{Op: OpCAS, Key: "config/a", Value: []byte("3"), Index: a1}); r.OK {
		t.Errorf("Apply(cas at a stale index) = %+v, want not OK", r)
	}
	r = mustApplyNode(t, leader, Command{Op: OpTxn, Ops: []TxnOp{
		{Verb: VerbSet, Key: "config/b", Value: []byte("b")},
		{Verb: VerbCheckIndex, Key: "config/a", Index: a2},
		{Verb: VerbGet, Key: "config/a"},
	}})
	wantResults := []Entry{entry("config/b", "", 0, r.Index, r.Index), entry("config/a", "", 0, a1, a2), entry("config/a", "2", 0, a1, a2)}
	if diff := cmp.Diff(r, Result{Index: r.Index, OK: true, Results: wantResults}, equateEmpty); diff != "" {
		t.Errorf("Apply(txn) mismatch (-got +want):\n%s", diff)
	}
	r = mustApplyNode(t, leader, Command{Op: OpTxn, Ops: []TxnOp{
		{Verb: VerbSet, Key: "config/c", Value: []byte("c")},
		{Verb: VerbCheckIndex, Key: "config/a", Index: a1},
	}})
	want := []TxnError{{OpIndex: 1, What: fmt.Sprintf("current modify index %d does not match %d", a2, a1)}}
	if r.OK || !cmp.Equal(r.Errors, want) {
		t.Errorf("Apply(failing txn) = %+v, want errors %+v", r, want)
	}
	for i := range 5 {
		mustApplyNode(t, leader, setCmd(fmt.Sprintf("tmp/%d", i), "x"))
	}
	mustApplyNode(t, leader, Command{Op: OpDeleteTree, Key: "tmp/"})
	mustApplyNode(t, leader, Command{Op: OpDelete, Key: "config/b"})
	last := mustApplyNode(t, leader, setCmd("svc/web/port", "8080")).Index

	waitApplied(t, last, nodes...)
	lv := leader.View()
	keys := []string{"config/a", "config/b", "config/c", "tmp/3", "svc/web/port", "never"}
	prefixes := []string{"", "config/", "tmp/", "svc/", "none/"}
	for _, n := range nodes {
		if n == leader {
			continue
		}
		v := n.View()
		if diff := cmp.Diff(v.List(""), lv.List(""), equateEmpty); diff != "" {
			t.Errorf("%s: List mismatch with the leader (-follower +leader):\n%s", n.ID(), diff)
		}
		if got, want := v.Keys("", "/"), lv.Keys("", "/"); !slices.Equal(got, want) {
			t.Errorf("%s: Keys(\"\", /) = %q, leader %q", n.ID(), got, want)
		}
		for _, k := range keys {
			if got, want := v.KeyIndex(k), lv.KeyIndex(k); got != want {
				t.Errorf("%s: KeyIndex(%q) = %d, leader %d", n.ID(), k, got, want)
			}
		}
		for _, p := range prefixes {
			if got, want := v.PrefixIndex(p), lv.PrefixIndex(p); got != want {
				t.Errorf("%s: PrefixIndex(%q) = %d, leader %d", n.ID(), p, got, want)
			}
		}
	}

	// A blocking query on a follower wakes for a write on the leader and
	// sees it at the leader's index.
	f := nodes[0]
	if f == leader {
		f = nodes[1]
	}
	min := f.View().PrefixIndex("svc/")
	done := make(chan View, 1)
	go func() {
		v, _ := f.WaitPrefix(ctxFor(t), "svc/", min)
		done <- v
	}()
	r = mustApplyNode(t, leader, setCmd("svc/web/port", "9090"))
	select {
	case v := <-done:
		if e, ok := v.Get("svc/web/port"); !ok || string(e.Value) != "9090" || e.ModifyIndex != r.Index || v.PrefixIndex("svc/") != r.Index {
			t.Errorf("%s: WaitPrefix view has %+v at index %d, want the write at %d", f.ID(), e, v.PrefixIndex("svc/"), r.Index)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("%s: WaitPrefix did not return after a write on the leader", f.ID())
	}

	if _, err := f.Apply(ctxFor(t), setCmd("x", "y")); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Apply on follower %s = %v, want ErrNotLeader", f.ID(), err)
	}
}

// TestApplyValidation checks that a bad command fails before it reaches
// the log.
func TestApplyValidation(t *testing.T) {
	n := newTestNode(t, "node-1", func(c *Config) {
		c.InMemory = true
		c.MaxValueSize = 16
	})
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n)
	mustApplyNode(t, n, Command{Op: OpSet, Key: "fits", Value: make([]byte, 16)})
	before := n.raft.LastIndex()

	cases := []struct {
		name string
		cmd  Command
		want error
	}{
		{"value over the configured limit", Command{Op: OpSet, Key: "big", Value: make([]byte, 17)}, ErrValueTooLarge},
		{"cas value over the limit", Command{Op: OpCAS, Key: "big", Value: make([]byte, 17)}, ErrValueTooLarge},
		{"txn value over the limit", Command{Op: OpTxn, Ops: []TxnOp{{Verb: VerbGet, Key: "a"}, {Verb: VerbSet, Key: "big", Value: make([]byte, 17)}}}, ErrValueTooLarge},
		{"leading slash", setCmd("/etc", "x"), ErrInvalidKey},
		{"invalid UTF-8", setCmd("a\xc3", "x"), ErrInvalidKey},
		{"empty key", setCmd("", "x"), ErrInvalidKey},
		{"unknown op", Command{Op: 42, Key: "k"}, ErrInvalidCommand},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := n.Apply(ctxFor(t), tc.cmd); !errors.Is(err, tc.want) {
				t.Errorf("Apply(%s) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if after := n.raft.LastIndex(); after != before {
		t.Errorf("raft LastIndex went from %d to %d: a rejected command reached the log", before, after)
	}
}

// TestSnapshotSaveRestore saves a cluster's state, changes it, and restores
// the saved state through the leader: every server ends with the saved
// entries, and later writes get indexes past the snapshot's.
func TestSnapshotSaveRestore(t *testing.T) {
	nodes, leader := startCluster(t, 3)
	for i := range 100 {
		mustApplyNode(t, leader, Command{Op: OpSet, Key: fmt.Sprintf("k/%03d", i), Value: []byte{byte(i), 0, 0xff}, Flags: uint64(i)})
	}
	deleted := mustApplyNode(t, leader, Command{Op: OpDelete, Key: "k/050"}).Index

	var saved bytes.Buffer
	info, err := leader.SaveSnapshot(&saved)
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if info.Entries != 99 || info.Tombstones != 1 || info.Size != int64(saved.Len()) || info.Index != leader.AppliedIndex() {
		t.Errorf("SaveSnapshot = %+v, want 99 entries, 1 tombstone, %d bytes, index %d", info, saved.Len(), leader.AppliedIndex())
	}
	savedList := cloneEntries(leader.List(""))

	mustApplyNode(t, leader, setCmd("k/000", "changed"))
	mustApplyNode(t, leader, setCmd("extra", "x"))
	before := mustApplyNode(t, leader, Command{Op: OpDelete, Key: "k/001"}).Index

	ctx := ctxFor(t)
	for _, n := range nodes {
		if n != leader {
			if _, err := n.RestoreSnapshot(ctx, bytes.NewReader(saved.Bytes())); !errors.Is(err, ErrNotLeader) {
				t.Errorf("RestoreSnapshot on follower %s = %v, want ErrNotLeader", n.ID(), err)
			}
		}
	}
	bad := bytes.Clone(saved.Bytes())
	bad[len(bad)/2] ^= 0x40
	for name, data := range map[string][]byte{"corrupt": bad, "truncated": saved.Bytes()[:saved.Len()-3], "empty": nil} {
		if _, err := leader.RestoreSnapshot(ctx, bytes.NewReader(data)); !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("RestoreSnapshot(%s) = %v, want ErrCorruptSnapshot", name, err)
		}
	}
	if _, ok := leader.Get("extra"); !ok {
		t.Fatal("a rejected restore changed the state")
	}

	got, err := leader.RestoreSnapshot(ctx, bytes.NewReader(saved.Bytes()))
	if err != nil {
		t.Fatalf("RestoreSnapshot: %v", err)
	}
	if diff := cmp.Diff(got, info); diff != "" {
		t.Errorf("RestoreSnapshot mismatch (-got +want):\n%s", diff)
	}
	for _, n := range nodes {
		testutil.WaitFor(t, waitTimeout, func() error {
			if diff := cmp.Diff(n.List(""), savedList, equateEmpty); diff != "" {
				return fmt.Errorf("%s: state after restore mismatch (-got +want):\n%s", n.ID(), diff)
			}
			return nil
		})
		// The tombstone came back with the snapshot.
		if got := n.View().KeyIndex("k/050"); got != deleted {
			t.Errorf("%s: KeyIndex(k/050) after restore = %d, want %d (its delete)", n.ID(), got, deleted)
		}
	}
	after := mustApplyNode(t, leader, setCmd("after", "restore")).Index
	if after <= before || after <= info.Index {
		t.Errorf("first write after the restore at index %d, want past %d and %d", after, before, info.Index)
	}
	waitApplied(t, after, nodes...)

	testutil.WaitFor(t, waitTimeout, func() error {
		if leftovers, _ := filepath.Glob(filepath.Join(leader.cfg.DataDir, "raft", "restore-*")); len(leftovers) > 0 {
			return fmt.Errorf("restore files left in data_dir/raft: %v", leftovers)
		}
		return nil
	})
}

// TestSessionsThreeNodes runs two sessions contending for a lock on a
// three-server cluster: every server ends with the same keys and sessions,
// every server records the lock delay of the invalidation it applied, and
// so a new leader refuses an acquire during the delay.
func TestSessionsThreeNodes(t *testing.T) {
	nodes, leader := startCluster(t, 3)
	holder := DefaultSession("11111111-aaaa", "node-1")
	holder.LockDelay = time.Minute
	mustApplyNode(t, leader, createCmd(holder))
	mustApplyNode(t, leader, createCmd(DefaultSession("22222222-bbbb", "node-2")))
	if r := mustApplyNode(t, leader, lockCmd("svc/leader", "one", holder.ID)); !r.OK {
		t.Fatal("first acquire failed")
	}
	if r := mustApplyNode(t, leader, lockCmd("svc/leader", "two", "22222222-bbbb")); r.OK {
		t.Fatal("second session acquired a held lock")
	}
	last := mustApplyNode(t, leader, destroyCmd(holder.ID)).Index

	waitApplied(t, last, nodes...)
	lv := leader.View()
	if e, _ := lv.Get("svc/leader"); e.Session != "" || e.LockIndex != 1 || string(e.Value) != "one" {
		t.Errorf("after the holder's destroy: %+v, want released with LockIndex 1 and its value", e)
	}
	for _, n := range nodes {
		v := n.View()
		if diff := cmp.Diff(v.List(""), lv.List(""), equateEmpty); diff != "" {
			t.Errorf("%s: List mismatch with the leader (-got +leader):\n%s", n.ID(), diff)
		}
		if diff := cmp.Diff(v.SessionList(), lv.SessionList()); diff != "" {
			t.Errorf("%s: SessionList mismatch with the leader (-got +leader):\n%s", n.ID(), diff)
		}
		if got := v.SessionIndex(); got != lv.SessionIndex() {
			t.Errorf("%s: SessionIndex() = %d, leader %d", n.ID(), got, lv.SessionIndex())
		}
		if _, delayed := n.LockDelay("svc/leader"); !delayed {
			t.Errorf("%s: no lock delay on svc/leader after applying the invalidation", n.ID())
		}
	}

	if err := leader.Shutdown(); err != nil {
		t.Fatalf("Shutdown(leader): %v", err)
	}
	var rest []*Node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	next := waitForLeader(t, rest...)
	if r := mustApplyNode(t, next, lockCmd("svc/leader", "two", "22222222-bbbb")); r.OK {
		t.Error("the new leader let an acquire through during the lock delay")
	}
}

// TestRestoreKeepsTheClusterID: a snapshot taken from another cluster (a
// backup restored into a new cluster) brings that cluster's data but not
// its identity: every server keeps the restoring cluster's ID, so none of
// them sees its store name another cluster than its data_dir does. A
// cluster with no ID yet adopts the snapshot's.
func TestRestoreKeepsTheClusterID(t *testing.T) {
	other := NewFSM()
	mustApply(t, other, 1, Command{Op: OpSetClusterMeta, ClusterID: "other-cluster"})
	mustApply(t, other, 2, setCmd("from/other", "v"))
	var snap bytes.Buffer
	if _, err := writeSnapshot(&snap, other.View()); err != nil {
		t.Fatalf("writeSnapshot: %v", err)
	}

	nodes, leader := startCluster(t, 3)
	if _, err := leader.RestoreSnapshot(ctxFor(t), bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatalf("RestoreSnapshot into a cluster without an ID: %v", err)
	}
	for _, n := range nodes {
		testutil.WaitFor(t, waitTimeout, func() error {
			if m, _ := n.View().ClusterMeta(); m.ClusterID != "other-cluster" {
				return fmt.Errorf("%s: cluster ID after restore = %q, want the snapshot's %q", n.ID(), m.ClusterID, "other-cluster")
			}
			return nil
		})
	}

	// Now a cluster with its own ID restores another cluster's snapshot.
	nodes, leader = startCluster(t, 3)
	mustApplyNode(t, leader, Command{Op: OpSetClusterMeta, ClusterID: "this-cluster"})
	if _, err := leader.RestoreSnapshot(ctxFor(t), bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatalf("RestoreSnapshot: %v", err)
	}
	for _, n := range nodes {
		testutil.WaitFor(t, waitTimeout, func() error {
			if _, ok := n.Get("from/other"); !ok {
				return fmt.Errorf("%s: from/other missing after the restore", n.ID())
			}
			if m, _ := n.View().ClusterMeta(); m.ClusterID != "this-cluster" {
				return fmt.Errorf("%s: cluster ID after restore = %q, want %q (its own)", n.ID(), m.ClusterID, "this-cluster")
			}
			return nil
		})
	}
}
