package consensus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/conclavehq/conclave/test/testutil"
)

func TestAutopilotRaftReportsOnlyCommittedConfigurations(t *testing.T) {
	a := []Server{{ID: "s1", Address: "a1", Voter: true}}
	ab := append(a[:1:1], Server{ID: "s2", Address: "a2", Voter: true})
	r := &autopilotRaft{}
	steps := []struct {
		name          string
		latest        []Server
		last, commit  uint64
		want          []Server
		wantCommitted bool
	}{
		{name: "first sight, not yet committed", latest: a, last: 5, commit: 4},
		{name: "committed once the commit index reaches the last index seen", latest: a, last: 9, commit: 5, want: a, wantCommitted: true},
		{name: "a new voter, uncommitted: still the old one", latest: ab, last: 12, commit: 9, want: a, wantCommitted: true},
		{name: "later entries do not move the mark", latest: ab, last: 20, commit: 11, want: a, wantCommitted: true},
		{name: "the new configuration commits", latest: ab, last: 21, commit: 12, want: ab, wantCommitted: true},
	}
	for _, s := range steps {
		got, ok := r.observe(s.latest, s.last, s.commit)
		if ok != s.wantCommitted || fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("%s: observe() = %v %v, want %v %v", s.name, got, ok, s.want, s.wantCommitted)
		}
	}
	r.reset()
	if got, ok := r.observe(ab, 30, 29); ok || got != nil {
		t.Errorf("after reset: observe() = %v %v, want nothing committed", got, ok)
	}
}

func TestAutopilotRaftRefusesChanges(t *testing.T) {
	r := &autopilotRaft{}
	for name, f := range map[string]raft.Future{
		"AddVoter":                   r.AddVoter("x", "a", 0, 0),
		"AddNonvoter":                r.AddNonvoter("x", "a", 0, 0),
		"DemoteVoter":                r.DemoteVoter("x", 0, 0),
		"RemoveServer":               r.RemoveServer("x", 0, 0),
		"LeadershipTransferToServer": r.LeadershipTransferToServer("x", "a"),
	} {
		if err := f.Error(); !errors.Is(err, errReadOnlyRaft) {
			t.Errorf("%s().Error() = %v, want errReadOnlyRaft", name, err)
		}
	}
}

func TestRaftStatsServerStats(t *testing.T) {
	for _, tc := range []struct {
		contact string
		want    time.Duration
	}{{"0", 0}, {"never", -1}, {"35.5ms", 35500 * time.Microsecond}, {"", -1}} {
		if got := (RaftStats{LastContact: tc.contact}).ServerStats().LastContact; got != tc.want {
			t.Errorf("ServerStats() of last_contact %q = %s, want %s", tc.contact, got, tc.want)
		}
	}
}

// staticDelegate reports every server of the configuration alive and as
// caught up as the leader.
type staticDelegate struct{ n *Node }

func (d staticDelegate) KnownServers() []AutopilotServer {
	servers, _, _ := d.n.Configuration()
	var out []AutopilotServer
	for _, s := range servers {
		out = append(out, AutopilotServer{ID: s.ID, Name: s.ID, Address: s.Address, Status: MemberAlive, SerfStatus: "alive"})
	}
	return out
}

func (d staticDelegate) FetchServerStats(_ context.Context, servers []AutopilotServer) map[string]ServerStats {
	out := make(map[string]ServerStats)
	for _, s := range servers {
		st := d.n.RaftStats().ServerStats()
		st.LastContact = 0
		out[s.ID] = st
	}
	return out
}

func (staticDelegate) NotifyHealth(AutopilotState) {}

// TestAutopilotNeverChangesTheConfiguration runs the real raft-autopilot
// with reconciliation switched on and a healthy, stable non-voter: its
// StablePromoter wants to promote it, and the read-only Raft refuses.
func TestAutopilotNeverChangesTheConfiguration(t *testing.T) {
	n := newTestNode(t, "node-1", inMemory)
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n)
	if err := n.raft.AddNonvoter("node-2", "127.0.0.1:1", 0, 5*time.Second).Error(); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	p := newAutopilot(n, AutopilotOptions{
		Delegate: staticDelegate{n}, Multiplier: 1, Logger: testutil.Logger(t),
		UpdateInterval: 20 * time.Millisecond, StabilizationTime: 50 * time.Millisecond,
	}, autopilot.WithReconcileInterval(20*time.Millisecond))
	if p.ap.ReconciliationEnabled() {
		t.Errorf("autopilot reconciliation is enabled by default, want disabled")
	}
	p.ap.EnableReconciliation()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	testutil.WaitFor(t, 10*time.Second, func() error {
		s := p.State()
		if s == nil || len(s.Servers) != 2 {
			return fmt.Errorf("autopilot state = %+v, want two servers", s)
		}
		for _, srv := range s.Servers {
			if !srv.Healthy || time.Since(srv.StableSince) < 200*time.Millisecond {
				return fmt.Errorf("server %s healthy %v since %s, want healthy and stable", srv.ID, srv.Healthy, srv.StableSince)
			}
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // several reconcile intervals for autopilot to try
	servers, _, err := n.Configuration()
	if err != nil {
		t.Fatalf("Configuration: %v", err)
	}
	for _, s := range servers {
		if s.ID == "node-2" && s.Voter {
			t.Errorf("autopilot promoted the non-voter node-2; it must not change the configuration")
		}
	}
}
