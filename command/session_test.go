package command

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// sessionsJSON lists two sessions out of node order.
const sessionsJSON = `[
  {"ID":"bbbbbbbb-0000-0000-0000-000000000002","Name":"web lock","Node":"node-b","LockDelay":15000000000,"Behavior":"release","TTL":"15s","NodeChecks":["serfHealth"],"CreateIndex":7,"ModifyIndex":7},
  {"ID":"aaaaaaaa-0000-0000-0000-000000000001","Name":"","Node":"node-a","LockDelay":1000000000,"Behavior":"delete","TTL":"","NodeChecks":[],"CreateIndex":5,"ModifyIndex":5}
]`

func TestSessionListCommand(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{
		"GET /v1/session/list":        ok(sessionsJSON),
		"GET /v1/session/node/node-a": ok("[]"),
	})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &SessionListCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr)
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	checkGolden(t, "session_list", stdout)

	ui = cli.NewMockUi()
	code, stdout, _ = run(t, ui, &SessionListCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-format=json")
	var got []api.SessionEntry
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || len(got) != 2 || got[0].Node != "node-a" {
		t.Fatalf("-format=json = %d %v %+v, want both sessions, node-a first", code, err, got)
	}

	ui = cli.NewMockUi()
	code, stdout, stderr = run(t, ui, &SessionListCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-node=node-a")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "No sessions") {
		t.Fatalf("-node=node-a = %d %q %q, want 0 and No sessions", code, stdout, stderr)
	}
}

func TestSessionInfoAndDestroyCommands(t *testing.T) {
	var list []json.RawMessage
	json.Unmarshal([]byte(sessionsJSON), &list)
	agent := newFakeAgent(t, map[string]reply{
		"GET /v1/session/info/bbbbbbbb-0000-0000-0000-000000000002":    ok("[" + string(list[0]) + "]"),
		"GET /v1/session/info/nope":                                    ok("[]"),
		"PUT /v1/session/destroy/bbbbbbbb-0000-0000-0000-000000000002": ok("true"),
	})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &SessionInfoCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "bbbbbbbb-0000-0000-0000-000000000002")
	if code != 0 {
		t.Fatalf("info: Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	checkGolden(t, "session_info", stdout)

	ui = cli.NewMockUi()
	if code, _, stderr := run(t, ui, &SessionInfoCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "nope"); code != 1 || !strings.Contains(stderr, `No session "nope"`) {
		t.Fatalf("info of a missing session = %d %q, want 1 and an error", code, stderr)
	}
	ui = cli.NewMockUi()
	if code, _, stderr := run(t, ui, &SessionInfoCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr); code != 1 || !strings.Contains(stderr, "Expected one session ID") {
		t.Fatalf("info without an ID = %d %q, want 1 and an error", code, stderr)
	}
	ui = cli.NewMockUi()
	code, stdout, stderr = run(t, ui, &SessionDestroyCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "bbbbbbbb-0000-0000-0000-000000000002")
	if code != 0 || !strings.Contains(stdout, "Destroyed session bbbbbbbb") {
		t.Fatalf("destroy = %d %q %q, want 0", code, stdout, stderr)
	}
	if reqs := agent.requests(); !slices.Contains(reqs, "PUT /v1/session/destroy/bbbbbbbb-0000-0000-0000-000000000002") {
		t.Errorf("requests = %v, want the destroy", reqs)
	}
}

func TestLockCommandArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"prefix"}, "Key prefix and child command must be specified"},
		{[]string{"-n=0", "prefix", "true"}, "Lock holder limit must be positive"},
		{[]string{"-timeout=-1s", "prefix", "true"}, "Timeout must be positive"},
	} {
		ui := cli.NewMockUi()
		code, _, stderr := run(t, ui, &LockCommand{Meta: Meta{Ui: ui}}, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("lock %v = %d %q, want 1 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
