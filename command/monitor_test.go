package command

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func TestMonitorCommand(t *testing.T) {
	lines := "2026-12-01T21:00:00.000Z [DEBUG] conclave.raft: heartbeat sent: peer=s2\n2026-12-01T21:00:00.100Z [INFO]  conclave: ready\n"
	agent := newFakeAgent(t, map[string]reply{"GET /v1/agent/monitor": ok(lines)})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &MonitorCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-log-level=debug")
	if code != 0 || stdout != lines+"Remote side ended the monitor! This usually means that the remote side has exited or crashed.\n" {
		t.Errorf("Run() = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if diff := cmp.Diff(agent.requests(), []string{"GET /v1/agent/monitor?loglevel=debug"}); diff != "" {
		t.Errorf("requests mismatch (-got +want):\n%s", diff)
	}
}

func TestMonitorCommand_badLevel(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/agent/monitor": {400, "Unknown log level: loud"}})
	ui := cli.NewMockUi()
	code, _, stderr := run(t, ui, &MonitorCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-log-level=loud")
	if code != 1 || !strings.HasPrefix(stderr, "Error starting monitor: ") || !strings.Contains(stderr, "Unknown log level: loud") {
		t.Errorf("Run() = %d, stderr %q; want 1 and the agent's refusal", code, stderr)
	}
}
