package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/raft"
)

// equateEmpty treats a nil slice and an empty one as equal: the store keeps
// an empty value as nil.
var equateEmpty = cmpopts.EquateEmpty()

func mustEncode(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := c.encode()
	if err != nil {
		t.Fatalf("encode(%+v): %v", c, err)
	}
	return b
}

func TestCommandEncodeDecode(t *testing.T) {
	cases := []struct {
		name string
		cmd  Command
	}{
		{"set", Command{Op: OpSet, Key: "k", Value: []byte("v"), Flags: 42}},
		{"set empty value", Command{Op: OpSet, Key: "k"}},
		{"set max flags", Command{Op: OpSet, Key: "k", Value: []byte("v"), Flags: 1<<64 - 1}},
		{"set binary", Command{Op: OpSet, Key: "\x00\xff", Value: []byte{0, 1, 2, 0xff}}},
		{"set long key", Command{Op: OpSet, Key: strings.Repeat("k", 300), Value: []byte("v")}},
		{"delete", Command{Op: OpDelete, Key: "k"}},
		{"cas", Command{Op: OpCAS, Key: "k", Value: []byte("v"), Flags: 7, Index: 1 << 40}},
		{"cas index 0", Command{Op: OpCAS, Key: "k", Value: []byte("v")}},
		{"delete-cas", Command{Op: OpDeleteCAS, Key: "k", Index: 9}},
		{"delete-tree", Command{Op: OpDeleteTree, Key: "a/"}},
		{"delete-tree everything", Command{Op: OpDeleteTree}},
		{"reap", Command{Op: OpReapTombstones, Index: 12345}},
		{"set-cluster-meta", Command{Op: OpSetClusterMeta, ClusterID: "6f1c2b9e-cluster"}},
		{"set-autopilot-config", Command{Op: OpSetAutopilotConfig, Autopilot: AutopilotConfig{
			CleanupDeadServers: true, LastContactThreshold: 200 * time.Millisecond, MaxTrailingLogs: 250,
			MinQuorum: 3, ServerStabilizationTime: 10 * time.Second}}},
		{"set-autopilot-config cas", Command{Op: OpSetAutopilotConfig, CAS: true, Index: 77}},
		{"session-create", Command{Op: OpSessionCreate, Session: Session{ID: "adf4238a-882b-9ddc-4a9d-5b6758e4159e",
			Name: "lock ☃", Node: "node-1", LockDelay: 15 * time.Second, Behavior: SessionDelete, TTL: time.Hour,
			NodeChecks: []string{SerfHealth, "other"}}}},
		{"session-create release, no checks", Command{Op: OpSessionCreate, Session: Session{ID: "s", Node: "n",
			Behavior: SessionRelease}}},
		{"session-destroy", Command{Op: OpSessionDestroy, Session: Session{ID: "s-1"}}},
		{"lock", Command{Op: OpLock, Key: "svc/leader", Value: []byte("me"), Flags: 9, Session: Session{ID: "s-1"}}},
		{"unlock empty value", Command{Op: OpUnlock, Key: "svc/leader", Session: Session{ID: "s-1"}}},
		{"empty txn", Command{Op: OpTxn}},
		{"txn", Command{Op: OpTxn, Ops: []TxnOp{
			{Verb: VerbSet, Key: "a", Value: []byte("1"), Flags: 3},
			{Verb: VerbCAS, Key: "b", Value: bytes.Repeat([]byte{0xab}, 200), Index: 5},
			{Verb: VerbGet, Key: "a"},
			{Verb: VerbGetTree, Key: "p/"},
			{Verb: VerbCheckIndex, Key: "a", Index: 300},
			{Verb: VerbCheckNotExists, Key: "z"},
			{Verb: VerbDelete, Key: "a"},
			{Verb: VerbDeleteTree, Key: ""},
			{Verb: VerbDeleteCAS, Key: "b", Index: 6},
			{Verb: VerbLock, Key: "l", Value: []byte("v"), Session: "s-1"},
			{Verb: VerbUnlock, Key: "l", Session: "s-1"},
			{Verb: VerbCheckSession, Key: "l"},
		}}},
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

// TestCommandEncodingIsCompact pins the size of the commonest entry: a set
// costs its key, its value and three bytes.
func TestCommandEncodingIsCompact(t *testing.T) {
	b := mustEncode(t, Command{Op: OpSet, Key: "service/web/config", Value: []byte("0123456789")})
	if got, want := len(b), 3+len("service/web/config")+10; got != want {
		t.Errorf("len(encode(set)) = %d, want %d", got, want)
	}
}

func TestCommandEncodeUnknown(t *testing.T) {
	for _, c := range []Command{
		{Op: 0, Key: "k"},
		{Op: OpUnlock + 1, Key: "k"}, // one past the last type
		{Op: 255, Key: "k"},
		{Op: OpTxn, Ops: []TxnOp{{Verb: 0, Key: "k"}}},
		{Op: OpTxn, Ops: []TxnOp{{Verb: VerbCheckSession + 1, Key: "k"}}},
	} {
		if _, err := c.encode(); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("encode(%+v) = %v, want ErrInvalidCommand", c, err)
		}
	}
}

func TestDecodeCommandMalformed(t *testing.T) {
	txnOp := func(verb Verb, key string) []byte {
		b := []byte{byte(verb), 0, 0}
		return append(appendString(b, key), 0)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"unknown op", []byte{9, 'k'}},
		{"op zero", []byte{0}},
		{"set without flags", []byte{byte(OpSet)}},
		{"set key length past end", []byte{byte(OpSet), 0, 5, 'a', 'b'}},
		{"unterminated varint", []byte{byte(OpSet), 0x80}},
		{"varint overflow", append([]byte{byte(OpSet)}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"huge key length", binary.AppendUvarint([]byte{byte(OpSet), 0}, 1<<62)},
		{"cas without index", []byte{byte(OpCAS)}},
		{"delete-cas truncated index", []byte{byte(OpDeleteCAS), 0x80}},
		{"reap without index", []byte{byte(OpReapTombstones)}},
		{"reap trailing bytes", []byte{byte(OpReapTombstones), 1, 2}},
		{"txn without count", []byte{byte(OpTxn)}},
		{"txn count past end", append([]byte{byte(OpTxn), 2}, txnOp(VerbGet, "k")...)},
		{"txn huge count", binary.AppendUvarint([]byte{byte(OpTxn)}, 1<<60)},
		{"txn unknown verb", append([]byte{byte(OpTxn), 1}, txnOp(42, "k")...)},
		{"txn trailing bytes", append(append([]byte{byte(OpTxn), 1}, txnOp(VerbGet, "k")...), 'x')},
		{"txn value past end", []byte{byte(OpTxn), 1, byte(VerbSet), 0, 0, 1, 'k', 9, 'v'}},
		{"txn lock without session", []byte{byte(OpTxn), 1, byte(VerbLock), 0, 0, 1, 'k', 0}},
		{"session-create behavior 2", []byte{byte(OpSessionCreate), 2, 0, 0, 1, 's', 0, 1, 'n', 0}},
		{"session-create lock delay overflow", binary.AppendUvarint([]byte{byte(OpSessionCreate), 0}, 1<<63)},
		{"session-create huge check count", binary.AppendUvarint([]byte{byte(OpSessionCreate), 0, 0, 0, 1, 's', 0, 1, 'n'}, 1<<40)},
		{"session-create check past end", []byte{byte(OpSessionCreate), 0, 0, 0, 1, 's', 0, 1, 'n', 1, 5, 'a'}},
		{"session-create trailing bytes", []byte{byte(OpSessionCreate), 0, 0, 0, 1, 's', 0, 1, 'n', 0, 'x'}},
		{"lock session past end", []byte{byte(OpLock), 0, 9, 's'}},
		{"unlock without key", []byte{byte(OpUnlock), 0, 1, 's'}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := decodeCommand(tc.data); err == nil {
				t.Errorf("decodeCommand(%x) = %+v, nil; want an error", tc.data, c)
			}
		})
	}
}

