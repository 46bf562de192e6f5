package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// failingSink fails writes after the first n bytes, as a full disk would.
type failingSink struct {
	memSink
	n int
}

func (s *failingSink) Write(p []byte) (int, error) {
	if s.Len()+len(p) > s.n {
		return 0, errors.New("disk full")
	}
	return s.memSink.Write(p)
}

// readCloser records whether Restore closed its input.
type readCloser struct {
	io.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

// persist snapshots f through the raft.FSMSnapshot path and returns the
// bytes Persist wrote.
func persist(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("after Persist: sink closed=%v cancelled=%v, want closed and not cancelled", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func restore(f *FSM, b []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(b)))
}

// sameState compares two stores completely: entries field by field, the
// tombstones and every index the views report.
func sameState(t *testing.T, got, want *FSM) {
	t.Helper()
	g, w := got.View(), want.View()
	if g.Len() != w.Len() {
		t.Errorf("restored Len() = %d, want %d", g.Len(), w.Len())
	}
	// cmp.Diff is too slow for 50k entries under -race; compare by hand.
	ge, we := g.List(""), w.List("")
	mismatches := 0
	for i := range min(len(ge), len(we)) {
		a, b := ge[i], we[i]
		if a.Key != b.Key || a.Flags != b.Flags || !bytes.Equal(a.Value, b.Value) ||
			a.CreateIndex != b.CreateIndex || a.ModifyIndex != b.ModifyIndex || a.LockIndex != b.LockIndex ||
			a.Session != b.Session {
			if mismatches++; mismatches <= 5 {
				t.Errorf("restored entry %d = %+v, want %+v", i, a, b)
			}
		}
	}
	if mismatches > 5 {
		t.Errorf("... and %d more mismatched entries", mismatches-5)
	}
	if diff := cmp.Diff(tableRows(g, tableTombstones), tableRows(w, tableTombstones)); diff != "" {
		t.Errorf("restored tombstones mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(tableRows(g, tableIndex), tableRows(w, tableIndex)); diff != "" {
		t.Errorf("restored indexes mismatch (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(g.SessionList(), w.SessionList()); diff != "" {
		t.Errorf("restored sessions mismatch (-got +want):\n%s", diff)
	}
}

// tableRows lists the rows of one table of v, printed.
func tableRows(v View, table string) []string {
	var out []string
	it, err := v.txn.Get(table, "id")
	must(err)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, fmt.Sprintf("%+v", raw))
	}
	return out
}

// bigStore builds a store of n random binary keys and values through real
// applies, with deletes, a delete-tree and a reap, so every field and
// record type is exercised.
func bigStore(t testing.TB, n int) *FSM {
	rng := rand.New(rand.NewPCG(1, 2))
	f := NewFSM()
	idx := uint64(0)
	var logs []*raft.Log
	flush := func() {
		for _, resp := range f.ApplyBatch(logs) {
			if err, ok := resp.(error); ok {
				t.Fatalf("ApplyBatch: %v", err)
			}
		}
		logs = logs[:0]
	}
	add := func(c Command) {
		idx++
		logs = append(logs, &raft.Log{Index: idx, Type: raft.LogCommand, Data: mustEncode(t, c)})
		if len(logs) == 256 {
			flush()
		}
	}
	var keys []string
	for range n {
		k := make([]byte, 1+rng.IntN(40))
		for j := range k {
			k[j] = byte(rng.UintN(256))
		}
		v := make([]byte, rng.IntN(300)) // some values are empty
		for j := range v {
			v[j] = byte(rng.UintN(256))
		}
		keys = append(keys, string(k))
		add(Command{Op: OpSet, Key: string(k), Value: v, Flags: rng.Uint64() >> rng.UintN(64)})
	}
	for i := 0; i < n; i += 7 {
		add(Command{Op: OpSet, Key: keys[i], Value: []byte("modified")}) // CreateIndex != ModifyIndex
	}
	for i := 3; i < n; i += 11 {
		add(Command{Op: OpDelete, Key: keys[i]})
	}
	add(Command{Op: OpDeleteTree, Key: "\x00"})
	add(Command{Op: OpReapTombstones, Index: idx - 20})
	// A value larger than the snapshot buffer and one at the limit.
	add(Command{Op: OpSet, Key: "big", Value: bytes.Repeat([]byte{0xab}, 1<<20)})
	add(Command{Op: OpSet, Key: "limit", Value: bytes.Repeat([]byte{0xcd}, testMaxValueSize)})
	add(Command{Op: OpSet, Key: "", Value: []byte("empty key")})
	flush()
	return f
}

func TestSnapshotRoundTripLarge(t *testing.T) {
	n := 50000
	if testing.Short() {
		n = 5000
	}
	src := bigStore(t, n)
	data := persist(t, src)
	if again := persist(t, src); !bytes.Equal(again, data) {
		t.Errorf("two snapshots of the same state differ (%d and %d bytes); Persist should be deterministic", len(data), len(again))
	}
	var viaView bytes.Buffer
	if size, err := src.View().WriteTo(&viaView); err != nil || size != int64(len(data)) || !bytes.Equal(viaView.Bytes(), data) {
		t.Errorf("View.WriteTo = %d bytes, %v; want the %d bytes Persist wrote", size, err, len(data))
	}

	dst := NewFSM()
	mustApply(t, dst, 1, setCmd("stale", "gone after restore"))
	rc := &readCloser{Reader: bytes.NewReader(data)}
	if err := dst.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Error("Restore did not close its reader")
	}
	sameState(t, dst, src)
	if _, ok := dst.Get("stale"); ok {
		t.Error("Restore kept a key from before")
	}

	info, err := InspectSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("InspectSnapshot: %v", err)
	}
	v := src.View()
	want := SnapshotInfo{Index: v.AppliedIndex(), Entries: v.Len(), Tombstones: len(tableRows(v, tableTombstones)), Size: int64(len(data))}
	got := info
	got.Tables = nil
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("InspectSnapshot mismatch (-got +want):\n%s", diff)
	}
	if info.Tombstones == 0 {
		t.Error("the test store has no tombstones; the test does not cover them")
	}
}

