package command

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func TestJoinCommand(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		addrs      []string
		wantCode   int
		wantStdout string
		wantStderr string
		wantReqs   []string
	}{
		{
			name:       "two addresses",
			routes:     map[string]reply{"PUT /v1/agent/join/10.0.0.2:8301": ok(""), "PUT /v1/agent/join/srv-c": ok("")},
			addrs:      []string{"10.0.0.2:8301", "srv-c"},
			wantStdout: "Successfully joined cluster by contacting 2 nodes.\n",
			wantReqs:   []string{"PUT /v1/agent/join/10.0.0.2:8301", "PUT /v1/agent/join/srv-c"},
		},
		{
			name:       "partial failure",
			routes:     map[string]reply{"PUT /v1/agent/join/10.0.0.2:8301": ok("")},
			addrs:      []string{"10.0.0.9:8301", "10.0.0.2:8301"},
			wantStdout: "Successfully joined cluster by contacting 1 nodes.\n",
			wantStderr: `Error joining address "10.0.0.9:8301": Unexpected response code: 404 (no route for PUT /v1/agent/join/10.0.0.9:8301)` + "\n",
			wantReqs:   []string{"PUT /v1/agent/join/10.0.0.9:8301", "PUT /v1/agent/join/10.0.0.2:8301"},
		},
		{
			name:     "all fail",
			routes:   map[string]reply{"PUT /v1/agent/join/10.0.0.9:8301": {500, "dial tcp 10.0.0.9:8301: i/o timeout"}},
			addrs:    []string{"10.0.0.9:8301"},
			wantCode: 1,
			wantStderr: `Error joining address "10.0.0.9:8301": Unexpected response code: 500 (dial tcp 10.0.0.9:8301: i/o timeout)` + "\n" +
				"Failed to join any nodes.\n",
			wantReqs: []string{"PUT /v1/agent/join/10.0.0.9:8301"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, tc.routes)
			ui := cli.NewMockUi()
			args := append([]string{"-http-addr=" + agent.addr}, tc.addrs...)
			code, stdout, stderr := run(t, ui, &JoinCommand{Meta: Meta{Ui: ui}}, args...)
			if code != tc.wantCode {
				t.Errorf("Run(%q) = %d, want %d", args, code, tc.wantCode)
			}
			if stdout != tc.wantStdout {
				t.Errorf("Run(%q) stdout = %q, want %q", args, stdout, tc.wantStdout)
			}
			if stderr != tc.wantStderr {
				t.Errorf("Run(%q) stderr = %q, want %q", args, stderr, tc.wantStderr)
			}
			if diff := cmp.Diff(tc.wantReqs, agent.requests()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJoinCommand_noAddress(t *testing.T) {
	ui := cli.NewMockUi()
	c := &JoinCommand{Meta: Meta{Ui: ui}}
	code, stdout, stderr := run(t, ui, c)
	if code != 1 {
		t.Errorf("Run() = %d, want 1", code)
	}
	if stdout != "" || !strings.HasPrefix(stderr, "At least one address") || !strings.Contains(stderr, c.Help()) {
		t.Errorf("Run() stdout = %q, stderr = %q; want an error and the help on stderr only", stdout, stderr)
	}
}

func TestJoinCommand_deadAgent(t *testing.T) {
	ui := cli.NewMockUi()
	code, _, stderr := run(t, ui, &JoinCommand{Meta: Meta{Ui: ui}}, "-http-addr="+deadAddr(t), "10.0.0.2")
	if code != 1 {
		t.Errorf("Run() = %d, want 1", code)
	}
	if !strings.HasPrefix(stderr, `Error joining address "10.0.0.2": `) || !strings.HasSuffix(stderr, "Failed to join any nodes.\n") ||
		strings.Count(stderr, "\n") != 2 {
		t.Errorf("Run() stderr = %q, want one join error line and the summary", stderr)
	}
}
