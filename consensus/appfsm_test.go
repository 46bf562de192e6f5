package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"

	"github.com/conclavehq/conclave/test/testutil"
)

// sumFSM is an application state machine: it adds each command (a decimal
// number) to a sum. "panic" panics and "fail" answers an error.
type sumFSM struct {
	mu  sync.Mutex
	sum int64
}

func (s *sumFSM) Apply(index uint64, data []byte) any {
	switch string(data) {
	case "panic":
		panic("boom")
	case "fail":
		return errors.New("refused")
	}
	n, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum += n
	return s.sum
}

func (s *sumFSM) Snapshot() (io.WriterTo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sumSnapshot(s.sum), nil
}

func (s *sumFSM) Restore(r io.Reader) error {
	var v int64
	if err := binary.Read(r, binary.BigEndian, &v); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum = v
	return nil
}

func (s *sumFSM) value() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

type sumSnapshot int64

func (v sumSnapshot) WriteTo(w io.Writer) (int64, error) {
	return 8, binary.Write(w, binary.BigEndian, int64(v))
}

// TestApplicationStateMachine runs an application's state machine on
// BoltDB: its commands replicate, its answers come back, its snapshots
// restore on restart and on a follower that joins late, and the key/value
// methods refuse.
func TestApplicationStateMachine(t *testing.T) {
	dir := t.TempDir()
	fsm1 := &sumFSM{}
	n1 := newTestNode(t, "node-1", func(c *Config) { c.DataDir, c.FSM, c.TrailingLogs = dir, fsm1, 2 })
	if err := n1.Bootstrap([]Server{self(n1)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n1)
	ctx := ctxFor(t)
	for i := 1; i <= 10; i++ {
		got, err := n1.ApplyBytes(ctx, []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("ApplyBytes(%d): %v", i, err)
		}
		if want := int64(i * (i + 1) / 2); got != want {
			t.Fatalf("ApplyBytes(%d) = %v, want %d", i, got, want)
		}
	}
	if _, err := n1.ApplyBytes(ctx, []byte("fail")); err == nil || err.Error() != "refused" {
		t.Errorf("ApplyBytes(fail) error = %v, want the state machine's error", err)
	}
	if _, err := n1.ApplyBytes(ctx, []byte("panic")); err == nil {
		t.Errorf("ApplyBytes(panic) error = nil, want the recovered panic")
	}
	if _, err := n1.Apply(ctx, set("k", "v")); !errors.Is(err, ErrNoKVStore) {
		t.Errorf("Apply error = %v, want ErrNoKVStore", err)
	}
	if _, err := n1.SaveSnapshot(io.Discard); !errors.Is(err, ErrNoKVStore) {
		t.Errorf("SaveSnapshot error = %v, want ErrNoKVStore", err)
	}
	if err := n1.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	for range 5 { // a tail past the snapshot, longer than TrailingLogs
		if _, err := n1.ApplyBytes(ctx, []byte("100")); err != nil {
			t.Fatalf("ApplyBytes: %v", err)
		}
	}
	if err := n1.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	const want = 55 + 500

	fsm2 := &sumFSM{}
	n2 := newTestNode(t, "node-2", func(c *Config) { c.FSM = fsm2 })
	if err := n1.AddVoter(ctx, n2.ID(), n2.RaftAddr()); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, func() error {
		if got := fsm2.value(); got != want {
			return fmt.Errorf("node-2 sum = %d, want %d", got, want)
		}
		return nil
	})
	if n2.raft.Stats()["last_snapshot_index"] == "0" {
		t.Errorf("node-2 did not install a snapshot; it replayed the whole log")
	}
	if n2.AppliedIndex() == 0 {
		t.Errorf("node-2 AppliedIndex = 0 after catching up")
	}

	if err := n1.RemoveServer(ctx, n2.ID()); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	if err := n1.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	fsm3 := &sumFSM{}
	n3 := newTestNode(t, "node-1", func(c *Config) { c.DataDir, c.FSM = dir, fsm3 })
	waitForLeader(t, n3)
	if err := n3.Barrier(ctx); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if got := fsm3.value(); got != want {
		t.Errorf("sum after restart = %d, want %d", got, want)
	}
}

// TestApplyBytesWithoutStateMachine checks that the key/value store
// takes no raw commands.
func TestApplyBytesWithoutStateMachine(t *testing.T) {
	n := newTestNode(t, "node-1", inMemory)
	if _, err := n.ApplyBytes(ctxFor(t), []byte("1")); !errors.Is(err, ErrNoStateMachine) {
		t.Errorf("ApplyBytes error = %v, want ErrNoStateMachine", err)
	}
}
