package command

import (
	"testing"

	"github.com/hashicorp/cli"
)

func TestVersionCommand(t *testing.T) {
	cases := []struct {
		name      string
		gitCommit string
		want      string
	}{
		{name: "release build", gitCommit: "abc1234", want: "Conclave v0.1.0\nRevision abc1234\n"},
		{name: "no commit", want: "Conclave v0.1.0\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func(v, c string) { Version, GitCommit = v, c }(Version, GitCommit)
			Version, GitCommit = "0.1.0", tc.gitCommit

			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &VersionCommand{Ui: ui})
			if code != 0 || stdout != tc.want || stderr != "" {
				t.Errorf("Run() = %d, stdout %q, stderr %q; want 0, %q, no stderr", code, stdout, stderr, tc.want)
			}
		})
	}
}
