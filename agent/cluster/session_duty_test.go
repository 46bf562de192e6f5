package cluster

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

func TestStaleSessions(t *testing.T) {
	sessions := []consensus.Session{
		{ID: "a1", Node: "a", NodeChecks: []string{consensus.SerfHealth}},
		{ID: "a2", Node: "a"}, // no checks: outlives a failure
		{ID: "b1", Node: "b", NodeChecks: []string{consensus.SerfHealth}},
		{ID: "c1", Node: "c"},
		{ID: "d1", Node: "d"},
	}
	members := func(st ...gossip.Status) []gossip.Member {
		var ms []gossip.Member
		for i, s := range st {
			ms = append(ms, gossip.Member{Name: string(rune('a' + i)), Status: s})
		}
		return ms
	}
	alive := gossip.StatusAlive
	for _, tc := range []struct {
		name    string
		members []gossip.Member
		reaped  map[string]bool
		settled bool
		want    []string
	}{
		{"all alive", members(alive, alive, alive, alive), nil, true, nil},
		{"a failed", members(gossip.StatusFailed, alive, alive, alive), nil, true, []string{"a1"}},
		{"a left", members(gossip.StatusLeft, alive, alive, alive), nil, true, []string{"a1", "a2"}},
		{"d absent, not settled", members(alive, alive, alive), nil, false, nil},
		{"d absent, settled", members(alive, alive, alive), nil, true, []string{"d1"}},
		{"d reaped, not settled", members(alive, alive, alive), map[string]bool{"d": true}, false, []string{"d1"}},
		{"c reaped but back", members(alive, alive, alive, alive), map[string]bool{"c": true}, true, nil},
		{"b leaving", members(alive, gossip.StatusLeaving, alive, alive), nil, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := staleSessions(sessions, tc.members, tc.reaped, tc.settled)
			if !slices.Equal(got, tc.want) {
				t.Errorf("staleSessions = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeSessionNode records session-destroys and lists sessions.
type fakeSessionNode struct {
	mu        sync.Mutex
	leader    bool
	list      []consensus.Session
	destroyed []string
}

func (f *fakeSessionNode) Apply(_ context.Context, c consensus.Command) (consensus.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return consensus.Result{}, consensus.ErrNotLeader
	}
	if c.Op == consensus.OpSessionDestroy {
		f.destroyed = append(f.destroyed, c.Session.ID)
	}
	return consensus.Result{OK: true}, nil
}

func (f *fakeSessionNode) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeSessionNode) SessionList() []consensus.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

func (f *fakeSessionNode) gone() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.destroyed)
}

type fakeSessionMembers []gossip.Member

func (f fakeSessionMembers) Members() []gossip.Member { return f }

// TestSessionDutyTTL: a new leader gives every TTL session its full 2×TTL
// and then destroys it; a renew (Arm) restarts the grace; Arm does nothing
// on a server that does not lead; losing leadership stops the timers.
func TestSessionDutyTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := &fakeSessionNode{leader: true, list: []consensus.Session{
			{ID: "s10", Node: "n", TTL: 10 * time.Second},
			{ID: "s30", Node: "n", TTL: 30 * time.Second},
			{ID: "none", Node: "n"},
		}}
		d := NewSessionDuty(testutil.Logger(t), node, fakeSessionMembers{{Name: "n", Status: gossip.StatusAlive}})
		d.Arm("early", 10*time.Second) // not leading yet: ignored
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()

		time.Sleep(20*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := node.gone(); len(got) != 0 {
			t.Fatalf("destroyed before 2×TTL: %v", got)
		}
		d.Arm("s30", 30*time.Second) // a renew at 20 s: expires at 80 s, not 60 s
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := node.gone(); !slices.Equal(got, []string{"s10"}) {
			t.Fatalf("destroyed at 2×10 s = %v, want [s10]", got)
		}
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if got := node.gone(); !slices.Equal(got, []string{"s10"}) {
			t.Fatalf("destroyed by 79 s = %v, want only s10: s30 was renewed at 20 s", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := node.gone(); !slices.Equal(got, []string{"s10", "s30"}) {
			t.Fatalf("destroyed by 80 s = %v, want s10 and s30", got)
		}

		d.Arm("late", 10*time.Second)
		cancel() // leadership lost
		<-done
		if n := d.timers.Len(); n != 0 {
			t.Fatalf("timers after losing leadership = %d, want 0", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := node.gone(); !slices.Equal(got, []string{"s10", "s30"}) {
			t.Fatalf("destroyed after losing leadership = %v, want nothing more", got)
		}
	})
}
