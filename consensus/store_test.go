package consensus

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

// applyBool applies c at idx and returns its bool response.
func applyBool(t *testing.T, f *FSM, idx uint64, c Command) bool {
	t.Helper()
	ok, isBool := applyAt(t, f, idx, c).(bool)
	if !isBool {
		t.Fatalf("Apply(%+v) at %d did not answer a bool", c, idx)
	}
	return ok
}

func TestClusterMeta(t *testing.T) {
	f := NewFSM()
	if m, ok := f.View().ClusterMeta(); ok {
		t.Fatalf("ClusterMeta() of a new store = %+v, true; want none", m)
	}
	want := ClusterMeta{ClusterID: "c1", CreateIndex: 3, ModifyIndex: 3}
	steps := []struct {
		idx  uint64
		id   string
		want bool
	}{
		{3, "c1", true},  // the first write sets it
		{4, "c1", true},  // the same ID again: nothing to change
		{5, "c2", false}, // another ID is refused, as a result
	}
	for _, s := range steps {
		if got := applyBool(t, f, s.idx, Command{Op: OpSetClusterMeta, ClusterID: s.id}); got != s.want {
			t.Errorf("set-cluster-meta %q at %d = %v, want %v", s.id, s.idx, got, s.want)
		}
		got, ok := f.View().ClusterMeta()
		if diff := cmp.Diff(got, want); !ok || diff != "" {
			t.Errorf("ClusterMeta() after set-cluster-meta %q at %d (ok %v) mismatch (-got +want):\n%s", s.id, s.idx, ok, diff)
		}
	}
	v := f.View()
	if got := v.TableIndex(tableMeta); got != 3 {
		t.Errorf("TableIndex(meta) = %d, want 3: only the first write changed the table", got)
	}
	if got := v.AppliedIndex(); got != 5 {
		t.Errorf("AppliedIndex() = %d, want 5: a refused write is still applied", got)
	}
	if got := v.KeyIndex("k"); got != 1 {
		t.Errorf("KeyIndex(k) = %d, want 1: the cluster ID is not a KV write", got)
	}
}

// TestWatchTable checks that a table's watch fires for a write to that
// table and not for one to another.
func TestWatchTable(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("a", "1"))
	v := f.View()
	meta, autopilot, kvs := v.WatchTable(tableMeta), v.WatchTable(tableAutopilot), v.WatchTable(tableKVs)
	mustApply(t, f, 2, Command{Op: OpSetClusterMeta, ClusterID: "c1"})
	if !closed(meta) {
		t.Error("set-cluster-meta did not fire the meta watch")
	}
	if closed(autopilot) || closed(kvs) {
		t.Error("set-cluster-meta fired the watch of another table")
	}
	mustApply(t, f, 3, setCmd("b", "2"))
	if !closed(kvs) || closed(autopilot) {
		t.Errorf("a set: kvs watch closed %v (want true), autopilot %v (want false)", closed(kvs), closed(autopilot))
	}
}

