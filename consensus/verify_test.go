package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/conclavehq/conclave/test/testutil"
)

// flipInFile changes, in place and while the store has it open, the
// first byte after every occurrence of target in the store files of n.
func flipInFile(t *testing.T, n *Node, target []byte) int {
	t.Helper()
	flipped := 0
	for _, path := range storeFiles(t, n.cfg.DataDir, n.store.backend) {
		b := mustRead(t, path)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; {
			j := bytes.Index(b[i:], target)
			if j < 0 {
				break
			}
			off := i + j + len(target)
			if _, err := f.WriteAt([]byte{b[off] ^ 0x01}, int64(off)); err != nil {
				t.Fatal(err)
			}
			flipped++
			i = off
		}
		f.Close()
	}
	return flipped
}

// TestVerificationDetectsDamagedFollower runs three servers on disk with
// log verification, changes one byte of a value in a follower's store
// while it runs, and checks that the follower reports it within one
// interval: an error through OnFatal naming the server and the range, its
// Raft stopped, its status set, and a marker that keeps it from starting
// again. The other servers keep passing. With boltdb the changed byte is
// read back as it is and the range checksum differs; with wal the entry's
// own checksum already fails the read.
func TestVerificationDetectsDamagedFollower(t *testing.T) {
	const interval = 500 * time.Millisecond
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			fatal := make(map[string]chan error)
			var nodes []*Node
			for i := 1; i <= 3; i++ {
				id := fmt.Sprintf("node-%d", i)
				ch := make(chan error, 1)
				fatal[id] = ch
				nodes = append(nodes, newTestNode(t, id, func(c *Config) {
					c.LogStore.Backend = backend
					c.LogStore.Verification = VerificationConfig{Enabled: true, Interval: interval}
					c.OnFatal = func(err error) { ch <- err }
				}))
			}
			var servers []Server
			for _, n := range nodes {
				servers = append(servers, self(n))
			}
			if err := nodes[0].Bootstrap(servers); err != nil {
				t.Fatalf("Bootstrap: %v", err)
			}
			leader := waitForLeader(t, nodes...)
			var victim *Node
			for _, n := range nodes {
				if n != leader {
					victim = n
					break
				}
			}
			ctx := ctxFor(t)

			// Checkpoints pass while nothing is wrong.
			if _, err := leader.Apply(ctx, set("warmup", "ok")); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			testutil.WaitFor(t, 5*interval, func() error {
				for _, n := range nodes {
					if v := n.Verification(); v.Checked == 0 || v.Last.Err != nil {
						return fmt.Errorf("%s: %d checks, last %v", n.ID(), v.Checked, v.Last.Err)
					}
				}
				return nil
			})

			// Damage an entry the next checkpoint will cover. A checkpoint
			// could land between the write and the damage; then try again.
			var (
				damagedAt time.Time
				index     uint64
			)
			for attempt := 0; ; attempt++ {
				if attempt == 5 {
					t.Fatal("a checkpoint covered the damaged entry before it was damaged, five times")
				}
				v := fmt.Sprintf("%s%04d-xxxxxxxx", marker, attempt)
				res, err := leader.Apply(ctx, set("victim", v))
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				waitForValue(t, victim, "victim", v)
				if got := flipInFile(t, victim, []byte(marker+fmt.Sprintf("%04d-", attempt))); got == 0 {
					t.Fatalf("value not found in %s's store", victim.ID())
				}
				damagedAt, index = time.Now(), res.Index
				if victim.Verification().Last.End <= index {
					break
				}
			}

			var err error
			select {
			case err = <-fatal[victim.ID()]:
			case <-time.After(interval + 2*time.Second):
				t.Fatalf("no fatal error from %s within one interval (%v) of the damage; status %+v", victim.ID(), interval, victim.Verification())
			}
			elapsed := time.Since(damagedAt)
			t.Logf("%s reported the damage after %v: %v", victim.ID(), elapsed, err)
			if !errors.Is(err, ErrVerificationFailed) {
				t.Errorf("OnFatal(%v), want ErrVerificationFailed", err)
			}
			for _, s := range []string{victim.ID(), "log range", "leader checksum", "wipe its data_dir"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("fatal error %q does not mention %q", err, s)
				}
			}
			st := victim.Verification()
			if st.Failure == nil {
				t.Fatalf("Verification().Failure = nil after the report")
			}
			if st.Failure.Start > index || st.Failure.End <= index {
				t.Errorf("failed range [%d, %d) does not hold the damaged entry %d", st.Failure.Start, st.Failure.End, index)
			}
			waitForState(t, victim, raft.Shutdown)
			marker := filepath.Join(victim.cfg.DataDir, "raft", verifyFailedFile)
			if _, err := os.Stat(marker); err != nil {
				t.Errorf("no marker after the failure: %v", err)
			}

			// The healthy servers go on and keep passing.
			for _, n := range nodes {
				if n == victim {
					continue
				}
				select {
				case err := <-fatal[n.ID()]:
					t.Errorf("%s, whose store is intact, reported %v", n.ID(), err)
				default:
				}
				if f := n.Verification().Failure; f != nil {
					t.Errorf("%s: Verification().Failure = %+v, want nil", n.ID(), f)
				}
			}

			// The damaged server does not start again until an operator acts.
			victim.Shutdown()
			_, err = openStoreNode(t, victim.cfg.DataDir, backend, nil)
			if !errors.Is(err, ErrVerificationFailed) || !strings.Contains(err.Error(), marker) {
				t.Errorf("New after a failed verification = %v, want ErrVerificationFailed naming %s", err, marker)
			}
		})
	}
}

// TestCheckpointNeverReachesFSM applies checkpoints between writes and
// checks the FSM state and applied index as if they were no-ops.
func TestCheckpointNeverReachesFSM(t *testing.T) {
	n := newTestNode(t, "node-1", func(c *Config) {
		inMemory(c)
		c.LogStore.Verification = VerificationConfig{Enabled: true, Interval: time.Hour}
	})
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatal(err)
	}
	waitForLeader(t, n)
	ctx := ctxFor(t)
	if _, err := n.Apply(ctx, set("a", "1")); err != nil {
		t.Fatal(err)
	}
	f := n.raft.ApplyLog(raft.Log{Data: checkpointData}, 0)
	if err := f.Error(); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if resp := f.Response(); resp != nil {
		t.Errorf("checkpoint response = %v, want nil (the FSM must not see it)", resp)
	}
	if got := n.AppliedIndex(); got != f.Index() {
		t.Errorf("AppliedIndex() = %d after the checkpoint at %d", got, f.Index())
	}
	if got := n.List(""); len(got) != 1 {
		t.Errorf("List() = %+v, want only a", got)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if v := n.Verification(); v.Checked == 0 || v.Last.Err != nil {
			return fmt.Errorf("checks %d, last %v", v.Checked, v.Last.Err)
		}
		return nil
	})
}

func waitForState(t *testing.T, n *Node, want raft.RaftState) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if got := n.raft.State(); got != want {
			return fmt.Errorf("%s state %v, want %v", n.ID(), got, want)
		}
		return nil
	})
}
