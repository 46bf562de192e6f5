package command

import (
	"strings"

	"github.com/hashicorp/cli"
)

// OperatorAutopilotCommand is "conclave operator autopilot", the parent of
// the autopilot subcommands. It only shows help.
type OperatorAutopilotCommand struct{}

const operatorAutopilotHelp = `
Usage: conclave operator autopilot <subcommand> [options]

  Shows the leader's autopilot view of the servers. Autopilot only
  observes here: it never changes the Raft configuration. Run a subcommand
  with -h for its options.
`

// Help returns the usage text of the operator autopilot command.
func (c *OperatorAutopilotCommand) Help() string {
	return strings.TrimSpace(operatorAutopilotHelp)
}

// Synopsis returns a one-line description of the operator autopilot command.
func (c *OperatorAutopilotCommand) Synopsis() string {
	return "Shows the leader's autopilot view"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *OperatorAutopilotCommand) Run(args []string) int {
	return cli.RunResultHelp
}
