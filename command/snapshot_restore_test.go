package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func newSnapshotRestoreCommand(t *testing.T, routes map[string]reply) (*cli.MockUi, *SnapshotRestoreCommand, *fakeAgent) {
	t.Helper()
	agent := newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	return ui, &SnapshotRestoreCommand{Meta: Meta{Ui: ui}}, agent
}

func TestSnapshotRestoreCommand(t *testing.T) {
	snap := testSnapshot(1, snapshotBody)
	file := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(file, snap, 0o600); err != nil {
		t.Fatalf("write snapshot: %v", err)
	}
	ui, c, agent := newSnapshotRestoreCommand(t, map[string]reply{"PUT /v1/snapshot": ok("")})
	code, stdout, stderr := run(t, ui, c, "-http-addr="+agent.addr, file)
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	if stdout != "Restored snapshot\n" || stderr != "" {
		t.Errorf("Run() stdout = %q, stderr = %q; want %q and nothing", stdout, stderr, "Restored snapshot\n")
	}
	if diff := cmp.Diff([]string{"PUT /v1/snapshot"}, agent.requests()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
	if bodies := agent.requestBodies(); len(bodies) != 1 || bodies[0] != string(snap) {
		t.Errorf("the agent received %d bodies, want one: the %d bytes of the file", len(bodies), len(snap))
	}
}

func TestSnapshotRestoreCommand_errors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "backup.snap")
	if err := os.WriteFile(file, []byte("garbage"), 0o600); err != nil {
		t.Fatalf("write snapshot: %v", err)
	}
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		dead       bool
		wantPrefix string
		wantHelp   bool
	}{
		{
			name:       "refused",
			routes:     map[string]reply{"PUT /v1/snapshot": {400, "Invalid snapshot: unexpected EOF"}},
			args:       []string{file},
			wantPrefix: "Error restoring snapshot: Unexpected response code: 400 (Invalid snapshot: unexpected EOF)",
		},
		{name: "dead agent", dead: true, args: []string{file}, wantPrefix: "Error restoring snapshot: "},
		{name: "missing file", args: []string{"/nonexistent/backup.snap"}, wantPrefix: "Error opening snapshot file: open /nonexistent/backup.snap: "},
		{name: "missing file argument", wantPrefix: "Missing FILE argument"},
		{name: "too many arguments", args: []string{"a", "b"}, wantPrefix: "Too many arguments (expected 1, got 2)"},
		{name: "bad http addr", args: []string{"-http-addr=unix:///x", file}, wantPrefix: "Error creating client: "},
		{name: "unknown flag", args: []string{"-bogus"}, wantPrefix: "flag provided but not defined: -bogus", wantHelp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newSnapshotRestoreCommand(t, tc.routes)
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