func TestSnapshotIsolation(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("a", "1"))
	mustApply(t, f, 2, setCmd("b", "2"))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()

	// Changes after Snapshot must not show up in what it persists.
	mustApply(t, f, 3, setCmd("a", "changed"))
	mustApply(t, f, 4, Command{Op: OpDelete, Key: "b"})
	mustApply(t, f, 5, setCmd("c", "3"))

	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	got := NewFSM()
	if err := restore(got, sink.Bytes()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	want := []Entry{entry("a", "1", 0, 1, 1), entry("b", "2", 0, 2, 2)}
	if diff := cmp.Diff(got.List(""), want, equateEmpty); diff != "" {
		t.Errorf("snapshot content mismatch (-got +want):\n%s", diff)
	}
	if got := got.AppliedIndex(); got != 2 {
		t.Errorf("restored AppliedIndex() = %d, want 2", got)
	}
}

func TestSnapshotPersistWriteError(t *testing.T) {
	f := bigStore(t, 2000)
	for _, n := range []int{0, 100, 100000} {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		sink := &failingSink{n: n}
		if err := snap.Persist(sink); err == nil {
			t.Fatalf("Persist to a sink that fails after %d bytes = nil, want an error", n)
		}
		if !sink.cancelled || sink.closed {
			t.Errorf("after a failed Persist: sink cancelled=%v closed=%v, want cancelled and not closed", sink.cancelled, sink.closed)
		}
	}
}

func TestSnapshotEmpty(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("a", "1"))
	// A zero-length stream is the snapshot of a store from before this
	// format, which never held keys.
	if err := restore(f, nil); err != nil {
		t.Fatalf("Restore(empty) = %v, want nil", err)
	}
	if got := f.Len(); got != 0 {
		t.Errorf("Len() after restoring an empty stream = %d, want 0", got)
	}
	// But a user restore of nothing is a mistake, not a wipe.
	if _, err := InspectSnapshot(bytes.NewReader(nil)); !errors.Is(err, ErrCorruptSnapshot) {
		t.Errorf("InspectSnapshot(empty) = %v, want ErrCorruptSnapshot", err)
	}
	// An empty store has a proper snapshot of its own.
	data := persist(t, NewFSM())
	if err := restore(f, data); err != nil || f.Len() != 0 {
		t.Errorf("Restore(snapshot of an empty store) = %v, Len %d", err, f.Len())
	}
}

