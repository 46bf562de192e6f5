package command

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func TestReloadCommand(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"PUT /v1/agent/reload": ok("")})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &ReloadCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr)
	if code != 0 {
		t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	if want := "Configuration reload triggered\n"; stdout != want {
		t.Errorf("Run() stdout = %q, want %q", stdout, want)
	}
	if diff := cmp.Diff([]string{"PUT /v1/agent/reload"}, agent.requests()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

func TestReloadCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		addr       func(t *testing.T) string
		args       []string
		wantPrefix string
	}{
		{
			name: "server error",
			addr: func(t *testing.T) string {
				return newFakeAgent(t, map[string]reply{"PUT /v1/agent/reload": {500, "tls.https: reload TLS files, keeping the previous ones: read key: open k.pem: no such file or directory"}}).addr
			},
			wantPrefix: "Error reloading: Unexpected response code: 500 (tls.https: reload TLS files, keeping the previous ones: read key: open k.pem: no such file or directory)",
		},
		{name: "dead agent", addr: deadAddr, wantPrefix: "Error reloading: "},
		{
			name:       "extra argument",
			addr:       func(t *testing.T) string { return newFakeAgent(t, nil).addr },
			args:       []string{"now"},
			wantPrefix: "This command takes no arguments",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui := cli.NewMockUi()
			args := append([]string{"-http-addr=" + tc.addr(t)}, tc.args...)
			code, stdout, stderr := run(t, ui, &ReloadCommand{Meta: Meta{Ui: ui}}, args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", args, stdout)
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}
