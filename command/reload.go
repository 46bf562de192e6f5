package command

import (
	"strings"
)

// ReloadCommand is "conclave reload": it asks the agent to reload what can
// change without a restart, as SIGHUP does.
type ReloadCommand struct {
	Meta
}

const reloadHelp = `
Usage: conclave reload [options]

  Causes the agent to reload, as SIGHUP does: it reads its configuration
  files again and applies the log level, and reads its TLS certificates,
  keys and CA files again, so that the next connection is served the new
  ones. A part that fails to reload keeps what it had, and the command
  exits 1 with the reason.
` + httpOptionsHelp

// Help returns the usage text of the reload command.
func (c *ReloadCommand) Help() string {
	return strings.TrimSpace(reloadHelp)
}

// Synopsis returns a one-line description of the reload command.
func (c *ReloadCommand) Synopsis() string {
	return "Triggers the agent to reload its configuration"
}

// Run asks the agent to reload and returns the exit code.
func (c *ReloadCommand) Run(args []string) int {
	fs := c.FlagSet("reload", c.Help())
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) })
	if !ok {
		return 1
	}
	if err := client.Reload(); err != nil {
		c.Ui.Error("Error reloading: " + err.Error())
		return 1
	}
	c.Ui.Output("Configuration reload triggered")
	return 0
}
