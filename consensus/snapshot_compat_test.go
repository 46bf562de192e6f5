package consensus

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fixtureV1Commands are the commands, applied at log indexes 1 to 14, that
// produced testdata/snapshot-v1.snap with the first snapshot format (the
// key/value store before tables). The fixture is kept as bytes: it is what
// a server of that release wrote, and must restore for as long as that
// format is supported.
func fixtureV1Commands() []Command {
	return []Command{
		{Op: OpSet, Key: "a/1", Value: []byte("one"), Flags: 1},            // 1
		{Op: OpSet, Key: "z/keep", Value: []byte("k")},                     // 2
		{Op: OpSet, Key: "b/x", Value: []byte("bx"), Flags: 42},            // 3
		{Op: OpSet, Key: "a/2", Value: []byte("two")},                      // 4
		{Op: OpDelete, Key: "a/2"},                                         // 5: tombstone a/2@5
		{Op: OpSet, Key: "c/1", Value: []byte("c1")},                       // 6
		{Op: OpSet, Key: "c/2", Value: []byte("c2")},                       // 7
		{Op: OpDeleteTree, Key: "c/"},                                      // 8: tombstone c/@8
		{Op: OpSet, Key: "d", Value: []byte("dee")},                        // 9
		{Op: OpDelete, Key: "d"},                                           // 10: tombstone d@10
		{Op: OpReapTombstones, Index: 5},                                   // 11: forgets a/2@5
		{Op: OpSet, Key: "a/1", Value: []byte("uno"), Flags: 1},            // 12
		{Op: OpCAS, Key: "b/x", Value: []byte("bx2"), Flags: 42, Index: 3}, // 13
		{Op: OpTxn, Ops: []TxnOp{ // 14
			{Verb: VerbSet, Key: "t/1", Value: []byte("t1")},
			{Verb: VerbSet, Key: "t/empty"},
		}},
	}
}

// TestRestoreSnapshotV1 restores a snapshot written by the first format
// and checks every entry, tombstone and index it must bring back.
func TestRestoreSnapshotV1(t *testing.T) {
	data, err := os.ReadFile("testdata/snapshot-v1.snap")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFSM()
	mustApply(t, f, 1, setCmd("stale", "gone after restore"))
	if err := restore(f, data); err != nil {
		t.Fatalf("Restore(snapshot-v1.snap): %v", err)
	}

	want := []Entry{
		entry("a/1", "uno", 1, 1, 12),
		entry("b/x", "bx2", 42, 3, 13),
		entry("t/1", "t1", 0, 14, 14),
		entry("t/empty", "", 0, 14, 14),
		entry("z/keep", "k", 0, 2, 2),
	}
	v := f.View()
	if diff := cmp.Diff(v.List(""), want); diff != "" {
		t.Errorf("entries after restoring snapshot-v1.snap mismatch (-got +want):\n%s", diff)
	}
	if got := v.AppliedIndex(); got != 14 {
		t.Errorf("AppliedIndex() = %d, want 14", got)
	}
	for _, tc := range []struct {
		name, arg string
		got       func(string) uint64
		want      uint64
	}{
		{"KeyIndex", "a/1", v.KeyIndex, 12},
		{"KeyIndex", "d", v.KeyIndex, 10},        // its tombstone
		{"KeyIndex", "c/", v.KeyIndex, 8},        // the delete-tree's tombstone
		{"KeyIndex", "a/2", v.KeyIndex, 14},      // tombstone reaped: the table index
		{"KeyIndex", "missing", v.KeyIndex, 14},  // the table index
		{"PrefixIndex", "", v.PrefixIndex, 14},   // the table index
		{"PrefixIndex", "a/", v.PrefixIndex, 12}, // a/1
		{"PrefixIndex", "c/", v.PrefixIndex, 8},  // the tombstone of c/
		{"PrefixIndex", "z/", v.PrefixIndex, 11}, // 2 is reaped through 5: the reap's index
		{"PrefixIndex", "q/", v.PrefixIndex, 14}, // nothing there: the table index
	} {
		if got := tc.got(tc.arg); got != tc.want {
			t.Errorf("%s(%q) = %d, want %d", tc.name, tc.arg, got, tc.want)
		}
	}

	info, err := InspectSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("InspectSnapshot(snapshot-v1.snap): %v", err)
	}
	if info.Index != 14 || info.Entries != 5 || info.Tombstones != 2 || info.Size != int64(len(data)) {
		t.Errorf("InspectSnapshot(snapshot-v1.snap) = %+v, want index 14, 5 entries, 2 tombstones, %d bytes", info, len(data))
	}

	// A blocking query at the restored index waits, and the next write,
	// which continues from the restored state, wakes it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	woke := make(chan uint64, 1)
	go func() {
		v, _ := f.WaitPrefix(ctx, "a/", 12)
		woke <- v.PrefixIndex("a/")
	}()
	mustApply(t, f, 15, Command{Op: OpCAS, Key: "a/1", Value: []byte("eins"), Index: 12})
	if got := <-woke; got != 15 {
		t.Errorf("WaitPrefix(a/, 12) on the restored store woke at index %d, want 15", got)
	}
	if e, _ := f.Get("a/1"); e.CreateIndex != 1 || e.ModifyIndex != 15 {
		t.Errorf("after a cas on the restored a/1: %+v, want CreateIndex 1, ModifyIndex 15", e)
	}
}