// smallSnapshot is a store with two entries and a tombstone, and its
// stream.
func smallSnapshot(t *testing.T) []byte {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("a", "1"))
	mustApply(t, f, 2, Command{Op: OpSet, Key: "bb", Flags: 300})
	mustApply(t, f, 3, setCmd("ccc", strings.Repeat("v", 200)))
	mustApply(t, f, 4, Command{Op: OpDelete, Key: "a"})
	mustApply(t, f, 5, setCmd("d", "x"))
	return persist(t, f)
}

// checkRestoreFails restores data into a store holding old=state and
// checks that it fails with want and leaves the store alone.
func checkRestoreFails(t *testing.T, name string, data []byte, want ...error) {
	t.Helper()
	f := NewFSM()
	mustApply(t, f, 1, setCmd("old", "state"))
	err := restore(f, data)
	if err == nil {
		t.Errorf("Restore(%s) = nil, want an error", name)
		return
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("Restore(%s) = %v, want it to match %v", name, err, w)
		}
	}
	if e, ok := f.Get("old"); !ok || string(e.Value) != "state" || f.Len() != 1 {
		t.Errorf("Restore(%s) failed but changed the state: Get(old) = %+v, %v, Len %d", name, e, ok, f.Len())
	}
	if _, ierr := InspectSnapshot(bytes.NewReader(data)); ierr == nil {
		t.Errorf("InspectSnapshot(%s) = nil, but Restore failed with %v", name, err)
	}
}

// TestSnapshotTruncated cuts a snapshot at every byte: every cut is an
// error, even one between records, and leaves the state untouched.
func TestSnapshotTruncated(t *testing.T) {
	data := smallSnapshot(t)
	for cut := 1; cut < len(data); cut++ {
		checkRestoreFails(t, fmt.Sprintf("cut at %d of %d", cut, len(data)), data[:cut], ErrCorruptSnapshot, io.ErrUnexpectedEOF)
	}
}

// TestSnapshotCorrupt flips every bit of a snapshot, one at a time.
func TestSnapshotCorrupt(t *testing.T) {
	data := smallSnapshot(t)
	for i := range data {
		for bit := range 8 {
			bad := bytes.Clone(data)
			bad[i] ^= 1 << bit
			checkRestoreFails(t, fmt.Sprintf("bit %d of byte %d flipped", bit, i), bad, ErrCorruptSnapshot)
		}
	}
}

