package command

import (
	"strings"
)

// SessionDestroyCommand is "conclave session destroy": it invalidates a
// session.
type SessionDestroyCommand struct {
	Meta
}

const sessionDestroyHelp = `
Usage: conclave session destroy [options] ID

  Destroys the session ID: every key it holds is released (or deleted,
  if its behavior is "delete"), and the session's lock delay starts for
  each. Destroying a session that does not exist succeeds.

Options:
` + httpOptionsHelp

// Help returns the usage text of the session destroy command.
func (c *SessionDestroyCommand) Help() string { return strings.TrimSpace(sessionDestroyHelp) }

// Synopsis returns a one-line description of the session destroy command.
func (c *SessionDestroyCommand) Synopsis() string { return "Destroys a session" }

// Run destroys the session and returns the exit code.
func (c *SessionDestroyCommand) Run(args []string) int {
	fs := c.FlagSet("session destroy", c.Help())
	client, ok := c.Setup(fs, args, func() bool { return c.oneSessionArg(fs.NArg()) })
	if !ok {
		return 1
	}
	id := fs.Arg(0)
	if err := client.SessionDestroy(id); err != nil {
		c.Ui.Error("Error destroying session: " + err.Error())
		return 1
	}
	c.Ui.Output("Destroyed session " + id)
	return 0
}
