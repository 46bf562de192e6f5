package cluster

import (
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
)

// healthOf builds a leader's autopilot view for the gate table: s1 leads
// at last index 1000, every server is a healthy, caught-up voter unless a
// change says otherwise.
func healthOf(tolerance int, servers ...api.ServerHealth) *api.OperatorHealthReply {
	h := &api.OperatorHealthReply{Healthy: true, FailureTolerance: tolerance}
	for _, s := range servers {
		h.Healthy = h.Healthy && s.Healthy
		h.Servers = append(h.Servers, s)
	}
	return h
}

func server(name string, change func(*api.ServerHealth)) api.ServerHealth {
	s := api.ServerHealth{
		ID: "id-" + name, Name: name, Address: name + ":8300", SerfStatus: "alive",
		LastContact: api.NewReadableDuration(10 * time.Millisecond), LastTerm: 7, LastIndex: 1000,
		Healthy: true, Voter: true, Leader: name == "s1",
	}
	if s.Leader {
		s.LastContact = api.NewReadableDuration(0)
	}
	if change != nil {
		change(&s)
	}
	return s
}

func unhealthy(s *api.ServerHealth) { s.Healthy = false }

func TestVoterCheckDecide(t *testing.T) {
	cases := []struct {
		name    string
		self    string
		health  *api.OperatorHealthReply
		applied uint64
		contact time.Duration // this server's own last contact; 0 means 20ms
		wantOK  bool
		want    string
	}{
		{
			name: "healthy voter, three voters", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 1 of 3 voters",
		},
		{
			name: "the leader itself", self: "id-s1", applied: 998, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "voter, applied index 998 of the leader's 1000; failure tolerance 1 of 3 voters",
		},
		{
			name: "no leader", self: "id-s2", applied: 1000,
			health: nil,
			want:   "no leader",
		},
		{
			name: "a view without a leader", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s2", nil), server("s3", nil)),
			want:   "no leader",
		},
		{
			name: "not in the configuration", self: "id-s4", applied: 1000,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "not in the Raft configuration",
		},
		{
			name: "not a voter", self: "id-s4", applied: 1000,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil),
				server("s4", func(s *api.ServerHealth) { s.Voter = false })),
			want: "not a voter",
		},
		{
			name: "applied index lagging", self: "id-s2", applied: 600,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "lagging 400 entries behind the leader",
		},
		{
			name: "log lagging in the leader's view", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) { s.LastIndex = 10; s.Healthy = false }), server("s3", nil)),
			want:   "lagging 990 entries behind the leader",
		},
		{
			name: "lag within the margin but unhealthy: old contact", self: "id-s2", applied: 900,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) {
				s.LastContact = api.NewReadableDuration(3 * time.Second)
				s.Healthy = false
			}), server("s3", nil)),
			want: "unhealthy in the leader's view: last contact 3s ago, last index 1000 of the leader's 1000",
		},
		{
			name: "the leader's view is stale: this server has not heard from the leader", self: "id-s2", applied: 1000, contact: -1,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "unhealthy: has not heard from the leader",
		},
		{
			name: "the leader's view is stale: this server's last contact is old", self: "id-s2", applied: 1000, contact: 1500 * time.Millisecond,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil)),
			want:   "unhealthy: last contact with the leader 1.5s ago",
		},
		{
			name: "unhealthy: older term", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) { s.LastTerm = 6; s.Healthy = false }), server("s3", nil)),
			want:   "unhealthy: last log term 6, the leader's 7",
		},
		{
			name: "unhealthy: the leader has no stats from it", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) {
				s.LastContact = api.NewReadableDuration(-1)
				s.LastTerm, s.LastIndex = 0, 0
				s.Healthy = false
			}), server("s3", nil)),
			want: "unhealthy in the leader's view: no contact reported yet",
		},
		{
			name: "unhealthy: gossip failed", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", func(s *api.ServerHealth) { s.SerfStatus = "failed"; s.Healthy = false }), server("s3", nil)),
			want:   "unhealthy: gossip status failed",
		},
		{
			name: "tolerance 0: another server is down", self: "id-s2", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", nil), server("s3", unhealthy)),
			want:   "failure tolerance 0: server s3 is unhealthy",
		},
		{
			name: "tolerance 0 with five voters", self: "id-s1", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", nil), server("s5", unhealthy), server("s3", nil), server("s4", unhealthy)),
			want:   "failure tolerance 0: servers s4, s5 are unhealthy",
		},
		{
			name: "five voters, one down, tolerance 1", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil), server("s4", nil), server("s5", unhealthy)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 1 of 5 voters",
		},
		{
			name: "an unhealthy non-voter does not count", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(1, server("s1", nil), server("s2", nil), server("s3", nil),
				server("s4", func(s *api.ServerHealth) { s.Voter = false; s.Healthy = false })),
			want: "voter, applied index 1000 of the leader's 1000; failure tolerance 1 of 3 voters",
		},
		{
			name: "single voter, healthy", self: "id-s1", applied: 1000, wantOK: true,
			health: healthOf(0, server("s1", nil)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 0 of 1 voters",
		},
		{
			name: "two voters, both healthy", self: "id-s2", applied: 1000, wantOK: true,
			health: healthOf(0, server("s1", nil), server("s2", nil)),
			want:   "voter, applied index 1000 of the leader's 1000; failure tolerance 0 of 2 voters",
		},
		{
			name: "two voters, the other unhealthy", self: "id-s1", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", unhealthy)),
			want:   "failure tolerance 0: server s2 is unhealthy",
		},
		{
			name: "an unnamed server is named by its ID", self: "id-s1", applied: 1000,
			health: healthOf(0, server("s1", nil), server("s2", nil), server("s3", func(s *api.ServerHealth) { s.Name = ""; s.Healthy = false })),
			want:   "failure tolerance 0: server id-s3 is unhealthy",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			contact := tc.contact
			if contact == 0 {
				contact = 20 * time.Millisecond
			}
			got := VoterCheck{SelfID: tc.self, Health: tc.health, Applied: tc.applied, LastContact: contact,
				MaxLag: 250, ContactLimit: time.Second}.Decide()
			if got.OK != tc.wantOK || got.Reason != tc.want {
				t.Errorf("Decide() = %v %q, want %v %q", got.OK, got.Reason, tc.wantOK, tc.want)
			}
		})
	}
}
