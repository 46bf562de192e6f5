package sessions

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conclavehq/conclave/consensus"
)

// expiries records the IDs Timers expires, with the bubble's time of each.
type expiries struct {
	mu    sync.Mutex
	start time.Time
	got   []string
	at    []time.Duration
}

func (e *expiries) expire(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, id)
	e.at = append(e.at, time.Since(e.start))
}

func (e *expiries) ids() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

// sleep advances the bubble's clock by d and lets every timer due by then
// run its callback.
func sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestTimersExpireAtTwiceTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &expiries{start: time.Now()}
		timers := NewTimers(e.expire)
		timers.Arm("a", 10*time.Second)
		timers.Arm("b", 30*time.Second)
		timers.Arm("none", 0) // no TTL: no timer

		sleep(20*time.Second - time.Nanosecond)
		if got := e.ids(); len(got) != 0 {
			t.Fatalf("expired before 2×TTL: %v", got)
		}
		if got := timers.Len(); got != 2 {
			t.Errorf("Len() = %d, want 2", got)
		}
		sleep(time.Nanosecond)
		if diff := cmp.Diff(e.ids(), []string{"a"}); diff != "" {
			t.Fatalf("expired at 2×TTL of a mismatch (-got +want):\n%s", diff)
		}
		sleep(40 * time.Second)
		if diff := cmp.Diff(e.ids(), []string{"a", "b"}); diff != "" {
			t.Errorf("expired after 60 s mismatch (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(e.at, []time.Duration{20 * time.Second, 60 * time.Second}); diff != "" {
			t.Errorf("expiry times mismatch (-got +want):\n%s", diff)
		}
		if got := timers.Len(); got != 0 {
			t.Errorf("Len() after both expired = %d, want 0", got)
		}
	})
}

func TestTimersRenewAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &expiries{start: time.Now()}
		timers := NewTimers(e.expire)
		timers.Arm("renewed", 10*time.Second)
		timers.Arm("stopped", 10*time.Second)
		timers.Arm("dropped", 10*time.Second)

		sleep(15 * time.Second)
		timers.Arm("renewed", 10*time.Second) // a renew: 20 s from now
		timers.Stop("stopped")                // a destroy
		timers.Arm("dropped", 0)              // re-armed without a TTL
		timers.Stop("unknown")                // harmless
		sleep(20*time.Second - time.Nanosecond)
		if got := e.ids(); len(got) != 0 {
			t.Fatalf("expired = %v, want none before the renewed 2×TTL", got)
		}
		sleep(time.Nanosecond)
		if diff := cmp.Diff(e.ids(), []string{"renewed"}); diff != "" {
			t.Errorf("expired mismatch (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(e.at, []time.Duration{35 * time.Second}); diff != "" {
			t.Errorf("expiry time mismatch (-got +want):\n%s", diff)
		}
		// A renew after expiry arms a new timer, as Consul's does.
		timers.Arm("renewed", 10*time.Second)
		sleep(20 * time.Second)
		if diff := cmp.Diff(e.ids(), []string{"renewed", "renewed"}); diff != "" {
			t.Errorf("expired after a late renew mismatch (-got +want):\n%s", diff)
		}
	})
}

// TestTimersLeadership plays a leader change: the old leader stops every
// timer, the new one re-arms each TTL session at its full 2×TTL.
func TestTimersLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		oldLeader := &expiries{start: time.Now()}
		old := NewTimers(oldLeader.expire)
		old.Arm("a", 10*time.Second)
		old.Arm("b", 10*time.Second)
		sleep(19 * time.Second) // a and b nearly expired on the old leader
		old.StopAll()
		if got := old.Len(); got != 0 {
			t.Errorf("Len() after StopAll = %d, want 0", got)
		}

		newLeader := &expiries{start: time.Now()}
		timers := NewTimers(newLeader.expire)
		timers.Arm("stale", 10*time.Second) // replaced by RearmAll
		timers.RearmAll([]consensus.Session{
			{ID: "a", TTL: 10 * time.Second},
			{ID: "b", TTL: 30 * time.Second},
			{ID: "forever"}, // no TTL
		})
		if got := timers.Len(); got != 2 {
			t.Errorf("Len() after RearmAll = %d, want 2", got)
		}
		sleep(2 * time.Minute)
		if got := oldLeader.ids(); len(got) != 0 {
			t.Errorf("the old leader expired %v after StopAll", got)
		}
		if diff := cmp.Diff(newLeader.ids(), []string{"a", "b"}); diff != "" {
			t.Errorf("new leader expired mismatch (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(newLeader.at, []time.Duration{20 * time.Second, 60 * time.Second}); diff != "" {
			t.Errorf("new leader expiry times mismatch (-got +want):\n%s", diff)
		}
	})
}

// TestTimersExpireMayCallBack checks that the callback runs without the
// lock: it may stop or arm timers itself.
func TestTimersExpireMayCallBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var timers *Timers
		var got []string
		timers = NewTimers(func(id string) {
			got = append(got, id)
			timers.Stop(id)
			if id == "first" {
				timers.Arm("second", 10*time.Second)
			}
		})
		timers.Arm("first", 10*time.Second)
		sleep(time.Minute)
		if diff := cmp.Diff(got, []string{"first", "second"}); diff != "" {
			t.Errorf("expired mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestToInvalidate(t *testing.T) {
	serf := []string{consensus.SerfHealth}
	list := []consensus.Session{
		{ID: "a2", Node: "web-1", NodeChecks: serf},
		{ID: "a1", Node: "web-1", NodeChecks: serf},
		{ID: "nochecks", Node: "web-1"},
		{ID: "other", Node: "web-2", NodeChecks: serf},
	}
	cases := []struct {
		name   string
		node   string
		change NodeChange
		want   []string
	}{
		{"failed: the node's sessions with serfHealth", "web-1", NodeFailed, []string{"a1", "a2"}},
		{"left: every session of the node", "web-1", NodeLeft, []string{"a1", "a2", "nochecks"}},
		{"another node", "web-2", NodeFailed, []string{"other"}},
		{"a node without sessions", "db-1", NodeLeft, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(ToInvalidate(list, tc.node, tc.change), tc.want); diff != "" {
				t.Errorf("ToInvalidate(%s, %d) mismatch (-got +want):\n%s", tc.node, tc.change, diff)
			}
		})
	}
}
