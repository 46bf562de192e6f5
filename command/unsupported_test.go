package command

import (
	"testing"

	"github.com/hashicorp/cli"
)

// TestConsulFlagsConclaveCannotHonour: -wan and -prune are refused before
// any request, with one line naming what is not supported.
func TestConsulFlagsConclaveCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command func(ui cli.Ui) cli.Command
		args    []string
		want    string
	}{
		{"join -wan", func(ui cli.Ui) cli.Command { return &JoinCommand{Meta: Meta{Ui: ui}} }, []string{"-wan", "10.0.0.2"},
			"-wan: joining the WAN gossip pool is not supported by Conclave\n"},
		{"members -wan", func(ui cli.Ui) cli.Command { return &MembersCommand{Meta: Meta{Ui: ui}} }, []string{"-wan"},
			"-wan: the WAN gossip pool is not supported by Conclave\n"},
		{"force-leave -prune", func(ui cli.Ui) cli.Command { return &ForceLeaveCommand{Meta: Meta{Ui: ui}} }, []string{"-prune", "n1"},
			"-prune: pruning a member at once is not supported by Conclave\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, nil)
			ui := cli.NewMockUi()
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, tc.command(ui), args...)
			if code != 1 || stdout != "" || stderr != tc.want {
				t.Errorf("Run(%q) = %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, stdout, stderr, tc.want)
			}
			if reqs := agent.requests(); len(reqs) != 0 {
				t.Errorf("Run(%q) sent %v, want no request", args, reqs)
			}
		})
	}
}
