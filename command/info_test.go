package command

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

// selfJSON has an agent stat that shadows a config key (version) and a
// section with no entries.
const selfJSON = `{
  "Config": {"Datacenter":"dc1","NodeName":"srv-a","NodeID":"11111111-1111-1111-1111-111111111111",
             "Server":true,"Version":"0.1.0","BootstrapExpect":3,"DataDir":"/var/lib/conclave"},
  "Member": {"Name":"srv-a","Addr":"10.0.0.1","Port":8301,"Status":1},
  "Stats": {
    "serf_lan": {"members":"3","failed":"0","left":"0","health_score":"0"},
    "raft": {"state":"Leader","term":"2","last_log_index":"17","num_peers":"2"},
    "agent": {"version":"0.1.0-dev"},
    "runtime": {}
  }
}`

func TestInfoCommand(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/agent/self": ok(selfJSON)})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &InfoCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr)
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	checkGolden(t, "info", stdout)
	if diff := cmp.Diff([]string{"GET /v1/agent/self"}, agent.requests()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

func TestInfoCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantPrefix string
	}{
		{
			name:       "server error",
			routes:     map[string]reply{"GET /v1/agent/self": {500, "stats unavailable"}},
			wantPrefix: "Error querying agent: Unexpected response code: 500 (stats unavailable)",
		},
		{name: "bad json", routes: map[string]reply{"GET /v1/agent/self": ok("{")}, wantPrefix: "Error querying agent: decode "},
		{name: "extra argument", args: []string{"raft"}, wantPrefix: "This command takes no arguments"},
		{name: "dead agent", args: []string{"-http-addr=" + deadAddr(t)}, wantPrefix: "Error querying agent: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, tc.routes)
			ui := cli.NewMockUi()
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, &InfoCommand{Meta: Meta{Ui: ui}}, args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", args, stdout)
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}
