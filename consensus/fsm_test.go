package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

// applyAt applies c at log index idx and returns the response.
func applyAt(t testing.TB, f *FSM, idx uint64, c Command) any {
	t.Helper()
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: mustEncode(t, c)})
}

// mustApply applies c at idx and fails unless it went through.
func mustApply(t testing.TB, f *FSM, idx uint64, c Command) {
	t.Helper()
	switch resp := applyAt(t, f, idx, c).(type) {
	case bool:
		if !resp {
			t.Fatalf("Apply(%+v) at %d = false, want true", c, idx)
		}
	case *Result:
		if !resp.OK {
			t.Fatalf("Apply(%+v) at %d: txn rolled back: %+v", c, idx, resp.Errors)
		}
	default:
		t.Fatalf("Apply(%+v) at %d = %#v, want success", c, idx, resp)
	}
}

func setCmd(key, value string) Command { return Command{Op: OpSet, Key: key, Value: []byte(value)} }

func cloneEntries(es []Entry) []Entry {
	out := slices.Clone(es)
	for i := range out {
		out[i].Value = bytes.Clone(out[i].Value)
	}
	return out
}

// entry builds the Entry a test expects.
func entry(key, value string, flags, create, modify uint64) Entry {
	e := Entry{Key: key, Flags: flags, CreateIndex: create, ModifyIndex: modify}
	if value != "" {
		e.Value = []byte(value)
	}
	return e
}

// TestFSMSetDeleteBookkeeping walks one key through its life and checks the
// entry and the store's index after each step.
func TestFSMSetDeleteBookkeeping(t *testing.T) {
	steps := []struct {
		name      string
		cmd       Command
		want      *Entry // nil: key "k" absent
		wantIndex uint64 // KeyIndex("k")
		wantStore uint64 // PrefixIndex(""), the store's last change
	}{
		{"create", Command{Op: OpSet, Key: "k", Value: []byte("1"), Flags: 5}, &Entry{Key: "k", Value: []byte("1"), Flags: 5, CreateIndex: 1, ModifyIndex: 1}, 1, 1},
		{"modify", setCmd("k", "2"), &Entry{Key: "k", Value: []byte("2"), CreateIndex: 1, ModifyIndex: 2}, 2, 2},
		{"same value and flags is a no-op", setCmd("k", "2"), &Entry{Key: "k", Value: []byte("2"), CreateIndex: 1, ModifyIndex: 2}, 2, 2},
		{"new flags", Command{Op: OpSet, Key: "k", Value: []byte("2"), Flags: 6}, &Entry{Key: "k", Value: []byte("2"), Flags: 6, CreateIndex: 1, ModifyIndex: 4}, 4, 4},
		{"empty value", Command{Op: OpSet, Key: "k", Flags: 6}, &Entry{Key: "k", Flags: 6, CreateIndex: 1, ModifyIndex: 5}, 5, 5},
		{"other key", setCmd("other", "x"), &Entry{Key: "k", Flags: 6, CreateIndex: 1, ModifyIndex: 5}, 5, 6},
		{"delete", Command{Op: OpDelete, Key: "k"}, nil, 7, 7},
		{"delete again is a no-op", Command{Op: OpDelete, Key: "k"}, nil, 7, 7},
		{"other key after delete", setCmd("other", "y"), nil, 7, 9},
		{"recreate", setCmd("k", "3"), &Entry{Key: "k", Value: []byte("3"), CreateIndex: 10, ModifyIndex: 10}, 10, 10},
	}
	f := NewFSM()
	for i, st := range steps {
		idx := uint64(i + 1)
		mustApply(t, f, idx, st.cmd)
		v := f.View()
		got, ok := v.Get("k")
		switch {
		case st.want == nil && ok:
			t.Errorf("step %d (%s): Get(k) = %+v, want absent", idx, st.name, got)
		case st.want != nil && !ok:
			t.Errorf("step %d (%s): Get(k) absent, want %+v", idx, st.name, *st.want)
		case st.want != nil:
			if diff := cmp.Diff(got, *st.want, equateEmpty); diff != "" {
				t.Errorf("step %d (%s): Get(k) mismatch (-got +want):\n%s", idx, st.name, diff)
			}
		}
		if got := v.KeyIndex("k"); got != st.wantIndex {
			t.Errorf("step %d (%s): KeyIndex(k) = %d, want %d", idx, st.name, got, st.wantIndex)
		}
		if got := v.PrefixIndex(""); got != st.wantStore {
			t.Errorf("step %d (%s): PrefixIndex(\"\") = %d, want %d", idx, st.name, got, st.wantStore)
		}
		if got := v.AppliedIndex(); got != idx {
			t.Errorf("step %d (%s): AppliedIndex() = %d, want %d", idx, st.name, got, idx)
		}
	}
}

