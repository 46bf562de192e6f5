package command

import (
	"flag"
	"fmt"
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

// fileArg returns the one FILE argument of a snapshot command, or reports
// a missing or extra argument to ui.
func fileArg(ui cli.Ui, fs *flag.FlagSet) (string, bool) {
	switch fs.NArg() {
	case 0:
		ui.Error("Missing FILE argument")
		return "", false
	case 1:
		return fs.Arg(0), true
	default:
		ui.Error(fmt.Sprintf("Too many arguments (expected 1, got %d)", fs.NArg()))
		return "", false
	}
}
