package consensus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/testutil"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestWatch checks which writes close which watch channels.
func TestWatch(t *testing.T) {
	seed := []string{"a/1", "a/2", "a/b/1", "b/1", "b/2", "c"}
	cases := []struct {
		name  string
		cmd   Command
		fires []string // watches that must fire; every other must not
	}{
		{"set under a/", setCmd("a/3", "x"), []string{"prefix a/", "prefix a", "prefix everything"}},
		{"update a/1", setCmd("a/1", "new"), []string{"prefix a/", "prefix a", "prefix everything", "key a/1"}},
		{"set under b/", setCmd("b/3", "x"), []string{"prefix b/", "prefix everything"}},
		{"no-op set of a/1", setCmd("a/1", "a/1"), nil},
		{"failed cas on a/1", Command{Op: OpCAS, Key: "a/1", Value: []byte("x"), Index: 99}, nil},
		{"delete a/1", Command{Op: OpDelete, Key: "a/1"}, []string{"prefix a/", "prefix a", "prefix everything", "key a/1"}},
		{"delete of a missing key", Command{Op: OpDelete, Key: "a/9"}, nil},
		{"delete-tree a/b/", Command{Op: OpDeleteTree, Key: "a/b/"}, []string{"prefix a/", "prefix a", "prefix everything"}},
		{"delete-tree of nothing", Command{Op: OpDeleteTree, Key: "zzz/"}, nil},
		{"txn over a/ and b/", Command{Op: OpTxn, Ops: []TxnOp{{Verb: VerbSet, Key: "a/1", Value: []byte("t")}, {Verb: VerbDelete, Key: "b/1"}}},
			[]string{"prefix a/", "prefix a", "prefix b/", "prefix everything", "key a/1"}},
		{"rolled-back txn", Command{Op: OpTxn, Ops: []TxnOp{{Verb: VerbSet, Key: "a/1", Value: []byte("t")}, {Verb: VerbGet, Key: "nope"}}}, nil},
		{"reap", Command{Op: OpReapTombstones, Index: 100}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			for i, k := range seed {
				mustApply(t, f, uint64(i+1), setCmd(k, k))
			}
			mustApply(t, f, 10, setCmd("gone", "x"))
			mustApply(t, f, 11, Command{Op: OpDelete, Key: "gone"})
			v := f.View()
			watches := map[string]<-chan struct{}{
				"prefix a/":         v.WatchPrefix("a/"),
				"prefix a":          v.WatchPrefix("a"),
				"prefix b/":         v.WatchPrefix("b/"),
				"prefix c":          v.WatchPrefix("c"),
				"prefix everything": v.WatchPrefix(""),
				"key a/1":           v.WatchKey("a/1"),
				"key a/2":           v.WatchKey("a/2"),
				"key c":             v.WatchKey("c"),
			}
			applyAt(t, f, 20, tc.cmd)
			want := map[string]bool{}
			for _, name := range tc.fires {
				want[name] = true
			}
			for name, ch := range watches {
				if got := closed(ch); got != want[name] {
					t.Errorf("after %s: watch %q fired = %v, want %v", tc.name, name, got, want[name])
				}
			}
		})
	}
}

// TestWaitPrefix runs a blocking query: it must not return for a change
// elsewhere, and must return once something under its prefix changes.
func TestWaitPrefix(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("svc/web", "1"))
	mustApply(t, f, 2, setCmd("other/x", "1"))
	min := f.View().PrefixIndex("svc/")

	type result struct {
		v   View
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f.WaitPrefix(context.Background(), "svc/", min)
		done <- result{v, err}
	}()

	// Unrelated writes leave the query waiting. Waiting for something not
	// to happen needs some time; the writes are applied before it starts.
	mustApply(t, f, 3, setCmd("other/y", "1"))
	mustApply(t, f, 4, setCmd("svd", "1"))
	select {
	case r := <-done:
		t.Fatalf("WaitPrefix returned after unrelated writes: index %d, %v", r.v.PrefixIndex("svc/"), r.err)
	case <-time.After(50 * time.Millisecond):
	}

	mustApply(t, f, 5, Command{Op: OpDelete, Key: "svc/web"})
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("WaitPrefix: %v", r.err)
		}
		if got := r.v.PrefixIndex("svc/"); got != 5 {
			t.Errorf("WaitPrefix returned a view at index %d, want 5", got)
		}
		if got := r.v.List("svc/"); len(got) != 0 {
			t.Errorf("WaitPrefix view lists %+v, want the delete applied", got)
		}
	case <-time.After(waitTimeout):
		t.Fatal("WaitPrefix did not return after a delete under its prefix")
	}

	// An index already passed returns at once.
	v, err := f.WaitPrefix(context.Background(), "svc/", 4)
	if err != nil || v.PrefixIndex("svc/") != 5 {
		t.Errorf("WaitPrefix(min 4) = index %d, %v; want 5 at once", v.PrefixIndex("svc/"), err)
	}
}