// TestFSMCAS runs each case on a store holding "a" (created at 1, modified
// at 2) and the tombstone of "gone" (deleted at 4), at index 10.
func TestFSMCAS(t *testing.T) {
	a := entry("a", "v2", 0, 1, 2)
	cases := []struct {
		name   string
		cmd    Command
		wantOK bool
		want   []Entry // the whole store afterwards
	}{
		{"cas matching index", Command{Op: OpCAS, Key: "a", Value: []byte("new"), Index: 2}, true, []Entry{entry("a", "new", 0, 1, 10)}},
		{"cas stale index", Command{Op: OpCAS, Key: "a", Value: []byte("new"), Index: 1}, false, []Entry{a}},
		{"cas index 0 on an existing key", Command{Op: OpCAS, Key: "a", Value: []byte("new")}, false, []Entry{a}},
		{"cas index 0 on a missing key", Command{Op: OpCAS, Key: "b", Value: []byte("new"), Flags: 3}, true, []Entry{a, entry("b", "new", 3, 10, 10)}},
		{"cas index 0 on a deleted key", Command{Op: OpCAS, Key: "gone", Value: []byte("back")}, true, []Entry{a, entry("gone", "back", 0, 10, 10)}},
		{"cas nonzero index on a missing key", Command{Op: OpCAS, Key: "b", Value: []byte("new"), Index: 2}, false, []Entry{a}},
		{"cas matching index, same value", Command{Op: OpCAS, Key: "a", Value: []byte("v2"), Index: 2}, true, []Entry{a}},
		{"delete-cas matching index", Command{Op: OpDeleteCAS, Key: "a", Index: 2}, true, nil},
		{"delete-cas stale index", Command{Op: OpDeleteCAS, Key: "a", Index: 1}, false, []Entry{a}},
		{"delete-cas index 0", Command{Op: OpDeleteCAS, Key: "a"}, false, []Entry{a}},
		{"delete-cas missing key succeeds, as in Consul", Command{Op: OpDeleteCAS, Key: "b", Index: 7}, true, []Entry{a}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			mustApply(t, f, 1, setCmd("a", "v1"))
			mustApply(t, f, 2, setCmd("a", "v2"))
			mustApply(t, f, 3, setCmd("gone", "x"))
			mustApply(t, f, 4, Command{Op: OpDelete, Key: "gone"})
			before := f.View()

			resp := applyAt(t, f, 10, tc.cmd)
			if resp != tc.wantOK {
				t.Fatalf("Apply(%s) = %v, want %v", tc.name, resp, tc.wantOK)
			}
			if diff := cmp.Diff(f.List(""), tc.want, equateEmpty); diff != "" {
				t.Errorf("store after %s mismatch (-got +want):\n%s", tc.name, diff)
			}
			changed := !cmp.Equal(before.List(""), tc.want, equateEmpty)
			wantStore := uint64(4)
			if changed {
				wantStore = 10
			}
			if got := f.View().PrefixIndex(""); got != wantStore {
				t.Errorf("store index after %s = %d, want %d", tc.name, got, wantStore)
			}
		})
	}
}

func TestFSMDeleteTree(t *testing.T) {
	keys := []string{"a", "a/1", "a/2", "a/b/3", "ab", "b/1"}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a", "ab", "b/1"}},
		{"a", []string{"b/1"}},
		{"a/b/", []string{"a", "a/1", "a/2", "ab", "b/1"}},
		{"a/b/3", []string{"a", "a/1", "a/2", "ab", "b/1"}},
		{"c/", keys},
		{"", nil},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q", tc.prefix), func(t *testing.T) {
			f := NewFSM()
			for i, k := range keys {
				mustApply(t, f, uint64(i+1), setCmd(k, k))
			}
			last := uint64(len(keys))
			mustApply(t, f, 20, Command{Op: OpDeleteTree, Key: tc.prefix})
			if got := f.Keys("", ""); !slices.Equal(got, tc.want) {
				t.Errorf("Keys after delete-tree %q = %q, want %q", tc.prefix, got, tc.want)
			}
			v := f.View()
			if len(tc.want) == len(keys) {
				// Nothing matched: nothing changed, not even the index.
				if got := v.PrefixIndex(""); got != last {
					t.Errorf("store index after a delete-tree that matched nothing = %d, want %d", got, last)
				}
				return
			}
			if got := v.PrefixIndex(tc.prefix); got != 20 {
				t.Errorf("PrefixIndex(%q) after delete-tree = %d, want 20", tc.prefix, got)
			}
			if got := v.KeyIndex("a/1"); !slices.Contains(tc.want, "a/1") && got != 20 {
				t.Errorf("KeyIndex(a/1) after delete-tree %q = %d, want 20", tc.prefix, got)
			}
		})
	}
}