func TestAutopilotConfig(t *testing.T) {
	f := NewFSM()
	cfg := AutopilotConfig{CleanupDeadServers: true, LastContactThreshold: 200 * time.Millisecond,
		MaxTrailingLogs: 250, MinQuorum: 3, ServerStabilizationTime: 10 * time.Second}
	set := func(c AutopilotConfig, cas bool, index uint64) Command {
		return Command{Op: OpSetAutopilotConfig, Autopilot: c, CAS: cas, Index: index}
	}
	changed := cfg
	changed.MinQuorum, changed.CleanupDeadServers = 5, false
	steps := []struct {
		name               string
		idx                uint64
		cmd                Command
		want               bool
		wantCfg            AutopilotConfig
		wantCreate, wantMo uint64
	}{
		// As Consul's AutopilotCASConfig: no configuration, no match.
		{"cas before any", 2, set(cfg, true, 0), false, AutopilotConfig{}, 0, 0},
		{"first set", 3, set(cfg, false, 0), true, cfg, 3, 3},
		{"set again keeps CreateIndex", 4, set(changed, false, 0), true, changed, 3, 4},
		{"cas on a stale index", 5, set(cfg, true, 3), false, changed, 3, 4},
		{"cas on the current index", 6, set(cfg, true, 4), true, cfg, 3, 6},
	}
	for _, s := range steps {
		if got := applyBool(t, f, s.idx, s.cmd); got != s.want {
			t.Errorf("%s: set-autopilot-config at %d = %v, want %v", s.name, s.idx, got, s.want)
		}
		got, ok := f.View().AutopilotConfig()
		want := s.wantCfg
		want.CreateIndex, want.ModifyIndex = s.wantCreate, s.wantMo
		if diff := cmp.Diff(got, want); ok != (s.wantCreate != 0) || diff != "" {
			t.Errorf("%s: AutopilotConfig() (ok %v) mismatch (-got +want):\n%s", s.name, ok, diff)
		}
	}
	if got := f.View().TableIndex(tableAutopilot); got != 6 {
		t.Errorf("TableIndex(autopilot_config) = %d, want 6", got)
	}
}

func TestValidateNewCommands(t *testing.T) {
	for _, c := range []Command{
		{Op: OpSetClusterMeta},
		{Op: OpSetClusterMeta, ClusterID: "\xff"},
		{Op: OpSetAutopilotConfig, Autopilot: AutopilotConfig{LastContactThreshold: -1}},
		{Op: OpSetAutopilotConfig, Autopilot: AutopilotConfig{ServerStabilizationTime: -time.Second}},
	} {
		if err := c.Validate(0); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidCommand", c, err)
		}
	}
	for _, c := range []Command{
		{Op: OpSetClusterMeta, ClusterID: "c1"},
		{Op: OpSetAutopilotConfig, CAS: true, Index: 4},
	} {
		if err := c.Validate(0); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c, err)
		}
	}
}

// TestUnknownCommandType checks that an entry of a type from a newer
// release is an error naming the type and the index, changes nothing and
// is still applied.
func TestUnknownCommandType(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("keep", "me"))
	watch := f.View().WatchPrefix("")
	resp := f.Apply(&raft.Log{Index: 17, Type: raft.LogCommand, Data: []byte{42, 1, 2, 3}})
	err, ok := resp.(error)
	if !ok {
		t.Fatalf("Apply(type 42) = %#v, want an error", resp)
	}
	if want := "unknown command type 42 at log index 17: written by a newer Conclave?"; err.Error() != want {
		t.Errorf("Apply(type 42) = %q, want %q", err, want)
	}
	if diff := cmp.Diff(f.List(""), []Entry{entry("keep", "me", 0, 1, 1)}, equateEmpty); diff != "" {
		t.Errorf("state after an unknown type mismatch (-got +want):\n%s", diff)
	}
	if got := f.AppliedIndex(); got != 17 {
		t.Errorf("AppliedIndex() = %d, want 17", got)
	}
	if closed(watch) {
		t.Error("an unknown type fired a watch")
	}
}

