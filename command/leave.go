package command

import (
	"strings"
)

// LeaveCommand is "conclave leave": it asks the agent to leave the cluster
// gracefully and shut down.
type LeaveCommand struct {
	Meta
}

const leaveHelp = `
Usage: conclave leave [options]

  Causes the agent to leave the cluster gracefully and shut down. Other
  members see it as "left" rather than "failed", and a server is removed
  from the Raft configuration.
` + httpOptionsHelp

// Help returns the usage text of the leave command.
func (c *LeaveCommand) Help() string {
	return strings.TrimSpace(leaveHelp)
}

// Synopsis returns a one-line description of the leave command.
func (c *LeaveCommand) Synopsis() string {
	return "Gracefully leaves the cluster and shuts down"
}

// Run asks the agent to leave and returns the exit code.
func (c *LeaveCommand) Run(args []string) int {
	fs := c.FlagSet("leave", c.Help())
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) })
	if !ok {
		return 1
	}
	if err := client.Leave(); err != nil {
		c.Ui.Error("Error leaving: " + err.Error())
		return 1
	}
	c.Ui.Output("Graceful leave complete")
	return 0
}
