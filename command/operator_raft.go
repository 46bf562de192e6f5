package command

import (
	"strings"

	"github.com/hashicorp/cli"
)

// OperatorRaftCommand is "conclave operator raft", the parent of the Raft
// subcommands. It only shows help.
type OperatorRaftCommand struct{}

const operatorRaftHelp = `
Usage: conclave operator raft <subcommand> [options]

  Inspects and repairs the Raft configuration of the servers. Run a
  subcommand with -h for its options.
`

// Help returns the usage text of the operator raft command.
func (c *OperatorRaftCommand) Help() string {
	return strings.TrimSpace(operatorRaftHelp)
}

// Synopsis returns a one-line description of the operator raft command.
func (c *OperatorRaftCommand) Synopsis() string {
	return "Inspects and repairs the Raft configuration"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *OperatorRaftCommand) Run(args []string) int {
	return cli.RunResultHelp
}