func TestSnapshotMalformed(t *testing.T) {
	good := smallSnapshot(t)
	header := []byte(snapshotMagic + "\x01\x05\x05\x00\x00")
	// withCRC completes a stream that is well formed but for its content.
	withCRC := func(b []byte) []byte {
		return binary.BigEndian.AppendUint32(b, crc32c(b))
	}
	entry := func(key string, create, modify uint64) []byte {
		b := appendString([]byte{recEntry}, key)
		for _, v := range []uint64{0, create, modify, 0, 0} {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	end := func(entries, tombs uint64) []byte {
		return binary.AppendUvarint(binary.AppendUvarint([]byte{recEnd}, entries), tombs)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name string
		data []byte
	}{
		{"not a snapshot", []byte("hello, world")},
		{"old format", append(binary.AppendUvarint(nil, 1), 'k', 1, 'v')},
		{"future version", cat([]byte(snapshotMagic+string(rune(snapshotVersion+1))), good[len(snapshotMagic)+1:])},
		{"trailing data", append(bytes.Clone(good), 0)},
		{"unknown record", withCRC(cat(header, []byte{9}, end(0, 0)))},
		{"entries out of order", withCRC(cat(header, entry("b", 1, 1), entry("a", 2, 2), end(2, 0)))},
		{"duplicate entry", withCRC(cat(header, entry("a", 1, 1), entry("a", 2, 2), end(2, 0)))},
		{"entry after tombstones", withCRC(cat(header, []byte{recTombstone, 1, 'x', 3}, entry("a", 1, 1), end(1, 1)))},
		{"tombstones out of order", withCRC(cat(header, []byte{recTombstone, 1, 'y', 3, recTombstone, 1, 'x', 3}, end(0, 2)))},
		{"end counts wrong", withCRC(cat(header, entry("a", 1, 1), end(2, 0)))},
		{"bad checksum", binary.BigEndian.AppendUint32(cat(header, end(0, 0)), 12345)},
		{"varint overflow", cat(header, []byte{recEntry}, bytes.Repeat([]byte{0xff}, 11))},
		// Lengths that claim far more than the stream holds: bounded by the
		// bytes that actually arrive (TestSnapshotHugeLengths checks the
		// memory), then truncated.
		{"huge key length", cat(header, []byte{recEntry}, binary.AppendUvarint(nil, 1<<62), []byte("abc"))},
		{"huge value length", cat(header, entry("a", 1, 1)[:len(entry("a", 1, 1))-1], binary.AppendUvarint(nil, 1<<40), []byte("abc"))},
		{"length past int", cat(header, []byte{recEntry}, binary.AppendUvarint(nil, 1<<63+5))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkRestoreFails(t, tc.name, tc.data, ErrCorruptSnapshot)
		})
	}
	// The hand-built pieces are right: the same stream with correct
	// counts restores.
	ok := withCRC(cat(header, entry("a", 1, 1), entry("b", 1, 2), []byte{recTombstone, 1, 'x', 3}, end(2, 1)))
	f := NewFSM()
	if err := restore(f, ok); err != nil {
		t.Fatalf("Restore(hand-built stream): %v", err)
	}
	if got := f.Keys("", ""); len(got) != 2 || f.View().KeyIndex("x") != 3 {
		t.Errorf("hand-built stream restored keys %q, KeyIndex(x) %d", got, f.View().KeyIndex("x"))
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestSnapshotHugeLengths checks that a corrupt length costs memory in
// proportion to the bytes that arrive, not to the length claimed.
func TestSnapshotHugeLengths(t *testing.T) {
	header := []byte(snapshotMagic + "\x01\x00\x00\x00\x00")
	stream := append(append(header, recEntry), binary.AppendUvarint(nil, 1<<40)...)
	stream = append(stream, bytes.Repeat([]byte{'k'}, 3<<20)...) // 3 MiB arrive, 1 TiB claimed
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := restore(NewFSM(), stream)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Restore = %v, want io.ErrUnexpectedEOF", err)
	}
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(16<<20); got > limit {
		t.Errorf("Restore of a %d-byte stream claiming a 1 TiB key allocated %d bytes, want at most %d", len(stream), got, limit)
	}
}

func FuzzRestore(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(snapshotMagic))
	f.Add(persist(f, NewFSM()))
	small := NewFSM()
	mustApply(f, small, 1, setCmd("a", "1"))
	mustApply(f, small, 2, Command{Op: OpSet, Key: "b", Flags: 7})
	mustApply(f, small, 3, Command{Op: OpDelete, Key: "a"})
	mustApply(f, small, 4, Command{Op: OpDeleteTree, Key: "c/"})
	f.Add(persist(f, small))
	f.Add(persist(f, allTablesStore(f)))
	for _, name := range []string{"testdata/snapshot-v1.snap", "testdata/snapshot-v2.snap"} {
		if old, err := os.ReadFile(name); err == nil {
			f.Add(old)
		}
	}
	f.Add(append([]byte(snapshotMagic+"\x01\x00\x00\x00\x00\x01"), binary.AppendUvarint(nil, 1<<40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := NewFSM()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := restore(fsm, data)
		runtime.ReadMemStats(&after)

		// Every complete record is backed by input bytes, and a long field
		// grows only as its bytes arrive, so memory is proportional to the
		// input: per-entry overhead (entry, key, radix nodes) plus the
		// buffers.
		limit := uint64(1024*len(data) + 1<<20)
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Fatalf("Restore of %d bytes allocated %d bytes, want at most %d", len(data), got, limit)
		}
		info, ierr := InspectSnapshot(bytes.NewReader(data))
		if (err == nil) != (ierr == nil) && len(data) > 0 {
			t.Fatalf("Restore = %v but InspectSnapshot = %v", err, ierr)
		}
		if err != nil {
			return
		}

		// A snapshot that restores must survive another round trip, and
		// a canonical one comes back byte for byte.
		again := NewFSM()
		out := persist(t, fsm)
		if err := restore(again, out); err != nil {
			t.Fatalf("Restore(Persist(Restore(%x))): %v", data, err)
		}
		if diff := cmp.Diff(again.List(""), fsm.List(""), equateEmpty); diff != "" {
			t.Fatalf("second round trip mismatch (-got +want):\n%s", diff)
		}
		if len(data) > 0 && info.Size != int64(len(data)) {
			t.Fatalf("InspectSnapshot Size = %d, want %d", info.Size, len(data))
		}
		if again := persist(t, again); !bytes.Equal(again, out) {
			t.Fatalf("Persist is not stable across a round trip")
		}
	})
}
