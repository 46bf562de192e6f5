package command

import (
	"strings"
	"testing"

	"github.com/hashicorp/cli"
)

func runRecoverPlan(t *testing.T, routes map[string]reply, args ...string) (code int, stdout, stderr string, agent *fakeAgent) {
	t.Helper()
	agent = newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	code, stdout, stderr = run(t, ui, &OperatorRaftRecoverPlanCommand{Meta: Meta{Ui: ui}}, append([]string{"-http-addr=" + agent.addr}, args...)...)
	return code, stdout, stderr, agent
}

func TestOperatorRaftRecoverPlanCommand(t *testing.T) {
	routes := map[string]reply{"GET /v1/operator/raft/configuration": ok(raftConfigurationJSON)}
	code, stdout, stderr, agent := runRecoverPlan(t, routes, "-exclude=22222222-2222-2222-2222-222222222222")
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	checkGolden(t, "operator_raft_recover_plan", stdout)
	// Asked of this server's own state: the cluster has no leader.
	if got := agent.requests(); len(got) != 1 || got[0] != "GET /v1/operator/raft/configuration?stale=" {
		t.Errorf("requests = %q, want one GET /v1/operator/raft/configuration?stale=", got)
	}
}

func TestOperatorRaftRecoverPlanCommand_errors(t *testing.T) {
	routes := map[string]reply{"GET /v1/operator/raft/configuration": ok(raftConfigurationJSON)}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown id", []string{"-exclude=nope"}, `Error building the recovery plan: -exclude "nope": no server with that ID in the Raft configuration`},
		{"no voter left", []string{"-exclude=11111111-1111-1111-1111-111111111111", "-exclude=22222222-2222-2222-2222-222222222222"}, "Error building the recovery plan: no voter left after the exclusions"},
		{"extra argument", []string{"srv-a"}, "This command takes no arguments"},
		{"dead agent", []string{"-http-addr=" + deadAddr(t)}, "Error retrieving Raft configuration: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr, _ := runRecoverPlan(t, routes, tc.args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", tc.args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", tc.args, stdout)
			}
			if !strings.HasPrefix(stderr, tc.want) {
				t.Errorf("Run(%q) stderr = %q, want prefix %q", tc.args, stderr, tc.want)
			}
		})
	}
}
