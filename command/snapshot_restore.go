package command

import (
	"os"
	"strings"
)

// SnapshotRestoreCommand is "conclave snapshot restore": it replaces the
// servers' state with a snapshot saved by "conclave snapshot save".
type SnapshotRestoreCommand struct {
	Meta
}

const snapshotRestoreHelp = `
Usage: conclave snapshot restore [options] FILE

  Restores the snapshot in FILE, written by "conclave snapshot save" or
  "consul snapshot save" against Conclave, replacing the whole state of the
  servers. Keys written since the snapshot was taken are lost. The file is
  streamed to the agent, which checks it in full (an archive's checksums
  and sizes, then the state stream) and answers once the servers have
  restored it. The plain snapshot files of earlier Conclave releases
  restore too.

      $ conclave snapshot restore backup.snap
      Restored snapshot

  Exit codes: 0 when the snapshot was restored, 1 on error.
` + httpOptionsHelp

// Help returns the usage text of the snapshot restore command.
func (c *SnapshotRestoreCommand) Help() string {
	return strings.TrimSpace(snapshotRestoreHelp)
}

// Synopsis returns a one-line description of the snapshot restore command.
func (c *SnapshotRestoreCommand) Synopsis() string {
	return "Restores a snapshot of the servers' state"
}

// Run restores the snapshot and returns the exit code.
func (c *SnapshotRestoreCommand) Run(args []string) int {
	fs := c.FlagSet("snapshot restore", c.Help())
	var file string
	client, ok := c.Setup(fs, args, func() bool {
		var ok bool
		file, ok = fileArg(c.Ui, fs)
		return ok
	})
	if !ok {
		return 1
	}
	f, err := os.Open(file)
	if err != nil {
		c.Ui.Error("Error opening snapshot file: " + err.Error())
		return 1
	}
	defer f.Close()
	if err := client.SnapshotRestore(f); err != nil {
		c.Ui.Error("Error restoring snapshot: " + err.Error())
		return 1
	}
	c.Ui.Output("Restored snapshot")
	return 0
}
