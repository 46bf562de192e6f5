package command

import (
	"strings"

	"github.com/hashicorp/cli"
)

// OperatorCommand is "conclave operator", the parent of the operator
// subcommands. It only shows help.
type OperatorCommand struct{}

const operatorHelp = `
Usage: conclave operator <subcommand> [options]

  Provides cluster-level tools for operators, such as inspecting the Raft
  configuration or the bootstrap state. Run a subcommand with -h for its
  options.
`

// Help returns the usage text of the operator command.
func (c *OperatorCommand) Help() string {
	return strings.TrimSpace(operatorHelp)
}

// Synopsis returns a one-line description of the operator command.
func (c *OperatorCommand) Synopsis() string {
	return "Provides cluster-level tools for operators"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *OperatorCommand) Run(args []string) int {
	return cli.RunResultHelp
}
