package command

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// raftConfigurationJSON lists three servers out of name order; srv-b leads
// and srv-d is a non-voter; srv-a has no last index yet.
const raftConfigurationJSON = `{
  "Servers": [
    {"ID":"33333333-3333-3333-3333-333333333333","Node":"srv-d","Address":"10.0.0.4:8300","Leader":false,"Voter":false,"ProtocolVersion":"3","LastIndex":97},
    {"ID":"22222222-2222-2222-2222-222222222222","Node":"srv-b","Address":"10.0.0.2:8300","Leader":true,"Voter":true,"ProtocolVersion":"3","LastIndex":120},
    {"ID":"11111111-1111-1111-1111-111111111111","Node":"srv-a","Address":"10.0.0.1:8300","Leader":false,"Voter":true,"ProtocolVersion":"3"}
  ],
  "Index": 42
}`

func runListPeers(t *testing.T, routes map[string]reply, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	agent := newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	return run(t, ui, &OperatorRaftListPeersCommand{Meta: Meta{Ui: ui}}, append([]string{"-http-addr=" + agent.addr}, args...)...)
}

func TestOperatorRaftListPeersCommand_table(t *testing.T) {
	code, stdout, stderr := runListPeers(t, map[string]reply{"GET /v1/operator/raft/configuration": ok(raftConfigurationJSON)})
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	checkGolden(t, "operator_raft_list_peers", stdout)
}

func TestOperatorRaftListPeersCommand_json(t *testing.T) {
	code, stdout, stderr := runListPeers(t, map[string]reply{"GET /v1/operator/raft/configuration": ok(raftConfigurationJSON)}, "-format=json")
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	var got, want api.RaftConfiguration
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("decode output: %v\n%s", err, stdout)
	}
	if err := json.Unmarshal([]byte(raftConfigurationJSON), &want); err != nil {
		t.Fatalf("decode raftConfigurationJSON: %v", err)
	}
	want.Servers = []*api.RaftServer{want.Servers[2], want.Servers[1], want.Servers[0]} // by node name
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON output mismatch (-want +got):\n%s", diff)
	}
}

func TestOperatorRaftListPeersCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantPrefix string
	}{
		{
			name:       "no leader",
			routes:     map[string]reply{"GET /v1/operator/raft/configuration": {500, "No cluster leader"}},
			wantPrefix: "Error retrieving Raft configuration: Unexpected response code: 500 (No cluster leader)",
		},
		{name: "bad format", args: []string{"-format=xml"}, wantPrefix: `invalid -format "xml"`},
		{name: "extra argument", args: []string{"srv-a"}, wantPrefix: "This command takes no arguments"},
		{name: "dead agent", args: []string{"-http-addr=" + deadAddr(t)}, wantPrefix: "Error retrieving Raft configuration: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runListPeers(t, tc.routes, tc.args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", tc.args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", tc.args, stdout)
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}

func TestOperatorRaftListPeersCommand_stale(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/operator/raft/configuration": ok(raftConfigurationJSON)})
	ui := cli.NewMockUi()
	code, _, stderr := run(t, ui, &OperatorRaftListPeersCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-stale")
	if code != 0 {
		t.Fatalf("Run(-stale) = %d, want 0; stderr:\n%s", code, stderr)
	}
	if got, want := agent.requests(), []string{"GET /v1/operator/raft/configuration?stale="}; !cmp.Equal(got, want) {
		t.Errorf("requests = %q, want %q", got, want)
	}
}
