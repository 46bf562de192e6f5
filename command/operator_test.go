package command

import (
	"testing"

	"github.com/hashicorp/cli"
)

func TestOperatorParents_showHelp(t *testing.T) {
	for name, c := range map[string]cli.Command{
		"operator":      &OperatorCommand{},
		"operator raft": &OperatorRaftCommand{},
	} {
		if got := c.Run(nil); got != cli.RunResultHelp {
			t.Errorf("%s: Run(nil) = %d, want cli.RunResultHelp", name, got)
		}
		if got := c.Run([]string{"-x"}); got != cli.RunResultHelp {
			t.Errorf("%s: Run(-x) = %d, want cli.RunResultHelp", name, got)
		}
	}
}