func TestFSMTxn(t *testing.T) {
	// Every case starts from: a=1 (created at 1), b=2 (created at 2),
	// p/x and p/y (at 3 and 4); the transaction is applied at 10.
	a := entry("a", "1", 0, 1, 1)
	b := entry("b", "2", 0, 2, 2)
	px, py := entry("p/x", "x", 0, 3, 3), entry("p/y", "y", 0, 4, 4)
	initial := []Entry{a, b, px, py}
	noValue := func(e Entry) Entry { e.Value = nil; return e }

	cases := []struct {
		name        string
		ops         []TxnOp
		wantResults []Entry
		wantErrors  []TxnError
		wantStore   []Entry
	}{
		{
			name: "writes and reads",
			ops: []TxnOp{
				{Verb: VerbSet, Key: "c", Value: []byte("3"), Flags: 9},
				{Verb: VerbCAS, Key: "a", Value: []byte("1b"), Index: 1},
				{Verb: VerbGet, Key: "c"},
				{Verb: VerbCheckIndex, Key: "b", Index: 2},
				{Verb: VerbCheckNotExists, Key: "zz"},
				{Verb: VerbDeleteCAS, Key: "b", Index: 2},
				{Verb: VerbCheckNotExists, Key: "b"},
				{Verb: VerbGetTree, Key: "p/"},
				{Verb: VerbDelete, Key: "p/x"},
			},
			wantResults: []Entry{
				entry("c", "", 9, 10, 10),
				entry("a", "", 0, 1, 10),
				entry("c", "3", 9, 10, 10),
				noValue(b),
				px, py,
			},
			wantStore: []Entry{entry("a", "1b", 0, 1, 10), entry("c", "3", 9, 10, 10), py},
		},
		{
			name: "a failing check in the middle writes nothing",
			ops: []TxnOp{
				{Verb: VerbSet, Key: "new", Value: []byte("n")},
				{Verb: VerbDelete, Key: "a"},
				{Verb: VerbCheckIndex, Key: "b", Index: 3},
				{Verb: VerbDeleteTree, Key: "p/"},
				{Verb: VerbSet, Key: "b", Value: []byte("changed")},
			},
			wantErrors: []TxnError{{OpIndex: 2, What: "current modify index 2 does not match 3"}},
			wantStore:  initial,
		},
		{
			name: "every failure is reported",
			ops: []TxnOp{
				{Verb: VerbGet, Key: "missing"},
				{Verb: VerbCAS, Key: "a", Value: []byte("x"), Index: 7},
				{Verb: VerbSet, Key: "ok", Value: []byte("x")},
				{Verb: VerbDeleteCAS, Key: "b", Index: 1},
				{Verb: VerbCheckNotExists, Key: "ok"},
				{Verb: VerbCheckIndex, Key: "nope", Index: 1},
				{Verb: VerbCAS, Key: "b", Value: []byte("x")},
			},
			wantErrors: []TxnError{
				{OpIndex: 0, What: `key "missing" doesn't exist`},
				{OpIndex: 1, What: `failed to set key "a", index is stale`},
				{OpIndex: 3, What: `failed to delete key "b", index is stale`},
				{OpIndex: 4, What: `key "ok" exists`},
				{OpIndex: 5, What: `key "nope" doesn't exist`},
				{OpIndex: 6, What: `failed to set key "b", index is stale`},
			},
			wantStore: initial,
		},
		{
			name: "delete-tree then recreate",
			ops: []TxnOp{
				{Verb: VerbDeleteTree, Key: "p/"},
				{Verb: VerbCheckNotExists, Key: "p/x"},
				{Verb: VerbCAS, Key: "p/x", Value: []byte("again")},
				{Verb: VerbGetTree, Key: "p/"},
			},
			wantResults: []Entry{entry("p/x", "", 0, 10, 10), entry("p/x", "again", 0, 10, 10)},
			wantStore:   []Entry{a, b, entry("p/x", "again", 0, 10, 10)},
		},
		{
			name:      "empty",
			wantStore: initial,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			for i, e := range initial {
				mustApply(t, f, uint64(i+1), setCmd(e.Key, string(e.Value)))
			}
			watch := f.View().WatchPrefix("")

			resp, ok := applyAt(t, f, 10, Command{Op: OpTxn, Ops: tc.ops}).(*Result)
			if !ok {
				t.Fatalf("Apply(txn) did not return a *Result")
			}
			want := &Result{Index: 10, OK: tc.wantErrors == nil, Results: tc.wantResults, Errors: tc.wantErrors}
			if diff := cmp.Diff(resp, want, equateEmpty); diff != "" {
				t.Errorf("Apply(txn) mismatch (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(f.List(""), tc.wantStore, equateEmpty); diff != "" {
				t.Errorf("store after txn mismatch (-got +want):\n%s", diff)
			}
			changed := !cmp.Equal(tc.wantStore, initial, equateEmpty)
			select {
			case <-watch:
				if !changed {
					t.Error("a transaction that wrote nothing fired a watch")
				}
			default:
				if changed {
					t.Error("a committed transaction did not fire the watch")
				}
			}
			wantStoreIndex := uint64(len(initial))
			if changed {
				wantStoreIndex = 10
			}
			if got := f.View().PrefixIndex(""); got != wantStoreIndex {
				t.Errorf("store index after txn = %d, want %d", got, wantStoreIndex)
			}
		})
	}
}

