package command

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

func runBootstrap(t *testing.T, routes map[string]reply, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	agent := newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	return run(t, ui, &OperatorBootstrapCommand{Meta: Meta{Ui: ui}}, append([]string{"-http-addr=" + agent.addr}, args...)...)
}

const bootstrappedJSON = `{"State":"bootstrapped","Expect":3,"Seen":["srv-a","srv-b","srv-c"],
  "By":"srv-a","At":"2025-01-02T03:04:05Z","Reason":"3 of 3 expected servers seen; srv-a has the lowest name",
  "ClusterID":"9a1e5c2d-0b7f-4e36-a1c8-5f0d2b9e7c41"}`

func TestOperatorBootstrapCommand_text(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		golden string
	}{
		{name: "bootstrapped", body: bootstrappedJSON, golden: "operator_bootstrap_bootstrapped"},
		{
			name:   "waiting",
			body:   `{"State":"waiting","Expect":3,"Seen":["srv-a"],"Reason":"waiting for 2 more servers"}`,
			golden: "operator_bootstrap_waiting",
		},
		{
			name:   "disabled",
			body:   `{"State":"disabled","Expect":0,"Seen":[],"Reason":"client agents do not bootstrap"}`,
			golden: "operator_bootstrap_disabled",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBootstrap(t, map[string]reply{"GET /v1/operator/bootstrap": ok(tc.body)})
			if code != 0 {
				t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
			}
			checkGolden(t, tc.golden, stdout)
		})
	}
}

func TestOperatorBootstrapCommand_json(t *testing.T) {
	code, stdout, stderr := runBootstrap(t, map[string]reply{"GET /v1/operator/bootstrap": ok(bootstrappedJSON)}, "-format=json")
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	var got, want api.BootstrapStatus
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("decode output: %v\n%s", err, stdout)
	}
	if err := json.Unmarshal([]byte(bootstrappedJSON), &want); err != nil {
		t.Fatalf("decode bootstrappedJSON: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON output mismatch (-want +got):\n%s", diff)
	}
}

func TestOperatorBootstrapCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantPrefix string
	}{
		{
			name:       "old agent",
			wantPrefix: "Error retrieving bootstrap status: Unexpected response code: 404 (no route for GET /v1/operator/bootstrap)",
		},
		{name: "bad format", args: []string{"-format=yaml"}, wantPrefix: `invalid -format "yaml"`},
		{name: "extra argument", args: []string{"now"}, wantPrefix: "This command takes no arguments"},
		{name: "dead agent", args: []string{"-http-addr=" + deadAddr(t)}, wantPrefix: "Error retrieving bootstrap status: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBootstrap(t, tc.routes, tc.args...)
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
