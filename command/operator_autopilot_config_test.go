package command

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

const autopilotConfigJSON = `{"CleanupDeadServers":false,"LastContactThreshold":"1s","MaxTrailingLogs":250,"MinQuorum":0,"ServerStabilizationTime":"10s","RedundancyZoneTag":"","DisableUpgradeMigration":false,"UpgradeVersionTag":"","CreateIndex":4,"ModifyIndex":9}`

func TestOperatorAutopilotGetConfigCommand(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/operator/autopilot/configuration": ok(autopilotConfigJSON)})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &OperatorAutopilotGetConfigCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr)
	want := "CleanupDeadServers = false\nLastContactThreshold = 1s\nMaxTrailingLogs = 250\nMinQuorum = 0\nServerStabilizationTime = 10s\n"
	if code != 0 || stdout != want {
		t.Errorf("Run() = %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, want)
	}
}

// TestOperatorAutopilotSetConfigCommand: only the flags given change, and
// the write is a CAS on the ModifyIndex read.
func TestOperatorAutopilotSetConfigCommand(t *testing.T) {
	for _, tc := range []struct {
		name       string
		answer     string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"updated", "true", 0, "Configuration updated!\n", ""},
		{"raced", "false", 1, "", "Configuration could not be atomically updated, please try again\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, map[string]reply{
				"GET /v1/operator/autopilot/configuration": ok(autopilotConfigJSON),
				"PUT /v1/operator/autopilot/configuration": ok(tc.answer),
			})
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &OperatorAutopilotSetConfigCommand{Meta: Meta{Ui: ui}},
				"-http-addr="+agent.addr, "-max-trailing-logs=500", "-last-contact-threshold=2s")
			if code != tc.wantCode || stdout != tc.wantStdout || stderr != tc.wantStderr {
				t.Errorf("Run() = %d, %q, %q; want %d, %q, %q", code, stdout, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if diff := cmp.Diff(agent.requests(), []string{"GET /v1/operator/autopilot/configuration", "PUT /v1/operator/autopilot/configuration?cas=9"}); diff != "" {
				t.Errorf("requests mismatch (-got +want):\n%s", diff)
			}
			var sent api.AutopilotConfiguration
			if err := json.Unmarshal([]byte(agent.requestBodies()[1]), &sent); err != nil {
				t.Fatal(err)
			}
			if sent.MaxTrailingLogs != 500 || sent.LastContactThreshold.String() != "2s" || sent.ServerStabilizationTime.String() != "10s" || sent.CleanupDeadServers {
				t.Errorf("PUT body = %+v, want the two flags changed and the rest as read", sent)
			}
		})
	}
}

func TestOperatorAutopilotSetConfigCommand_invalid(t *testing.T) {
	for _, args := range [][]string{{"-last-contact-threshold=0s"}, {"-max-trailing-logs=0"}, {"-server-stabilization-time=-1s"}} {
		agent := newFakeAgent(t, nil)
		ui := cli.NewMockUi()
		code, _, stderr := run(t, ui, &OperatorAutopilotSetConfigCommand{Meta: Meta{Ui: ui}}, append([]string{"-http-addr=" + agent.addr}, args...)...)
		if code != 1 || stderr == "" || len(agent.requests()) != 0 {
			t.Errorf("Run(%q) = %d, stderr %q, %d requests; want 1, an error, none", args, code, stderr, len(agent.requests()))
		}
	}
}

func TestOperatorAutopilotStateCommand(t *testing.T) {
	state := `{"Healthy":true,"FailureTolerance":1,"OptimisticFailureTolerance":1,"Leader":"id-b","Voters":["id-a","id-b","id-c"],
	"Servers":{
	 "id-a":{"ID":"id-a","Name":"srv-a","Address":"10.0.0.1:8300","NodeStatus":"alive","LastContact":"3ms","LastTerm":2,"LastIndex":40,"Healthy":true,"StableSince":"2026-12-01T21:00:00Z","Status":"voter"},
	 "id-b":{"ID":"id-b","Name":"srv-b","Address":"10.0.0.2:8300","NodeStatus":"alive","LastContact":"0s","LastTerm":2,"LastIndex":41,"Healthy":true,"StableSince":"2026-12-01T21:00:00Z","Status":"leader"},
	 "id-c":{"ID":"id-c","Name":"srv-c","Address":"10.0.0.3:8300","NodeStatus":"failed","LastContact":"9s","LastTerm":2,"LastIndex":12,"Healthy":false,"StableSince":"2026-12-01T21:05:00Z","Status":"voter"}}}`
	agent := newFakeAgent(t, map[string]reply{"GET /v1/operator/autopilot/state": ok(state)})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &OperatorAutopilotStateCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr)
	if code != 0 {
		t.Fatalf("Run() = %d, stderr %q", code, stderr)
	}
	checkGolden(t, "operator_autopilot_state", stdout)
}

func TestOperatorRaftTransferLeaderCommand(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"PUT /v1/operator/raft/transfer-leader": ok(`{"Success":true}`)})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &OperatorRaftTransferLeaderCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-id=id-c")
	if code != 0 || stdout != "Success\n" {
		t.Errorf("Run() = %d, %q, %q; want 0 and Success", code, stdout, stderr)
	}
	if diff := cmp.Diff(agent.requests(), []string{"PUT /v1/operator/raft/transfer-leader?id=id-c"}); diff != "" {
		t.Errorf("requests mismatch (-got +want):\n%s", diff)
	}
}
