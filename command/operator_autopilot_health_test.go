package command

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// autopilotHealthJSON is a leader's answer out of name order: c3 is down,
// so the cluster tolerates no failure.
const autopilotHealthJSON = `{
  "Healthy": false,
  "FailureTolerance": 0,
  "Servers": [
    {"ID":"33333333-3333-3333-3333-333333333333","Name":"c3","Address":"10.0.0.3:8300","SerfStatus":"failed","Version":"0.1.0","Leader":false,"LastContact":"4.2s","LastTerm":2,"LastIndex":310,"Healthy":false,"Voter":true,"StableSince":"2026-11-26T17:40:12Z"},
    {"ID":"11111111-1111-1111-1111-111111111111","Name":"c1","Address":"10.0.0.1:8300","SerfStatus":"alive","Version":"0.1.0","Leader":true,"LastContact":"0s","LastTerm":3,"LastIndex":420,"Healthy":true,"Voter":true,"StableSince":"2026-11-26T17:39:58Z"},
    {"ID":"22222222-2222-2222-2222-222222222222","Name":"c2","Address":"10.0.0.2:8300","SerfStatus":"alive","Version":"0.1.0","Leader":false,"LastContact":"31.5ms","LastTerm":3,"LastIndex":420,"Healthy":true,"Voter":true,"StableSince":"2026-11-26T17:39:58Z"}
  ]
}`

func runAutopilotHealth(t *testing.T, routes map[string]reply, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	agent := newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	return run(t, ui, &OperatorAutopilotHealthCommand{Meta: Meta{Ui: ui}}, append([]string{"-http-addr=" + agent.addr}, args...)...)
}

// TestOperatorAutopilotHealthCommand_table: the agent answers 429 when a
// server is unhealthy, as Consul does; that is still an answer to show.
func TestOperatorAutopilotHealthCommand_table(t *testing.T) {
	code, stdout, stderr := runAutopilotHealth(t, map[string]reply{"GET /v1/operator/autopilot/health": {429, autopilotHealthJSON}})
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	checkGolden(t, "operator_autopilot_health", stdout)
}

func TestOperatorAutopilotHealthCommand_json(t *testing.T) {
	code, stdout, stderr := runAutopilotHealth(t, map[string]reply{"GET /v1/operator/autopilot/health": {429, autopilotHealthJSON}}, "-format=json")
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	var got, want api.OperatorHealthReply
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("decode output: %v\n%s", err, stdout)
	}
	if err := json.Unmarshal([]byte(autopilotHealthJSON), &want); err != nil {
		t.Fatalf("decode autopilotHealthJSON: %v", err)
	}
	want.Servers = []api.ServerHealth{want.Servers[1], want.Servers[2], want.Servers[0]} // by name
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON output mismatch (-want +got):\n%s", diff)
	}
}

func TestOperatorAutopilotHealthCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantPrefix string
	}{
		{
			name:       "no leader",
			routes:     map[string]reply{"GET /v1/operator/autopilot/health": {503, "No cluster leader"}},
			wantPrefix: "Error retrieving autopilot health: Unexpected response code: 503 (No cluster leader)",
		},
		{name: "bad format", args: []string{"-format=xml"}, wantPrefix: `invalid -format "xml"`},
		{name: "extra argument", args: []string{"c1"}, wantPrefix: "This command takes no arguments"},
		{name: "dead agent", args: []string{"-http-addr=" + deadAddr(t)}, wantPrefix: "Error retrieving autopilot health: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runAutopilotHealth(t, tc.routes, tc.args...)
			if code != 1 || stdout != "" {
				t.Errorf("Run(%q) = %d, stdout %q; want 1 and no output", tc.args, code, stdout)
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}