// TestStoreTablesSchema exercises the indexes of the tables whose commands
// come later, so their schema is known to work when they do.
func TestStoreTablesSchema(t *testing.T) {
	db := newDB()
	txn := db.Txn(true)
	for _, row := range []struct {
		table string
		obj   any
	}{
		{tableSessions, &Session{ID: "s1", Node: "n1"}},
		{tableSessions, &Session{ID: "s2", Node: "n1"}},
		{tableSessions, &Session{ID: "s3", Node: "n2"}},
		{tableACLTokens, &aclToken{AccessorID: "a1", SecretID: "secret-1"}},
		{tableACLPolicies, &aclPolicy{ID: "p1", Name: "global-management"}},
	} {
		if err := txn.Insert(row.table, row.obj); err != nil {
			t.Fatalf("Insert(%s, %+v): %v", row.table, row.obj, err)
		}
	}
	txn.Commit()

	r := db.Txn(false)
	it, err := r.Get(tableSessions, "node", "n1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		ids = append(ids, raw.(*Session).ID)
	}
	if diff := cmp.Diff(ids, []string{"s1", "s2"}); diff != "" {
		t.Errorf("sessions of node n1 mismatch (-got +want):\n%s", diff)
	}
	if raw, err := r.First(tableACLTokens, "secretID", "secret-1"); err != nil || raw == nil || raw.(*aclToken).AccessorID != "a1" {
		t.Errorf("token by secret = %+v, %v; want accessor a1", raw, err)
	}
	if raw, err := r.First(tableACLPolicies, "name", "global-management"); err != nil || raw == nil {
		t.Errorf("policy by name = %+v, %v; want one", raw, err)
	}
}

// allTablesStore is a store with rows in every table that commands write.
func allTablesStore(t testing.TB) *FSM {
	f := NewFSM()
	for i, c := range []Command{
		{Op: OpSetClusterMeta, ClusterID: "c-123"},
		{Op: OpSetAutopilotConfig, Autopilot: AutopilotConfig{CleanupDeadServers: true, LastContactThreshold: time.Second,
			MaxTrailingLogs: 100, MinQuorum: 3, ServerStabilizationTime: 5 * time.Second}},
		setCmd("a", "1"),
		setCmd("b/1", "x"),
		{Op: OpDelete, Key: "a"},
		{Op: OpSet, Key: "", Value: []byte("the empty key")},
		{Op: OpDeleteTree, Key: "b/"},
		setCmd("c", strings.Repeat("v", 300)),
		{Op: OpReapTombstones, Index: 5},
		{Op: OpSessionCreate, Session: Session{ID: "s1", Name: "leader", Node: "n1", LockDelay: time.Second,
			Behavior: SessionDelete, TTL: time.Minute, NodeChecks: []string{SerfHealth}}}, // 10
		{Op: OpLock, Key: "d", Value: []byte("held"), Session: Session{ID: "s1"}}, // 11
	} {
		mustApply(t, f, uint64(i+1), c)
	}
	return f
}

func TestSnapshotAllTables(t *testing.T) {
	src := allTablesStore(t)
	data := persist(t, src)
	if again := persist(t, src); !bytes.Equal(again, data) {
		t.Error("two snapshots of the same state differ; Persist should be deterministic")
	}
	if data[len(snapshotMagic)] != snapshotVersion {
		t.Errorf("snapshot version byte = %d, want %d", data[len(snapshotMagic)], snapshotVersion)
	}
	info, err := InspectSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("InspectSnapshot: %v", err)
	}
	want := SnapshotInfo{Index: 11, Entries: 3, Tombstones: 1, Size: int64(len(data)), Tables: []TableCount{
		// applied, autopilot_config, kvs, kvs.reap_index, kvs.reap_through, meta, sessions
		{tableIndex, 7}, {tableMeta, 1}, {tableAutopilot, 1}, {tableKVs, 3}, {tableTombstones, 1}, {tableSessions, 1},
	}}
	if diff := cmp.Diff(info, want); diff != "" {
		t.Errorf("InspectSnapshot mismatch (-got +want):\n%s", diff)
	}

	dst := NewFSM()
	mustApply(t, dst, 1, Command{Op: OpSetClusterMeta, ClusterID: "other"})
	if err := restore(dst, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameState(t, dst, src)
	g, w := dst.View(), src.View()
	for _, table := range []string{tableMeta, tableAutopilot, tableSessions} {
		if diff := cmp.Diff(tableRows(g, table), tableRows(w, table)); diff != "" {
			t.Errorf("restored %s mismatch (-got +want):\n%s", table, diff)
		}
	}
	if m, _ := g.ClusterMeta(); m.ClusterID != "c-123" {
		t.Errorf("restored ClusterMeta() = %+v, want c-123", m)
	}
	// The reap bookkeeping came along: the tombstone of b/ (7) is above
	// the reap, the empty key (6) is not.
	if got := g.PrefixIndex("b/"); got != 7 {
		t.Errorf("restored PrefixIndex(b/) = %d, want 7", got)
	}
	// The lock came along with its session, and the kvs session index
	// was rebuilt: destroying the session deletes the key it holds.
	if e, _ := g.Get("d"); e.Session != "s1" || e.LockIndex != 1 {
		t.Errorf("restored d = %+v, want held by s1 with LockIndex 1", e)
	}
	if got := g.SessionIndex(); got != 10 {
		t.Errorf("restored SessionIndex() = %d, want 10", got)
	}
	mustApply(t, dst, 12, Command{Op: OpSessionDestroy, Session: Session{ID: "s1"}})
	if _, ok := dst.Get("d"); ok {
		t.Error("destroying the restored session s1 left the key it held (behavior delete)")
	}
}

