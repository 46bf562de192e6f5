package command

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func TestOperatorRaftRemovePeerCommand(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantCode   int
		wantStdout string
		wantPrefix string // of the one stderr line, when wantCode is 1
		wantReqs   []string
	}{
		{
			name:       "removed",
			routes:     map[string]reply{"DELETE /v1/operator/raft/peer": ok("")},
			args:       []string{"-id=33333333-3333-3333-3333-333333333333"},
			wantStdout: "Removed peer with id \"33333333-3333-3333-3333-333333333333\"\n",
			wantReqs:   []string{"DELETE /v1/operator/raft/peer?id=33333333-3333-3333-3333-333333333333"},
		},
		{
			name:       "unknown id",
			routes:     map[string]reply{"DELETE /v1/operator/raft/peer": {400, "no server with id nope"}},
			args:       []string{"-id=nope"},
			wantCode:   1,
			wantPrefix: "Error removing peer: Unexpected response code: 400 (no server with id nope)",
			wantReqs:   []string{"DELETE /v1/operator/raft/peer?id=nope"},
		},
		{
			name:       "by address",
			routes:     map[string]reply{"DELETE /v1/operator/raft/peer": ok("")},
			args:       []string{"-address=10.0.0.4:8300"},
			wantStdout: "Removed peer with address \"10.0.0.4:8300\"\n",
			wantReqs:   []string{"DELETE /v1/operator/raft/peer?address=10.0.0.4%3A8300"},
		},
		{name: "missing id", wantCode: 1, wantPrefix: "Missing peer ID: -id or -address is required"},
		{name: "id and address", args: []string{"-id=a", "-address=10.0.0.4:8300"}, wantCode: 1, wantPrefix: "Give either -id or -address, not both"},
		{name: "positional id", args: []string{"abc"}, wantCode: 1, wantPrefix: "This command takes no arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, tc.routes)
			ui := cli.NewMockUi()
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, &OperatorRaftRemovePeerCommand{Meta: Meta{Ui: ui}}, args...)
			if code != tc.wantCode {
				t.Errorf("Run(%q) = %d, want %d; stderr:\n%s", args, code, tc.wantCode, stderr)
			}
			if stdout != tc.wantStdout {
				t.Errorf("Run(%q) stdout = %q, want %q", args, stdout, tc.wantStdout)
			}
			if tc.wantCode == 1 {
				checkOneLineError(t, stderr, tc.wantPrefix)
			}
			if diff := cmp.Diff(tc.wantReqs, agent.requests()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