func TestReadTxn(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("a", "1"))
	mustApply(t, f, 2, setCmd("p/x", "x"))
	v := f.View()

	got, err := v.ReadTxn([]TxnOp{{Verb: VerbGet, Key: "a"}, {Verb: VerbCheckIndex, Key: "p/x", Index: 2}, {Verb: VerbGetTree, Key: "p/"}, {Verb: VerbCheckNotExists, Key: "b"}})
	if err != nil {
		t.Fatalf("ReadTxn: %v", err)
	}
	want := Result{Index: 2, OK: true, Results: []Entry{entry("a", "1", 0, 1, 1), entry("p/x", "", 0, 2, 2), entry("p/x", "x", 0, 2, 2)}}
	if diff := cmp.Diff(got, want, equateEmpty); diff != "" {
		t.Errorf("ReadTxn mismatch (-got +want):\n%s", diff)
	}

	got, err = v.ReadTxn([]TxnOp{{Verb: VerbGet, Key: "a"}, {Verb: VerbCheckIndex, Key: "a", Index: 5}})
	if err != nil {
		t.Fatalf("ReadTxn: %v", err)
	}
	want = Result{Index: 2, Errors: []TxnError{{OpIndex: 1, What: "current modify index 1 does not match 5"}}}
	if diff := cmp.Diff(got, want, equateEmpty); diff != "" {
		t.Errorf("failing ReadTxn mismatch (-got +want):\n%s", diff)
	}

	for _, ops := range [][]TxnOp{
		{{Verb: VerbGet, Key: "a"}, {Verb: VerbSet, Key: "a"}},
		{{Verb: VerbGet, Key: "a"}, {Verb: VerbGet, Key: "/a"}},
	} {
		_, err := v.ReadTxn(ops)
		var opErr *TxnOpError
		if !errors.As(err, &opErr) || opErr.OpIndex != 1 {
			t.Errorf("ReadTxn(%+v) = %v, want a *TxnOpError for op 1", ops, err)
		}
	}
	if got := f.List(""); len(got) != 2 {
		t.Errorf("ReadTxn changed the store: %+v", got)
	}
}

func TestFSMApplyCopiesValue(t *testing.T) {
	f := NewFSM()
	data := mustEncode(t, Command{Op: OpSet, Key: "k", Value: []byte("before")})
	if resp := f.Apply(&raft.Log{Index: 1, Data: data}); resp != true {
		t.Fatalf("Apply = %v, want true", resp)
	}
	// Raft may reuse the log's buffer; the stored key and value must not
	// alias it.
	for i := range data {
		data[i] = 'x'
	}
	if e, ok := f.Get("k"); !ok || string(e.Value) != "before" {
		t.Errorf("Get(k) after the log buffer changed = %q, %v; want \"before\"", e.Value, ok)
	}
}