func TestSnapshotTooNew(t *testing.T) {
	data := persist(t, allTablesStore(t))
	data[len(snapshotMagic)] = 9
	f := NewFSM()
	mustApply(t, f, 1, setCmd("old", "state"))
	err := restore(f, data)
	if !errors.Is(err, ErrSnapshotTooNew) {
		t.Fatalf("Restore(version 9) = %v, want ErrSnapshotTooNew", err)
	}
	if want := "snapshot format version 9 is newer than this Conclave supports (3): upgrade"; !strings.Contains(err.Error(), want) {
		t.Errorf("Restore(version 9) = %q, want it to say %q", err, want)
	}
	if _, ierr := InspectSnapshot(bytes.NewReader(data)); !errors.Is(ierr, ErrSnapshotTooNew) {
		t.Errorf("InspectSnapshot(version 9) = %v, want ErrSnapshotTooNew", ierr)
	}
	if e, ok := f.Get("old"); !ok || string(e.Value) != "state" || f.Len() != 1 {
		t.Errorf("a refused restore changed the state: Get(old) = %+v, %v", e, ok)
	}
}

// TestSnapshotV3Malformed checks what the version 3 reader refuses beyond
// what TestSnapshotCorrupt and TestSnapshotTruncated find by flipping and
// cutting, and that version 2, without the sessions section, still reads.
func TestSnapshotV3Malformed(t *testing.T) {
	good := persist(t, allTablesStore(t))
	body := good[len(snapshotMagic)+1 : len(good)-4]
	frameV := func(version byte, b []byte) []byte {
		s := append([]byte(snapshotMagic), version)
		s = append(s, b...)
		return append(s, be32(crc32c(s))...)
	}
	frame := func(b []byte) []byte { return frameV(3, b) }
	// A stream of empty tables, to build on.
	empty := []byte{0x01, 0, 0x02, 0, 0x03, 0, 0x04, 0, 0x05, 0, 0x06, 0, secEnd}
	tail := []byte{0x05, 0, 0x06, 0, secEnd} // after kvs
	session := func(behavior, checks byte) []byte {
		return []byte{0x06, 1, 1, 's', 0, 1, 'n', behavior, 0, 0, checks, 10, 's', 'e', 'r', 'f', 'H', 'e', 'a', 'l', 't', 'h', 1, 1, secEnd}
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"missing table", frame([]byte{0x01, 0, 0x02, 0, 0x04, 0, 0x05, 0, 0x06, 0, secEnd})},
		{"no sessions table", frame(empty[:10])},
		{"tables out of order", frame([]byte{0x02, 0, 0x01, 0, 0x03, 0, 0x04, 0, 0x05, 0, 0x06, 0, secEnd})},
		{"two cluster metas", frame(append([]byte{0x01, 0, 0x02, 2, 1, 'a', 1, 1, 1, 'b', 2, 2}, empty[4:]...))},
		{"kvs out of order", frame(append(append(bytes.Clone(empty[:6]), 0x04, 2, 1, 'b', 0, 1, 1, 0, 0, 0, 1, 'a', 0, 1, 1, 0, 0, 0), tail...))},
		{"autopilot flags", frame(append(append(bytes.Clone(empty[:4]), 0x03, 1, 7, 0, 0, 0, 0, 1, 1, 0x04, 0), tail...))},
		{"session behavior", frame(append(bytes.Clone(empty[:10]), session(2, 1)...))},
		{"session check count past the checks", frame(append(bytes.Clone(empty[:10]), session(0, 0xff)...))},
		{"sessions table in a version 2 stream", frameV(2, empty)},
		{"no end", frame(empty[:len(empty)-1])},
		{"row count past the rows", frame(append(bytes.Clone(empty[:6]), 0x04, 0xff, 0xff, 0xff, 0xff, 0x0f))},
	}
	for _, ok := range [][]byte{frame(empty), frameV(2, append(bytes.Clone(empty[:10]), secEnd)),
		frame(append(bytes.Clone(empty[:10]), session(0, 1)...))} {
		if _, err := InspectSnapshot(bytes.NewReader(ok)); err != nil {
			t.Fatalf("InspectSnapshot(%x) = %v; the hand-built frame is wrong", ok, err)
		}
	}
	if _, err := InspectSnapshot(bytes.NewReader(frameV(3, body))); err != nil {
		t.Fatalf("InspectSnapshot(reframed snapshot) = %v; frame is wrong", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkRestoreFails(t, tc.name, tc.data, ErrCorruptSnapshot)
		})
	}
}

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// TestApplyBatchPanic makes one command of a batch panic after it wrote:
// it answers an error, leaves nothing behind, and the commands before and
// after it in the same shared transaction keep what they did.
func TestApplyBatchPanic(t *testing.T) {
	applyFault = func(c Command) {
		if c.Key == "boom" {
			panic("injected")
		}
	}
	t.Cleanup(func() { applyFault = nil })
	cmds := []Command{
		setCmd("a", "1"),
		{Op: OpDelete, Key: "a"},
		setCmd("b", "2"),
		setCmd("boom", "x"),
		{Op: OpCAS, Key: "b", Value: []byte("3"), Index: 3},
		{Op: OpTxn, Ops: []TxnOp{{Verb: VerbSet, Key: "t", Value: []byte("t")}}},
		setCmd("boom", "y"),
		setCmd("c", "4"),
	}
	var logs []*raft.Log
	for i, c := range cmds {
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: mustEncode(t, c)})
	}
	f := NewFSM()
	watch := f.View().WatchPrefix("")
	resp := f.ApplyBatch(logs)
	for _, i := range []int{3, 6} {
		if err, ok := resp[i].(error); !ok || !strings.Contains(err.Error(), "internal error: injected") {
			t.Errorf("response %d = %v, want the injected panic as an error", i, resp[i])
		}
	}
	for _, i := range []int{0, 1, 2, 4, 7} {
		if resp[i] != true {
			t.Errorf("response %d = %v, want true", i, resp[i])
		}
	}
	want := []Entry{entry("b", "3", 0, 3, 5), entry("c", "4", 0, 8, 8), entry("t", "t", 0, 6, 6)}
	if diff := cmp.Diff(f.List(""), want, equateEmpty); diff != "" {
		t.Errorf("state after the batch mismatch (-got +want):\n%s", diff)
	}
	v := f.View()
	if got := v.KeyIndex("a"); got != 2 {
		t.Errorf("KeyIndex(a) = %d, want 2: the delete before the panic kept its tombstone", got)
	}
	if got := v.AppliedIndex(); got != 8 {
		t.Errorf("AppliedIndex() = %d, want 8", got)
	}
	if !closed(watch) {
		t.Error("the batch fired no watch")
	}
}