func TestWaitKeyDeletedKey(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("lock", "held"))
	mustApply(t, f, 2, Command{Op: OpDelete, Key: "lock"})
	mustApply(t, f, 3, setCmd("unrelated", "x"))
	// The client saw the delete at 2: the tombstone keeps the key's index
	// there, so the unrelated write does not wake it.
	if got := f.View().KeyIndex("lock"); got != 2 {
		t.Fatalf("KeyIndex(lock) after its delete = %d, want 2", got)
	}
	done := make(chan View, 1)
	go func() {
		v, _ := f.WaitKey(context.Background(), "lock", 2)
		done <- v
	}()
	mustApply(t, f, 4, setCmd("unrelated", "y"))
	select {
	case v := <-done:
		t.Fatalf("WaitKey returned after an unrelated write at index %d", v.KeyIndex("lock"))
	case <-time.After(50 * time.Millisecond):
	}
	mustApply(t, f, 5, setCmd("lock", "again"))
	select {
	case v := <-done:
		if e, ok := v.Get("lock"); !ok || e.ModifyIndex != 5 {
			t.Errorf("WaitKey view: Get(lock) = %+v, %v; want it at 5", e, ok)
		}
	case <-time.After(waitTimeout):
		t.Fatal("WaitKey did not return when the key came back")
	}
}

func TestWaitContext(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, 1, setCmd("k", "v"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	v, err := f.WaitKey(ctx, "k", 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitKey past its deadline = %v, want context.DeadlineExceeded", err)
	}
	if e, ok := v.Get("k"); !ok || e.ModifyIndex != 1 {
		t.Errorf("WaitKey past its deadline returned Get(k) = %+v, %v; want the current view", e, ok)
	}
}

// TestManyWaiters parks thousands of blocking queries, wakes one group with
// a single write, and checks that cancelling the rest leaves no goroutine
// or registration behind.
func TestManyWaiters(t *testing.T) {
	f := NewFSM()
	const groups, per = 20, 200
	for g := range groups {
		mustApply(t, f, uint64(g+1), setCmd(fmt.Sprintf("g%02d/k", g), "0"))
	}
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	woken := make(chan int, groups*per)
	for g := range groups {
		prefix := fmt.Sprintf("g%02d/", g)
		min := f.View().PrefixIndex(prefix)
		for range per {
			wg.Go(func() {
				if _, err := f.WaitPrefix(ctx, prefix, min); err == nil {
					woken <- g
				}
			})
		}
	}
	mustApply(t, f, 100, setCmd("g07/k", "1"))
	for range per {
		select {
		case g := <-woken:
			if g != 7 {
				t.Fatalf("a waiter on group %d woke for a write to group 7", g)
			}
		case <-time.After(waitTimeout):
			t.Fatal("not every waiter on the written prefix woke")
		}
	}
	cancel()
	wg.Wait()
	if len(woken) != 0 {
		t.Errorf("%d more waiters woke, want none", len(woken))
	}
	testutil.WaitFor(t, waitTimeout, func() error {
		if n := runtime.NumGoroutine(); n > base {
			return fmt.Errorf("%d goroutines after the waiters returned, %d before", n, base)
		}
		return nil
	})
}

// TestRestoreFiresWatches checks that replacing the state wakes every
// watcher, whether its key exists before, after, or never.
func TestRestoreFiresWatches(t *testing.T) {
	src := NewFSM()
	mustApply(t, src, 1, setCmd("x", "from snapshot"))
	data := persist(t, src)

	f := NewFSM()
	// Enough keys that the restore overflows iradix's tracking and takes
	// its slow path.
	for i := range 5000 {
		mustApply(t, f, uint64(i+1), setCmd(fmt.Sprintf("k/%05d", i), "v"))
	}
	v := f.View()
	watches := []<-chan struct{}{v.WatchKey("x"), v.WatchKey("k/00042"), v.WatchPrefix("k/01"), v.WatchPrefix("never/"), v.WatchPrefix("")}
	if err := restore(f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	for i, ch := range watches {
		if !closed(ch) {
			t.Errorf("watch %d did not fire on Restore", i)
		}
	}
	if e, ok := f.Get("x"); !ok || string(e.Value) != "from snapshot" || f.Len() != 1 {
		t.Errorf("after Restore: Get(x) = %+v, %v, Len %d", e, ok, f.Len())
	}
}
