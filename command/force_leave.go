package command

import (
	"strings"
)

// ForceLeaveCommand is "conclave force-leave": it moves a failed member to
// the left state.
type ForceLeaveCommand struct {
	Meta
}

const forceLeaveHelp = `
Usage: conclave force-leave [options] NODE

  Forces the member NODE to the "left" state. Use it for a node that failed
  and will not come back, so that the cluster stops trying to reconnect to
  it. A node that is still alive rejoins on its own.

Options:

  -prune
     Consul's immediate removal from the member list. Refused: Conclave
     reaps left members after the reap interval instead.
` + httpOptionsHelp

// Help returns the usage text of the force-leave command.
func (c *ForceLeaveCommand) Help() string {
	return strings.TrimSpace(forceLeaveHelp)
}

// Synopsis returns a one-line description of the force-leave command.
func (c *ForceLeaveCommand) Synopsis() string {
	return "Forces a failed member to the left state"
}

// Run asks the agent to force the node out and returns the exit code. Like
// consul force-leave, it prints nothing on success.
func (c *ForceLeaveCommand) Run(args []string) int {
	var prune bool
	fs := c.FlagSet("force-leave", c.Help())
	fs.BoolVar(&prune, "prune", false, "")
	client, ok := c.Setup(fs, args, func() bool {
		if !c.unsupportedFlag(prune, "prune", "pruning a member at once") {
			return false
		}
		if fs.NArg() != 1 {
			c.Ui.Error("A single node name must be specified to force leave.")
			c.Ui.Error("")
			c.Ui.Error(c.Help())
			return false
		}
		return true
	})
	if !ok {
		return 1
	}
	if err := client.ForceLeave(fs.Arg(0)); err != nil {
		c.Ui.Error("Error force leaving: " + err.Error())
		return 1
	}
	return 0
}