func TestFSMApplyMalformed(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated key", []byte{byte(OpSet), 0, 10, 'k'}},
		{"unknown op", []byte{9, 1, 'k'}},
		{"txn with an unknown verb", []byte{byte(OpTxn), 1, 99, 0, 0, 1, 'k', 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			mustApply(t, f, 1, setCmd("keep", "me"))
			watch := f.View().WatchPrefix("")
			resp := f.Apply(&raft.Log{Index: 7, Data: tc.data})
			err, ok := resp.(error)
			if !ok {
				t.Fatalf("Apply(%x) = %#v, want an error value", tc.data, resp)
			}
			if !strings.Contains(err.Error(), "index 7") {
				t.Errorf("Apply error = %q, want it to name the log index 7", err)
			}
			if diff := cmp.Diff(f.List(""), []Entry{entry("keep", "me", 0, 1, 1)}, equateEmpty); diff != "" {
				t.Errorf("state after a malformed entry mismatch (-got +want):\n%s", diff)
			}
			if got := f.AppliedIndex(); got != 7 {
				t.Errorf("AppliedIndex() = %d, want 7: a malformed entry is still applied", got)
			}
			select {
			case <-watch:
				t.Error("a malformed entry fired a watch")
			default:
			}
		})
	}
}

// TestFSMApplyBatch checks that a batch answers each log in place, skips
// Raft's own entries and leaves the same state as applying one by one.
func TestFSMApplyBatch(t *testing.T) {
	cmds := []Command{
		setCmd("a", "1"),
		{Op: OpCAS, Key: "a", Value: []byte("2"), Index: 1},
		{Op: OpCAS, Key: "a", Value: []byte("3"), Index: 1},
		{Op: OpTxn, Ops: []TxnOp{{Verb: VerbGet, Key: "a"}}},
		{Op: OpDelete, Key: "a"},
		setCmd("b", "1"),
	}
	var logs []*raft.Log
	for i, c := range cmds {
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: mustEncode(t, c)})
		if i == 2 {
			logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogConfiguration, Data: []byte("not a command")})
		}
	}
	batched := NewFSM()
	resp := batched.ApplyBatch(logs)
	want := []any{true, true, false, nil, &Result{Index: 5, OK: true, Results: []Entry{entry("a", "2", 0, 1, 2)}}, true, true}
	if diff := cmp.Diff(resp, want, equateEmpty); diff != "" {
		t.Errorf("ApplyBatch responses mismatch (-got +want):\n%s", diff)
	}
	single := NewFSM()
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			single.Apply(l)
		}
	}
	if diff := cmp.Diff(batched.List(""), single.List(""), equateEmpty); diff != "" {
		t.Errorf("batched and single applies differ (-batched +single):\n%s", diff)
	}
	if got := batched.AppliedIndex(); got != 7 {
		t.Errorf("AppliedIndex() after the batch = %d, want 7", got)
	}
	if got, want := batched.View().KeyIndex("a"), uint64(6); got != want {
		t.Errorf("KeyIndex(a) = %d, want %d (its delete)", got, want)
	}
}

