package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// failingSink fails every write, as a full disk would.
type failingSink struct{ memSink }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// readCloser records whether Restore closed its input.
type readCloser struct {
	io.Reader
	closed bool
}

func (r *readCloser) Close() error { r.closed = true; return nil }

// equateEmpty treats a nil value and an empty one as equal: Apply stores an
// empty value as nil, Restore as a zero-length slice.
var equateEmpty = cmpopts.EquateEmpty()

func mustEncode(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := c.encode()
	if err != nil {
		t.Fatalf("encode(%+v): %v", c, err)
	}
	return b
}

func mustApply(t testing.TB, f *FSM, index uint64, c Command) {
	t.Helper()
	if resp := f.Apply(&raft.Log{Index: index, Data: mustEncode(t, c)}); resp != nil {
		t.Fatalf("Apply(%+v) = %v, want nil", c, resp)
	}
}

// persist snapshots f and returns the bytes Persist wrote.
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

// record encodes one snapshot record the way Persist does.
func record(k, v string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(k)))
	b = append(b, k...)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func TestCommandEncodeDecode(t *testing.T) {
	cases := []struct {
		name string
		cmd  Command
	}{
		{"set", Command{Op: OpSet, Key: "k", Value: []byte("v")}},
		{"set empty value", Command{Op: OpSet, Key: "k"}},
		{"set empty key", Command{Op: OpSet, Value: []byte("v")}},
		{"set binary", Command{Op: OpSet, Key: "\x00\xff", Value: []byte{0, 1, 2, 0xff}}},
		{"set long key", Command{Op: OpSet, Key: strings.Repeat("k", 300), Value: []byte("v")}},
		{"delete", Command{Op: OpDelete, Key: "k"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCommand(mustEncode(t, tc.cmd))
			if err != nil {
				t.Fatalf("decodeCommand: %v", err)
			}
			if diff := cmp.Diff(got, tc.cmd, equateEmpty); diff != "" {
				t.Errorf("decodeCommand(encode(cmd)) mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestCommandEncodeUnknownOp(t *testing.T) {
	for _, op := range []Op{0, 3, 255} {
		if _, err := (Command{Op: op, Key: "k"}).encode(); err == nil {
			t.Errorf("encode(Op %d) = nil error, want an error", op)
		}
	}
}

func TestDecodeCommandMalformed(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"op only", []byte{byte(OpSet)}},
		{"key length past end", []byte{byte(OpSet), 5, 'a', 'b'}},
		{"unterminated varint", []byte{byte(OpSet), 0x80}},
		{"varint overflow", append([]byte{byte(OpSet)}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"huge key length", binary.AppendUvarint([]byte{byte(OpSet)}, 1<<62)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := decodeCommand(tc.data); err == nil {
				t.Errorf("decodeCommand(%x) = %+v, nil; want an error", tc.data, c)
			}
		})
	}
}

func TestFSMApply(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, Command{Op: OpSet, Key: "a", Value: []byte("1")})
	mustApply(t, f, 2, Command{Op: OpSet, Key: "b", Value: []byte("2")})
	mustApply(t, f, 3, Command{Op: OpSet, Key: "a", Value: []byte("3")})
	mustApply(t, f, 4, Command{Op: OpDelete, Key: "b"})
	mustApply(t, f, 5, Command{Op: OpDelete, Key: "never-set"})

	if v, ok := f.Get("a"); !ok || string(v) != "3" {
		t.Errorf("Get(a) = %q, %v; want \"3\", true", v, ok)
	}
	if v, ok := f.Get("b"); ok {
		t.Errorf("Get(b) after delete = %q, true; want not found", v)
	}
	if got := f.Len(); got != 1 {
		t.Errorf("Len() = %d, want 1", got)
	}
}

func TestFSMApplyCopiesValue(t *testing.T) {
	f := NewFSM()
	data := mustEncode(t, Command{Op: OpSet, Key: "k", Value: []byte("before")})
	if resp := f.Apply(&raft.Log{Index: 1, Data: data}); resp != nil {
		t.Fatalf("Apply = %v, want nil", resp)
	}
	// Raft may reuse the log's buffer; the stored value must not alias it.
	for i := range data {
		data[i] = 'x'
	}
	if v, _ := f.Get("k"); string(v) != "before" {
		t.Errorf("Get(k) after the log buffer changed = %q, want \"before\"", v)
	}
}

func TestFSMApplyMalformed(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated key", []byte{byte(OpSet), 10, 'k'}},
		{"unknown op", []byte{9, 1, 'k'}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			mustApply(t, f, 1, Command{Op: OpSet, Key: "keep", Value: []byte("me")})
			resp := f.Apply(&raft.Log{Index: 7, Data: tc.data})
			err, ok := resp.(error)
			if !ok {
				t.Fatalf("Apply(%x) = %#v, want an error value", tc.data, resp)
			}
			if !strings.Contains(err.Error(), "index 7") {
				t.Errorf("Apply error = %q, want it to name the log index 7", err)
			}
			if v, ok := f.Get("keep"); !ok || string(v) != "me" || f.Len() != 1 {
				t.Errorf("state after a malformed entry: Get(keep) = %q, %v, Len = %d; want unchanged", v, ok, f.Len())
			}
		})
	}
}

func TestFSMSnapshotRestoreLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := NewFSM()
	const keys = 20000
	for i := range keys {
		k := make([]byte, 1+rng.IntN(40))
		for j := range k {
			k[j] = byte(rng.UintN(256))
		}
		v := make([]byte, rng.IntN(300)) // some values are empty
		for j := range v {
			v[j] = byte(rng.UintN(256))
		}
		mustApply(t, src, uint64(i+1), Command{Op: OpSet, Key: string(k), Value: v})
	}
	// A value near a buffer boundary and one larger than bufio's buffer.
	mustApply(t, src, keys+1, Command{Op: OpSet, Key: "big", Value: bytes.Repeat([]byte{0xab}, 1<<20)})
	mustApply(t, src, keys+2, Command{Op: OpSet, Key: "", Value: []byte("empty key")})

	data := persist(t, src)
	if again := persist(t, src); !bytes.Equal(again, data) {
		t.Errorf("two snapshots of the same state differ (%d and %d bytes); Persist should be deterministic", len(data), len(again))
	}

	dst := NewFSM()
	mustApply(t, dst, 1, Command{Op: OpSet, Key: "stale", Value: []byte("gone after restore")})
	rc := &readCloser{Reader: bytes.NewReader(data)}
	if err := dst.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Error("Restore did not close its reader")
	}
	// cmp.Diff is too slow for 20k entries under -race; compare by hand.
	if got, want := dst.Len(), src.Len(); got != want {
		t.Errorf("restored Len() = %d, want %d", got, want)
	}
	mismatches := 0
	for k, want := range src.data {
		if got, ok := dst.Get(k); !ok || !bytes.Equal(got, want) {
			if mismatches++; mismatches <= 5 {
				t.Errorf("restored Get(%q) = %x, %v; want %x", k, got, ok, want)
			}
		}
	}
	if mismatches > 5 {
		t.Errorf("... and %d more mismatched keys", mismatches-5)
	}
}

func TestFSMSnapshotIsolation(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, Command{Op: OpSet, Key: "a", Value: []byte("1")})
	mustApply(t, f, 2, Command{Op: OpSet, Key: "b", Value: []byte("2")})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()

	// Changes after Snapshot must not show up in what it persists.
	mustApply(t, f, 3, Command{Op: OpSet, Key: "a", Value: []byte("changed")})
	mustApply(t, f, 4, Command{Op: OpDelete, Key: "b"})
	mustApply(t, f, 5, Command{Op: OpSet, Key: "c", Value: []byte("3")})

	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	got := NewFSM()
	if err := restore(got, sink.Bytes()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	want := map[string][]byte{"a": []byte("1"), "b": []byte("2")}
	if diff := cmp.Diff(got.data, want); diff != "" {
		t.Errorf("snapshot content mismatch (-got +want):\n%s", diff)
	}
}

func TestFSMPersistWriteError(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, Command{Op: OpSet, Key: "a", Value: []byte("1")})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	sink := &failingSink{}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist to a failing sink = nil, want an error")
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("after a failed Persist: sink cancelled=%v closed=%v, want cancelled and not closed", sink.cancelled, sink.closed)
	}
}

func TestFSMRestoreEmpty(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, Command{Op: OpSet, Key: "a", Value: []byte("1")})
	if err := restore(f, nil); err != nil {
		t.Fatalf("Restore(empty) = %v, want nil", err)
	}
	if got := f.Len(); got != 0 {
		t.Errorf("Len() after restoring an empty snapshot = %d, want 0", got)
	}
}

// TestFSMRestoreTruncated cuts a snapshot at every byte: a cut at a record
// boundary is a valid (shorter) snapshot, any other cut is an error and
// leaves the state untouched.
func TestFSMRestoreTruncated(t *testing.T) {
	recs := [][2]string{{"a", "1"}, {"bb", ""}, {"ccc", "xyz"}, {strings.Repeat("d", 200), strings.Repeat("v", 130)}}
	var data []byte
	boundaries := map[int]int{0: 0} // offset -> records before it
	for i, r := range recs {
		data = append(data, record(r[0], r[1])...)
		boundaries[len(data)] = i + 1
	}
	// Make sure the hand-built stream is what Persist writes.
	src := NewFSM()
	for i, r := range recs {
		mustApply(t, src, uint64(i+1), Command{Op: OpSet, Key: r[0], Value: []byte(r[1])})
	}
	if got := persist(t, src); !bytes.Equal(got, data) {
		t.Fatalf("Persist wrote %x, want %x", got, data)
	}

	for cut := 0; cut <= len(data); cut++ {
		f := NewFSM()
		mustApply(t, f, 1, Command{Op: OpSet, Key: "old", Value: []byte("state")})
		err := restore(f, data[:cut])
		if n, ok := boundaries[cut]; ok {
			if err != nil {
				t.Errorf("Restore(cut at %d, a record boundary) = %v, want nil", cut, err)
			} else if f.Len() != n {
				t.Errorf("Restore(cut at %d): Len() = %d, want %d", cut, f.Len(), n)
			}
			continue
		}
		if err == nil {
			t.Errorf("Restore(cut at %d of %d) = nil, want an error", cut, len(data))
			continue
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Restore(cut at %d) = %v, want it to wrap io.ErrUnexpectedEOF", cut, err)
		}
		if v, ok := f.Get("old"); !ok || string(v) != "state" || f.Len() != 1 {
			t.Errorf("Restore(cut at %d) failed but changed the state: Get(old) = %q, %v, Len = %d", cut, v, ok, f.Len())
		}
	}
}

