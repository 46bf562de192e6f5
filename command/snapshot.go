package command

import (
	"strings"

	"github.com/hashicorp/cli"
)

// SnapshotCommand is "conclave snapshot", the parent of the snapshot
// subcommands. It only shows help.
type SnapshotCommand struct{}

const snapshotHelp = `
Usage: conclave snapshot <subcommand> [options] FILE

  Saves the state of the servers to a file, or restores it from one,
  through the agent's HTTP API (/v1/snapshot), as "consul snapshot" does.
  Run a subcommand with -h for its options.

  Save a snapshot, then restore it:

      $ conclave snapshot save backup.snap
      $ conclave snapshot restore backup.snap
`

// Help returns the usage text of the snapshot command.
func (c *SnapshotCommand) Help() string {
	return strings.TrimSpace(snapshotHelp)
}

// Synopsis returns a one-line description of the snapshot command.
func (c *SnapshotCommand) Synopsis() string {
	return "Saves and restores snapshots of the servers"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *SnapshotCommand) Run(args []string) int {
	return cli.RunResultHelp
}
