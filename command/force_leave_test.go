package command

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func TestForceLeaveCommand(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"PUT /v1/agent/force-leave/srv-b": ok("")})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &ForceLeaveCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "srv-b")
	if code != 0 || stdout != "" || stderr != "" {
		t.Errorf("Run() = %d, stdout %q, stderr %q; want 0 and no output", code, stdout, stderr)
	}
	if diff := cmp.Diff([]string{"PUT /v1/agent/force-leave/srv-b"}, agent.requests()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

func TestForceLeaveCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantPrefix string
		wantHelp   bool
	}{
		{
			name:       "unknown node",
			routes:     map[string]reply{"PUT /v1/agent/force-leave/srv-x": {404, "no member named srv-x"}},
			args:       []string{"srv-x"},
			wantPrefix: "Error force leaving: Unexpected response code: 404 (no member named srv-x)",
		},
		{name: "no node", wantPrefix: "A single node name must be specified", wantHelp: true},
		{name: "two nodes", args: []string{"a", "b"}, wantPrefix: "A single node name must be specified", wantHelp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, tc.routes)
			ui := cli.NewMockUi()
			c := &ForceLeaveCommand{Meta: Meta{Ui: ui}}
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", args, stdout)
			}
			if tc.wantHelp {
				if !strings.HasPrefix(stderr, tc.wantPrefix) || !strings.Contains(stderr, c.Help()) {
					t.Errorf("Run(%q) stderr = %q, want %q and the help", args, stderr, tc.wantPrefix)
				}
				if reqs := agent.requests(); len(reqs) != 0 {
					t.Errorf("Run(%q) sent %q, want no request", args, reqs)
				}
				return
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}