func TestCommandValidate(t *testing.T) {
	big := make([]byte, testMaxValueSize+1)
	cases := []struct {
		name    string
		cmd     Command
		limit   int
		wantErr error // nil means valid
		// wantOp is the OpIndex of the *TxnOpError, or -1 for none.
		wantOp int
	}{
		{"set", Command{Op: OpSet, Key: "a/b", Value: []byte("v")}, 0, nil, -1},
		{"set unicode key", Command{Op: OpSet, Key: "ключ/😀"}, 0, nil, -1},
		{"set value at the limit", Command{Op: OpSet, Key: "k", Value: big[:testMaxValueSize]}, testMaxValueSize, nil, -1},
		{"set value over the limit", Command{Op: OpSet, Key: "k", Value: big}, testMaxValueSize, ErrValueTooLarge, -1},
		{"no limit", Command{Op: OpSet, Key: "k", Value: big}, 0, nil, -1},
		{"set value over a configured limit", Command{Op: OpSet, Key: "k", Value: []byte("12345")}, 4, ErrValueTooLarge, -1},
		{"cas value over the limit", Command{Op: OpCAS, Key: "k", Value: []byte("12345")}, 4, ErrValueTooLarge, -1},
		{"set empty key", Command{Op: OpSet, Value: []byte("v")}, 0, ErrInvalidKey, -1},
		{"set leading slash", Command{Op: OpSet, Key: "/a"}, 0, ErrInvalidKey, -1},
		{"set invalid UTF-8", Command{Op: OpSet, Key: "a\xffb"}, 0, ErrInvalidKey, -1},
		{"cas empty key", Command{Op: OpCAS}, 0, ErrInvalidKey, -1},
		{"delete empty key", Command{Op: OpDelete}, 0, ErrInvalidKey, -1},
		{"delete leading slash", Command{Op: OpDelete, Key: "/"}, 0, ErrInvalidKey, -1},
		{"delete-cas empty key", Command{Op: OpDeleteCAS, Index: 3}, 0, ErrInvalidKey, -1},
		{"delete-tree empty prefix", Command{Op: OpDeleteTree}, 0, nil, -1},
		{"delete-tree leading slash", Command{Op: OpDeleteTree, Key: "/a"}, 0, ErrInvalidKey, -1},
		{"reap", Command{Op: OpReapTombstones, Index: 10}, 0, nil, -1},
		{"reap without index", Command{Op: OpReapTombstones}, 0, ErrInvalidCommand, -1},
		{"unknown op", Command{Op: 99, Key: "k"}, 0, ErrInvalidCommand, -1},
		{"txn", Command{Op: OpTxn, Ops: []TxnOp{{Verb: VerbSet, Key: "a"}, {Verb: VerbDeleteTree}}}, 0, nil, -1},
		{"txn get-tree empty prefix", Command{Op: OpTxn, Ops: []TxnOp{{Verb: VerbSet, Key: "a"}, {Verb: VerbGetTree}}}, 0, ErrInvalidKey, 1},
		{"txn bad key", Command{Op: OpTxn, Ops: []TxnOp{{Verb: VerbGet, Key: "a"}, {Verb: VerbGet, Key: "b"}, {Verb: VerbDelete, Key: "/c"}}}, 0, ErrInvalidKey, 2},
		{"txn value too large", Command{Op: OpTxn, Ops: []TxnOp{{Verb: VerbCAS, Key: "a", Value: []byte("12345")}}}, 4, ErrValueTooLarge, 0},
		{"txn unknown verb", Command{Op: OpTxn, Ops: []TxnOp{{Verb: 77, Key: "a"}}}, 0, ErrInvalidCommand, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Validate(tc.limit)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Validate = %v, want %v", err, tc.wantErr)
			}
			var opErr *TxnOpError
			switch {
			case tc.wantOp < 0 && errors.As(err, &opErr):
				t.Errorf("Validate = %v, a *TxnOpError; want a plain error", err)
			case tc.wantOp >= 0 && !errors.As(err, &opErr):
				t.Errorf("Validate = %v, want a *TxnOpError", err)
			case tc.wantOp >= 0 && opErr.OpIndex != tc.wantOp:
				t.Errorf("Validate: OpIndex = %d, want %d", opErr.OpIndex, tc.wantOp)
			}
		})
	}
}

