package command

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// SnapshotSaveCommand is "conclave snapshot save": it saves a snapshot of
// the servers' state to a file.
type SnapshotSaveCommand struct {
	Meta
}

const snapshotSaveHelp = `
Usage: conclave snapshot save [options] FILE

  Saves a point-in-time snapshot of the servers' state (the key/value
  store) to FILE, for "conclave snapshot restore". The snapshot is written
  to FILE.tmp as it arrives, checked, then renamed to FILE, so FILE is
  never left half-written. It is created readable by its owner only.

      $ conclave snapshot save backup.snap
      Saved and verified snapshot to index 8419

  The saved file is read back and verified: its header and the checksum
  that ends it must be intact, so a snapshot cut short or damaged on the
  way is an error. A snapshot in a format version this conclave does not
  know, written by a newer agent, is saved unchecked with a warning, and
  the message says "Saved snapshot" instead.

  Exit codes: 0 when the snapshot was saved, 1 on error.
` + httpOptionsHelp

// Help returns the usage text of the snapshot save command.
func (c *SnapshotSaveCommand) Help() string {
	return strings.TrimSpace(snapshotSaveHelp)
}

// Synopsis returns a one-line description of the snapshot save command.
func (c *SnapshotSaveCommand) Synopsis() string {
	return "Saves a snapshot of the servers' state"
}

// Run saves the snapshot and returns the exit code.
func (c *SnapshotSaveCommand) Run(args []string) int {
	fs := c.FlagSet("snapshot save", c.Help())
	var file string
	client, ok := c.Setup(fs, args, func() bool {
		var ok bool
		file, ok = fileArg(c.Ui, fs)
		return ok
	})
	if !ok {
		return 1
	}

	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		c.Ui.Error("Error creating snapshot file: " + err.Error())
		return 1
	}
	// Until the rename, FILE.tmp is only debris; remove it on any failure.
	saved := false
	defer func() {
		if !saved {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	index, err := client.SnapshotSave(f)
	if err != nil {
		c.Ui.Error("Error saving snapshot: " + err.Error())
		return 1
	}
	// Sync before the rename so that a crash cannot leave FILE in place but
	// empty.
	if err := f.Sync(); err != nil {
		c.Ui.Error("Error writing snapshot file: " + err.Error())
		return 1
	}
	if err := f.Close(); err != nil {
		c.Ui.Error("Error writing snapshot file: " + err.Error())
		return 1
	}
	// Read back what is on disk, not what went by: that is what a restore
	// will read. An agent that fails halfway through a snapshot cannot
	// change the 200 it has sent, so this is also how such a failure shows.
	verified, err := verifySnapshotFile(tmp)
	switch {
	case errors.Is(err, api.ErrSnapshotVersion):
		c.Ui.Warn(fmt.Sprintf("Warning: cannot verify the snapshot: %v", err))
	case err != nil:
		c.Ui.Error("Error verifying snapshot file: " + err.Error())
		return 1
	}
	if err := os.Rename(tmp, file); err != nil {
		c.Ui.Error(fmt.Sprintf("Error renaming %q to %q: %v", tmp, file, err))
		return 1
	}
	saved = true

	if verified {
		c.Ui.Output(fmt.Sprintf("Saved and verified snapshot to index %d", index))
	} else {
		c.Ui.Output(fmt.Sprintf("Saved snapshot to index %d", index))
	}
	return 0
}

// verifySnapshotFile checks the snapshot file at path with
// api.VerifySnapshot. It reports whether the file was verified: not when
// its format version is unknown, which the error then says.
func verifySnapshotFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := api.VerifySnapshot(f); err != nil {
		return false, err
	}
	return true, nil
}