// fixtureV2Commands are the commands, applied at log indexes 1 to 17, that
// produced testdata/snapshot-v2.snap with format version 2 (the store of
// tables before sessions): the v1 commands, then the cluster metadata, an
// autopilot configuration and a rewrite of it.
func fixtureV2Commands() []Command {
	return append(fixtureV1Commands(),
		Command{Op: OpSetClusterMeta, ClusterID: "c0ffee-cluster"}, // 15
		Command{Op: OpSetAutopilotConfig, Autopilot: AutopilotConfig{ // 16
			CleanupDeadServers: true, LastContactThreshold: 200 * time.Millisecond, MaxTrailingLogs: 250,
			MinQuorum: 3, ServerStabilizationTime: 10 * time.Second}},
		Command{Op: OpSetAutopilotConfig, CAS: true, Index: 16, Autopilot: AutopilotConfig{ // 17
			LastContactThreshold: time.Second, MaxTrailingLogs: 500, ServerStabilizationTime: 5 * time.Second}},
	)
}

// TestRestoreSnapshotV2 restores a snapshot written by format version 2
// and checks it brings back exactly the state its commands build: every
// table, row by row.
func TestRestoreSnapshotV2(t *testing.T) {
	data, err := os.ReadFile("testdata/snapshot-v2.snap")
	if err != nil {
		t.Fatal(err)
	}
	if data[len(snapshotMagic)] != 2 {
		t.Fatalf("snapshot-v2.snap has format version %d, want 2", data[len(snapshotMagic)])
	}
	f := NewFSM()
	mustApply(t, f, 1, setCmd("stale", "gone after restore"))
	if err := restore(f, data); err != nil {
		t.Fatalf("Restore(snapshot-v2.snap): %v", err)
	}
	want := NewFSM()
	for i, c := range fixtureV2Commands() {
		mustApply(t, want, uint64(i+1), c)
	}
	g, w := f.View(), want.View()
	for _, table := range allTables {
		if diff := cmp.Diff(tableRows(g, table), tableRows(w, table)); diff != "" {
			t.Errorf("table %s after restoring snapshot-v2.snap mismatch (-got +want):\n%s", table, diff)
		}
	}
	if got := g.AppliedIndex(); got != 17 {
		t.Errorf("AppliedIndex() = %d, want 17", got)
	}
	if ap, ok := g.AutopilotConfig(); !ok || ap.CreateIndex != 16 || ap.ModifyIndex != 17 || ap.MaxTrailingLogs != 500 {
		t.Errorf("AutopilotConfig() = %+v, %v; want CreateIndex 16, ModifyIndex 17, MaxTrailingLogs 500", ap, ok)
	}
	if m, ok := g.ClusterMeta(); !ok || m.ClusterID != "c0ffee-cluster" {
		t.Errorf("ClusterMeta() = %+v, %v; want c0ffee-cluster", m, ok)
	}
	info, err := InspectSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("InspectSnapshot(snapshot-v2.snap): %v", err)
	}
	if info.Index != 17 || info.Entries != 5 || info.Tombstones != 2 || info.Size != int64(len(data)) {
		t.Errorf("InspectSnapshot(snapshot-v2.snap) = %+v, want index 17, 5 entries, 2 tombstones, %d bytes", info, len(data))
	}
}
