package command

import (
	"testing"

	"github.com/hashicorp/cli"
)

func TestSnapshotCommand_showsHelp(t *testing.T) {
	c := &SnapshotCommand{}
	for _, args := range [][]string{nil, {"-x"}, {"bogus"}} {
		if got := c.Run(args); got != cli.RunResultHelp {
			t.Errorf("Run(%q) = %d, want cli.RunResultHelp", args, got)
		}
	}
}