func TestFSMRestoreChunkLimit(t *testing.T) {
	over := uint64(maxChunk + 1)
	cases := []struct {
		name string
		data []byte
		// wantText is a substring the error must contain, if set.
		wantText string
	}{
		{
			name:     "key over limit",
			data:     binary.AppendUvarint(nil, over),
			wantText: "exceeds limit",
		},
		{
			name:     "huge key length",
			data:     binary.AppendUvarint(nil, 1<<63),
			wantText: "exceeds limit",
		},
		{
			name: "value over limit",
			data: binary.AppendUvarint(append(binary.AppendUvarint(nil, 1), 'k'), over),
		},
		{
			name: "length varint overflows",
			data: bytes.Repeat([]byte{0xff}, 11),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			mustApply(t, f, 1, Command{Op: OpSet, Key: "old", Value: []byte("state")})
			err := restore(f, tc.data)
			if err == nil {
				t.Fatalf("Restore(%x) = nil, want an error", tc.data)
			}
			if tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Restore(%x) = %q, want it to contain %q", tc.data, err, tc.wantText)
			}
			if v, ok := f.Get("old"); !ok || string(v) != "state" {
				t.Errorf("failed Restore changed the state: Get(old) = %q, %v", v, ok)
			}
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{byte(OpSet)})
	f.Add([]byte{byte(OpSet), 0x80})
	f.Add([]byte{byte(OpDelete), 0})
	f.Add([]byte{byte(OpSet), 1, 'k', 'v'})
	f.Add([]byte{byte(OpSet), 0x80, 0x00, 'v'}) // non-minimal varint
	f.Add(binary.AppendUvarint([]byte{byte(OpSet)}, 1<<63))
	f.Add(append([]byte{byte(OpSet)}, bytes.Repeat([]byte{0xff}, 11)...))
	f.Add([]byte{7, 1, 'k'})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The state machine must turn any log entry into nil or an error.
		switch resp := NewFSM().Apply(&raft.Log{Index: 1, Data: data}); resp.(type) {
		case nil, error:
		default:
			t.Fatalf("FSM.Apply(%x) = %#v, want nil or an error", data, resp)
		}

		c, err := decodeCommand(data)
		if err != nil {
			return
		}
		if len(c.Key)+len(c.Value) > len(data) {
			t.Fatalf("decodeCommand(%x) = %d bytes of key and value from %d bytes of input", data, len(c.Key)+len(c.Value), len(data))
		}
		enc, err := c.encode()
		if c.Op != OpSet && c.Op != OpDelete {
			if err == nil {
				t.Fatalf("encode(Op %d) = nil error, want an error", c.Op)
			}
			return
		}
		if err != nil {
			t.Fatalf("encode(%+v): %v", c, err)
		}
		again, err := decodeCommand(enc)
		if err != nil {
			t.Fatalf("decodeCommand(encode(%+v)): %v", c, err)
		}
		if diff := cmp.Diff(again, c, equateEmpty); diff != "" {
			t.Fatalf("round trip mismatch (-got +want):\n%s", diff)
		}
	})
}

func FuzzRestore(f *testing.F) {
	valid := append(record("a", "1"), record("bb", "")...)
	f.Add([]byte{})
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(record("", ""))
	f.Add(binary.AppendUvarint(nil, maxChunk+1))
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(binary.AppendUvarint(nil, 1<<20)) // a length that claims more than is there
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := NewFSM()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := restore(fsm, data)
		runtime.ReadMemStats(&after)

		// Every complete record is backed by input bytes, so only the one
		// record that fails can claim memory the input does not hold, and
		// maxChunk bounds that. The rest is map and string overhead.
		limit := uint64(maxChunk + 256*len(data) + 8<<20)
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Fatalf("Restore of %d bytes allocated %d bytes, want at most %d", len(data), got, limit)
		}
		if err != nil {
			return
		}

		// A snapshot that restores must survive another round trip unchanged.
		again := NewFSM()
		if err := restore(again, persist(t, fsm)); err != nil {
			t.Fatalf("Restore(Persist(Restore(%x))): %v", data, err)
		}
		if diff := cmp.Diff(again.data, fsm.data, equateEmpty); diff != "" {
			t.Fatalf("second round trip mismatch (-got +want):\n%s", diff)
		}
	})
}
