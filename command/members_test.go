package command

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// membersJSON is an unsorted pool: a failed server, an IPv6 client, a member
// without tags and a name with a "|" in it.
const membersJSON = `[
  {"Name":"srv-b","Addr":"10.0.0.2","Port":8301,"Status":4,
   "Tags":{"role":"consul","id":"22222222-2222-2222-2222-222222222222","dc":"dc1","build":"0.1.0","port":"8300"}},
  {"Name":"srv-a","Addr":"10.0.0.1","Port":8301,"Status":1,
   "Tags":{"role":"consul","id":"11111111-1111-1111-1111-111111111111","dc":"dc1","build":"0.1.0","port":"8300","expect":"3"}},
  {"Name":"web|1","Addr":"fd00::7","Port":8301,"Status":1,
   "Tags":{"role":"node","dc":"dc2","build":"0.1.1"}},
  {"Name":"legacy","Addr":"10.0.0.9","Port":7946,"Status":3}
]`

func newMembersCommand(t *testing.T, routes map[string]reply) (*cli.MockUi, *MembersCommand, *fakeAgent) {
	t.Helper()
	if routes == nil {
		routes = map[string]reply{"GET /v1/agent/members": ok(membersJSON)}
	}
	agent := newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	return ui, &MembersCommand{Meta: Meta{Ui: ui}}, agent
}

func TestMembersCommand_table(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		golden string
	}{
		{name: "default", golden: "members"},
		{name: "detailed", args: []string{"-detailed"}, golden: "members_detailed"},
		{name: "status filter", args: []string{"-status=^(failed|left)$"}, golden: "members_failed_left"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newMembersCommand(t, nil)
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 0 {
				t.Fatalf("Run(%q) = %d, want 0; stderr:\n%s", args, code, stderr)
			}
			checkGolden(t, tc.golden, stdout)
			if diff := cmp.Diff([]string{"GET /v1/agent/members"}, agent.requests()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMembersCommand_json(t *testing.T) {
	ui, c, agent := newMembersCommand(t, nil)
	code, stdout, stderr := run(t, ui, c, "-http-addr="+agent.addr, "-format=json", "-status=alive")
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	var got []*api.Member
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("decode output: %v\n%s", err, stdout)
	}
	var all []*api.Member
	if err := json.Unmarshal([]byte(membersJSON), &all); err != nil {
		t.Fatalf("decode membersJSON: %v", err)
	}
	want := []*api.Member{all[1], all[2]} // alive only, sorted: srv-a, web|1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON output mismatch (-want +got):\n%s", diff)
	}
}

func TestMembersCommand_noMatch(t *testing.T) {
	ui, c, agent := newMembersCommand(t, nil)
	code, stdout, stderr := run(t, ui, c, "-http-addr="+agent.addr, "-status=leaving")
	if code != 2 {
		t.Errorf("Run() = %d, want 2", code)
	}
	if stdout != "" || stderr != "" {
		t.Errorf("Run() stdout = %q, stderr = %q; want both empty", stdout, stderr)
	}
}

func TestMembersCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		dead       bool
		wantPrefix string
		wantHelp   bool
	}{
		{
			name:       "server error",
			routes:     map[string]reply{"GET /v1/agent/members": {500, "gossip not started\n"}},
			wantPrefix: "Error retrieving members: Unexpected response code: 500 (gossip not started)",
		},
		{name: "dead agent", dead: true, wantPrefix: "Error retrieving members: "},
		{name: "bad regexp", args: []string{"-status=("}, wantPrefix: "Invalid -status regexp: "},
		{name: "bad format", args: []string{"-format=yaml"}, wantPrefix: `invalid -format "yaml"`},
		{name: "extra argument", args: []string{"srv-a"}, wantPrefix: "This command takes no arguments"},
		{name: "bad http addr", args: []string{"-http-addr=unix:///x"}, wantPrefix: "Error creating client: "},
		{name: "unknown flag", args: []string{"-bogus"}, wantPrefix: "flag provided but not defined: -bogus", wantHelp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newMembersCommand(t, tc.routes)
			addr := agent.addr
			if tc.dead {
				addr = deadAddr(t)
			}
			args := append([]string{"-http-addr=" + addr}, tc.args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", args, stdout)
			}
			if tc.wantHelp {
				if !strings.HasPrefix(stderr, tc.wantPrefix+"\n") || !strings.Contains(stderr, c.Help()) {
					t.Errorf("Run(%q) stderr = %q, want %q then the help", args, stderr, tc.wantPrefix)
				}
				return
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}
