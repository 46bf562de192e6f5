package command

import (
	"cmp"
	"slices"
	"strings"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// SessionCommand is "conclave session", the parent of the session
// subcommands. It only shows help.
type SessionCommand struct{}

const sessionHelp = `
Usage: conclave session <subcommand> [options] [args]

  Lists, shows and destroys sessions, the leases that hold locks on keys
  (/v1/session, as Consul's). Sessions are created by the programs that
  use them, such as "conclave lock" or Consul's Go client. Run a
  subcommand with -h for its options.

      $ conclave session list
      $ conclave session info 4ca8e74b-6350-7587-addf-a18084928f3c
      $ conclave session destroy 4ca8e74b-6350-7587-addf-a18084928f3c
`

// Help returns the usage text of the session command.
func (c *SessionCommand) Help() string { return strings.TrimSpace(sessionHelp) }

// Synopsis returns a one-line description of the session command.
func (c *SessionCommand) Synopsis() string { return "Lists, shows and destroys sessions" }

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *SessionCommand) Run(args []string) int { return cli.RunResultHelp }

// sortSessions sorts list by node, name and ID.
func sortSessions(list []*api.SessionEntry) {
	slices.SortFunc(list, func(a, b *api.SessionEntry) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
}

// sessionsTable formats sessions, already sorted, as a table.
func sessionsTable(list []*api.SessionEntry) string {
	rows := [][]string{{"ID", "Name", "Node", "TTL", "Behavior", "LockDelay", "Checks"}}
	for _, s := range list {
		ttl := s.TTL
		if ttl == "" {
			ttl = "-"
		}
		checks := strings.Join(s.NodeChecks, ",")
		if checks == "" {
			checks = "-"
		}
		rows = append(rows, []string{s.ID, s.Name, s.Node, ttl, s.Behavior, s.LockDelay.String(), checks})
	}
	return formatTable(rows)
}
