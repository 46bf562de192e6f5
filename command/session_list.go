package command

import (
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// SessionListCommand is "conclave session list": it shows every session,
// or those of one node.
type SessionListCommand struct {
	Meta
}

const sessionListHelp = `
Usage: conclave session list [options]

  Displays the sessions of the cluster, sorted by node and name: ID, name,
  node, TTL, behavior on invalidation (release or delete), lock delay and
  node checks.

Options:

  -node=<name>
     Only the sessions of this node (/v1/session/node/<name>).
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the session list command.
func (c *SessionListCommand) Help() string { return strings.TrimSpace(sessionListHelp) }

// Synopsis returns a one-line description of the session list command.
func (c *SessionListCommand) Synopsis() string { return "Lists sessions" }

// Run prints the sessions and returns the exit code.
func (c *SessionListCommand) Run(args []string) int {
	var format, node string
	fs := c.FlagSet("session list", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	fs.StringVar(&node, "node", "", "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) && c.validFormat(format) })
	if !ok {
		return 1
	}
	var list []*api.SessionEntry
	var err error
	if node != "" {
		list, err = client.SessionNode(node)
	} else {
		list, err = client.SessionList()
	}
	if err != nil {
		c.Ui.Error("Error retrieving sessions: " + err.Error())
		return 1
	}
	sortSessions(list)
	if format == formatJSON {
		if list == nil {
			list = []*api.SessionEntry{}
		}
		if err := outputJSON(c.Ui, list); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	if len(list) == 0 {
		c.Ui.Error("No sessions")
		return 0
	}
	c.Ui.Output(sessionsTable(list))
	return 0
}
