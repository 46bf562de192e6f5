package cluster

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/test/testutil"
)

func TestTombstoneSampler(t *testing.T) {
	var s tombstoneSampler
	t0 := time.Unix(0, 0)
	for i := 0; i < 20; i++ {
		s.add(t0.Add(time.Duration(i)*time.Minute), uint64(100+i))
	}
	if got := s.reapable(t0.Add(14*time.Minute), 15*time.Minute); got != 0 {
		t.Fatalf("reapable before any sample is 15m old = %d, want 0", got)
	}
	if got := s.reapable(t0.Add(17*time.Minute), 15*time.Minute); got != 102 {
		t.Fatalf("reapable at 17m = %d, want 102 (the sample taken at 2m)", got)
	}
	if got := s.reapable(t0.Add(17*time.Minute), 15*time.Minute); got != 0 {
		t.Fatalf("second reapable at 17m = %d, want 0: samples already used", got)
	}
	if got, want := len(s.samples), 17; got != want {
		t.Fatalf("samples left = %d, want %d", got, want)
	}
}

// fakeApplier records the commands it is given.
type fakeApplier struct {
	mu    sync.Mutex
	index uint64
	cmds  []consensus.Command
}

func (f *fakeApplier) Apply(_ context.Context, c consensus.Command) (consensus.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, c)
	return consensus.Result{OK: true}, nil
}

func (f *fakeApplier) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index += 10
	return f.index
}

func TestReapTombstonesWaitsATTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := &fakeApplier{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { ReapTombstones(ctx, testutil.Logger(t), node); close(done) }()

		time.Sleep(tombstoneTTL + 30*time.Second)
		synctest.Wait()
		node.mu.Lock()
		n := len(node.cmds)
		node.mu.Unlock()
		if n != 0 {
			t.Fatalf("reaped %d times within the first TTL, want none", n)
		}
		time.Sleep(tombstoneGranularity)
		synctest.Wait()
		node.mu.Lock()
		cmds := append([]consensus.Command(nil), node.cmds...)
		node.mu.Unlock()
		if len(cmds) != 1 || cmds[0].Op != consensus.OpReapTombstones || cmds[0].Index != 10 {
			t.Fatalf("commands after TTL + a minute = %+v, want one reap up to index 10 (the first sample)", cmds)
		}
		cancel()
		<-done
	})
}