func TestKeys(t *testing.T) {
	f := NewFSM()
	for i, k := range []string{"a", "a/b", "a/b/c", "a/b/d", "a/d", "ab", "b/c/d", "b/x", "x--y--z", "x--w"} {
		mustApply(t, f, uint64(i+1), setCmd(k, ""))
	}
	cases := []struct {
		prefix, sep string
		want        []string
	}{
		{"", "", []string{"a", "a/b", "a/b/c", "a/b/d", "a/d", "ab", "b/c/d", "b/x", "x--w", "x--y--z"}},
		{"", "/", []string{"a", "a/", "ab", "b/", "x--w", "x--y--z"}},
		{"a/", "/", []string{"a/b", "a/b/", "a/d"}},
		{"a/b", "/", []string{"a/b", "a/b/"}},
		{"a", "/", []string{"a", "a/", "ab"}},
		{"b/", "/", []string{"b/c/", "b/x"}},
		{"b/", "", []string{"b/c/d", "b/x"}},
		{"", "--", []string{"a", "a/b", "a/b/c", "a/b/d", "a/d", "ab", "b/c/d", "b/x", "x--"}},
		{"x--", "--", []string{"x--w", "x--y--"}},
		{"zz", "/", nil},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q %q", tc.prefix, tc.sep), func(t *testing.T) {
			if got := f.Keys(tc.prefix, tc.sep); !slices.Equal(got, tc.want) {
				t.Errorf("Keys(%q, %q) = %q, want %q", tc.prefix, tc.sep, got, tc.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	f := NewFSM()
	// Applied out of key order; List returns key order.
	for i, k := range []string{"b", "a/2", "a/1", "a", "a/10"} {
		mustApply(t, f, uint64(i+1), setCmd(k, k))
	}
	want := []Entry{entry("a/1", "a/1", 0, 3, 3), entry("a/10", "a/10", 0, 5, 5), entry("a/2", "a/2", 0, 2, 2)}
	if diff := cmp.Diff(f.List("a/"), want, equateEmpty); diff != "" {
		t.Errorf("List(a/) mismatch (-got +want):\n%s", diff)
	}
	if got := f.List("c"); got != nil {
		t.Errorf("List(c) = %+v, want nil", got)
	}
	if got := f.Len(); got != 5 {
		t.Errorf("Len() = %d, want 5", got)
	}
}

// TestIndexes follows the index a blocking query would report for keys and
// prefixes through deletes, delete-trees and reaps.
func TestIndexes(t *testing.T) {
	type check struct {
		key    string
		prefix bool
		want   uint64
	}
	steps := []struct {
		cmd    Command
		checks []check
	}{
		/* 1 */ {setCmd("a/1", "x"), []check{{"a/1", false, 1}, {"a/", true, 1}, {"nothing", false, 1}, {"nothing/", true, 1}}},
		/* 2 */ {setCmd("a/2", "x"), []check{{"a/", true, 2}, {"a/1", false, 1}}},
		/* 3 */ {setCmd("b/1", "x"), []check{{"a/", true, 2}, {"b/", true, 3}, {"", true, 3}, {"nothing", false, 3}}},
		/* 4 */ {Command{Op: OpDelete, Key: "a/2"}, []check{{"a/", true, 4}, {"a/2", false, 4}, {"a/1", false, 1}, {"b/", true, 3}}},
		/* 5 */ {setCmd("b/2", "x"), []check{{"a/2", false, 4}, {"a/", true, 4}, {"nothing", false, 5}}},
		/* 6 */ {Command{Op: OpDeleteTree, Key: "a/"}, []check{{"a/", true, 6}, {"a", true, 6}, {"a/1", false, 6}, {"a/2", false, 6}, {"a/1/", true, 6}}},
		/* 7 */ {setCmd("a/3", "x"), []check{{"a/", true, 7}, {"a/1", false, 7}}},
		/* 8 */ {Command{Op: OpDelete, Key: "b/2"}, []check{{"b/", true, 8}, {"b/2", false, 8}}},
		/* 9 */ {setCmd("c/1", "x"), []check{{"b/", true, 8}, {"c/", true, 9}}},
		// Reap the tombstones up to 7: the delete-tree's goes, b/2's (8)
		// stays. A prefix whose index is no higher than what was reaped
		// (a/ at 7) may have lost a tombstone, so it reports the reap
		// instead; b/ and c/ are above it and keep theirs; a missing key
		// without a tombstone reports the store's index.
		/* 10 */ {Command{Op: OpReapTombstones, Index: 7}, []check{{"a/", true, 10}, {"b/", true, 8}, {"b/2", false, 8}, {"a/1", false, 10}, {"c/", true, 9}, {"a/3", false, 7}}},
		// Reap everything (the index is capped below the reap's own): b/ is
		// left with b/1 at 3, below the 8 it reported, so it reports 11.
		/* 11 */ {Command{Op: OpReapTombstones, Index: 100}, []check{{"b/", true, 11}, {"b/2", false, 11}, {"c/", true, 11}, {"a/", true, 11}, {"", true, 11}}},
		/* 12 */ {setCmd("b/3", "x"), []check{{"b/", true, 12}, {"b/1", false, 3}}},
	}
	f := NewFSM()
	for i, st := range steps {
		idx := uint64(i + 1)
		mustApply(t, f, idx, st.cmd)
		v := f.View()
		for _, c := range st.checks {
			got, name := v.KeyIndex(c.key), "KeyIndex"
			if c.prefix {
				got, name = v.PrefixIndex(c.key), "PrefixIndex"
			}
			if got != c.want {
				t.Errorf("after step %d (%s): %s(%q) = %d, want %d", idx, st.cmd.Op, name, c.key, got, c.want)
			}
		}
	}
	if got := NewFSM().View().KeyIndex("x"); got != 1 {
		t.Errorf("KeyIndex on an empty store = %d, want 1 (never 0)", got)
	}
	if got := NewFSM().View().PrefixIndex(""); got != 1 {
		t.Errorf("PrefixIndex on an empty store = %d, want 1 (never 0)", got)
	}
}

// TestIndexesRandom applies random commands and checks the contract that
// makes blocking queries correct: for every key and prefix the reported
// index never goes back, and it goes up whenever the result changes.
func TestIndexesRandom(t *testing.T) {
	keys := []string{"a", "a/b", "a/b/c", "a/c", "ab", "b/x", "b/y", "c"}
	prefixes := []string{"", "a", "a/", "a/b", "a/b/", "b/", "c", "d/"}
	rng := rand.New(rand.NewPCG(7, 9))
	f := NewFSM()
	randOp := func(idx uint64) TxnOp {
		key := keys[rng.IntN(len(keys))]
		value := []byte{byte('0' + rng.IntN(3))} // small alphabet: no-op sets happen
		switch rng.IntN(6) {
		case 0, 1:
			return TxnOp{Verb: VerbSet, Key: key, Value: value}
		case 2:
			var index uint64
			if e, ok := f.Get(key); ok && rng.IntN(2) == 0 {
				index = e.ModifyIndex
			} else if rng.IntN(2) == 0 {
				index = uint64(rng.IntN(int(idx)))
			}
			return TxnOp{Verb: VerbCAS, Key: key, Value: value, Index: index}
		case 3:
			return TxnOp{Verb: VerbDelete, Key: key}
		case 4:
			var index uint64
			if e, ok := f.Get(key); ok && rng.IntN(2) == 0 {
				index = e.ModifyIndex
			}
			return TxnOp{Verb: VerbDeleteCAS, Key: key, Index: index}
		}
		return TxnOp{Verb: VerbDeleteTree, Key: prefixes[1+rng.IntN(len(prefixes)-1)]}
	}
	type seen struct {
		index uint64
		data  []Entry
	}
	lastKey := map[string]seen{}
	lastPrefix := map[string]seen{}
	check := func(step uint64, what string, last map[string]seen, name string, index uint64, data []Entry) {
		prev, ok := last[name]
		last[name] = seen{index, cloneEntries(data)}
		if !ok {
			return
		}
		if index < prev.index {
			t.Fatalf("step %d (%s): index of %q went back from %d to %d", step, what, name, prev.index, index)
		}
		if index == prev.index && !cmp.Equal(data, prev.data, equateEmpty) {
			t.Fatalf("step %d (%s): %q changed but its index stayed %d:\nbefore %+v\nafter  %+v", step, what, name, index, prev.data, data)
		}
	}
	for idx := uint64(1); idx <= 3000; idx++ {
		var c Command
		switch r := rng.IntN(20); {
		case r == 0:
			c = Command{Op: OpReapTombstones, Index: uint64(rng.IntN(int(idx)) + 1)}
		case r < 4:
			c = Command{Op: OpTxn}
			for range 1 + rng.IntN(3) {
				c.Ops = append(c.Ops, randOp(idx))
			}
		default:
			op := randOp(idx)
			c = Command{Op: map[Verb]Op{VerbSet: OpSet, VerbCAS: OpCAS, VerbDelete: OpDelete, VerbDeleteCAS: OpDeleteCAS, VerbDeleteTree: OpDeleteTree}[op.Verb],
				Key: op.Key, Value: op.Value, Index: op.Index}
		}
		if resp, ok := applyAt(t, f, idx, c).(error); ok {
			t.Fatalf("step %d: Apply(%+v) = %v", idx, c, resp)
		}
		v := f.View()
		what := fmt.Sprintf("%s %+v", c.Op, c)
		for _, k := range keys {
			var data []Entry
			if e, ok := v.Get(k); ok {
				data = []Entry{e}
			}
			check(idx, what, lastKey, k, v.KeyIndex(k), data)
		}
		for _, p := range prefixes {
			check(idx, what, lastPrefix, p, v.PrefixIndex(p), v.List(p))
		}
	}
}