func TestValueTooLargeError(t *testing.T) {
	err := Command{Op: OpSet, Key: "big", Value: make([]byte, 10)}.Validate(8)
	var tooLarge *ValueTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("Validate = %v, want a *ValueTooLargeError", err)
	}
	want := ValueTooLargeError{Key: "big", Size: 10, Limit: 8}
	if *tooLarge != want {
		t.Errorf("ValueTooLargeError = %+v, want %+v", *tooLarge, want)
	}
	if got, want := err.Error(), `value for key "big" is too large (10 > 8 bytes)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseVerb(t *testing.T) {
	for v := VerbSet; v <= VerbCheckSession; v++ {
		got, ok := ParseVerb(v.String())
		if !ok || got != v {
			t.Errorf("ParseVerb(%q) = %v, %v; want %v, true", v.String(), got, ok, v)
		}
	}
	for _, s := range []string{"", "get-or-empty", "SET", "Verb(0)"} {
		if v, ok := ParseVerb(s); ok {
			t.Errorf("ParseVerb(%q) = %v, true; want false", s, v)
		}
	}
	if got := Verb(0).String(); got != "Verb(0)" {
		t.Errorf("Verb(0).String() = %q", got)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{byte(OpSet)})
	f.Add([]byte{byte(OpSet), 0x80})
	f.Add([]byte{byte(OpDelete), 'k'})
	f.Add([]byte{byte(OpSet), 0, 1, 'k', 'v'})
	f.Add([]byte{byte(OpSet), 0, 0x80, 0x00, 'v'}) // non-minimal varint
	f.Add(binary.AppendUvarint([]byte{byte(OpSet), 0}, 1<<63))
	f.Add(append([]byte{byte(OpSet)}, bytes.Repeat([]byte{0xff}, 11)...))
	f.Add([]byte{byte(OpReapTombstones), 5})
	f.Add([]byte{byte(OpDeleteTree)})
	f.Add([]byte{byte(OpSetClusterMeta), 'i', 'd'})
	f.Add([]byte{byte(OpSetAutopilotConfig), 3, 5, 1, 2, 3, 4})
	f.Add([]byte{byte(OpSetAutopilotConfig), 4, 0, 0, 0, 0, 0})         // unknown flag
	f.Add([]byte{42, 1, 2, 3})                                          // a type from a newer release
	f.Add([]byte{byte(OpSessionCreate), 2, 0, 0, 1, 's', 0, 1, 'n', 0}) // unknown behavior
	f.Add([]byte{byte(OpSessionDestroy), 's'})
	for _, c := range []Command{
		{Op: OpCAS, Key: "a", Value: []byte("x"), Index: 3},
		{Op: OpDeleteCAS, Key: "a", Index: 3},
		{Op: OpSessionCreate, Session: Session{ID: "s", Node: "n", LockDelay: time.Second, TTL: 10 * time.Second,
			Behavior: SessionDelete, NodeChecks: []string{SerfHealth}}},
		{Op: OpLock, Key: "a", Value: []byte("v"), Session: Session{ID: "s"}},
		{Op: OpUnlock, Key: "a", Value: []byte("w"), Session: Session{ID: "s"}},
		{Op: OpTxn, Ops: []TxnOp{
			{Verb: VerbLock, Key: "a", Session: "s"},
			{Verb: VerbCheckSession, Key: "a", Session: "s"},
			{Verb: VerbUnlock, Key: "a", Session: "s"},
		}},
		{Op: OpTxn, Ops: []TxnOp{
			{Verb: VerbCheckIndex, Key: "a", Index: 1},
			{Verb: VerbSet, Key: "a", Value: []byte("v")},
			{Verb: VerbGetTree, Key: "a"},
			{Verb: VerbDeleteTree, Key: "b/"},
		}},
	} {
		f.Add(mustEncode(f, c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The state machine must turn any log entry into a response, never
		// a panic, and never keep a reference to the log's buffer.
		// A session "s" exists, so that locks can succeed.
		fsm := NewFSM()
		mustApply(t, fsm, 1, Command{Op: OpSessionCreate, Session: Session{ID: "s", Node: "n", LockDelay: time.Second}})
		resp := fsm.Apply(&raft.Log{Index: 2, Data: data})
		switch resp.(type) {
		case bool, *Result, error:
		default:
			t.Fatalf("FSM.Apply(%x) = %#v, want a bool, *Result or error", data, resp)
		}
		if err, ok := resp.(error); ok && strings.Contains(err.Error(), "internal error") {
			t.Fatalf("FSM.Apply(%x) panicked: %v", data, err)
		}
		saved := append([]byte(nil), data...)
		before, beforeSessions := cloneEntries(fsm.List("")), fsm.View().SessionList()
		for i := range data {
			data[i] ^= 0xff
		}
		if diff := cmp.Diff(fsm.List(""), before, equateEmpty); diff != "" {
			t.Fatalf("state changed with the log buffer (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(fsm.View().SessionList(), beforeSessions); diff != "" {
			t.Fatalf("sessions changed with the log buffer (-got +want):\n%s", diff)
		}
		data = saved

		c, err := decodeCommand(data)
		if err != nil {
			return
		}
		enc, err := c.encode()
		if err != nil {
			t.Fatalf("encode(decodeCommand(%x)): %v", data, err)
		}
		again, err := decodeCommand(enc)
		if err != nil {
			t.Fatalf("decodeCommand(encode(decodeCommand(%x))): %v", data, err)
		}
		if diff := cmp.Diff(again, c, equateEmpty); diff != "" {
			t.Fatalf("round trip mismatch (-got +want):\n%s", diff)
		}
	})
}
