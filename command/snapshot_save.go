package command

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/consensus"
)

// SnapshotSaveCommand is "conclave snapshot save": it saves a snapshot of
// the servers' state to a file.
type SnapshotSaveCommand struct {
	Meta
}

const snapshotSaveHelp = `
Usage: conclave snapshot save [options] FILE

  Saves a point-in-time snapshot of the servers' state (every table of the
  state store) to FILE, for "conclave snapshot restore" or "consul snapshot
  restore". The file is an archive in Consul's format: a gzip'd tar of
  meta.json, state.bin and SHA256SUMS. The snapshot is written to FILE.tmp
  as it arrives, checked, then renamed to FILE, so FILE is never left
  half-written. It is created readable by its owner only.

      $ conclave snapshot save backup.snap
      Saved and verified snapshot to index 8419

  The saved file is read back and verified: the archive's checksums and
  sizes, then the state stream inside it, so a snapshot cut short or
  damaged on the way is an error. A snapshot in a format version this
  conclave does not know, written by a newer agent, is saved unchecked with
  a warning, and the message says "Saved snapshot" instead. (An agent of an
  earlier release sends its plain snapshot stream; it is saved and checked
  as such.)

  Exit codes: 0 when the snapshot was saved, 1 on error.

Options:

  -stale
     Let any server answer from its own state, without a leader. The
     snapshot may lag the leader's. Default: the leader answers.
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
	var stale bool
	fs.BoolVar(&stale, "stale", false, "")
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

	save := client.SnapshotSave
	if stale {
		save = client.SnapshotSaveStale
	}
	index, err := save(f)
	if err != nil {
		c.Ui.Error("Error saving snapshot: " + err.Error())
		return 1
	}
	// Sync before the rename so that a crash cannot leave FILE in place but
	// empty.
	if err := syncClose(f); err != nil {
		c.Ui.Error("Error writing snapshot file: " + err.Error())
		return 1
	}
	// Read back what is on disk, not what went by: that is what a restore
	// will read. An agent that fails halfway through a snapshot cannot
	// change the 200 it has sent, so this is also how such a failure shows.
	verified, ok := c.verify(tmp)
	if !ok {
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

// verifySnapshotFile checks the snapshot file at path: an archive with
// inspectSnapshotFile, a plain stream (from an agent of an earlier
// release) with api.VerifySnapshot. It reports whether the file was
// verified: not when its format version is unknown, which the error then
// says.
func verifySnapshotFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	prefix := make([]byte, 2)
	if n, _ := io.ReadFull(f, prefix); consensus.IsArchive(prefix[:n]) {
		if _, err := inspectSnapshotFile(path); err != nil {
			return false, err
		}
		return true, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	if err := api.VerifySnapshot(f); err != nil {
		return false, err
	}
	return true, nil
}

// syncClose syncs f and closes it. When the sync fails, f stays open.
func syncClose(f *os.File) error {
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// verify reads the snapshot file at path back. A snapshot of a format this
// command cannot read is only a warning (verified false, ok true); a
// damaged one is an error (ok false), printed.
func (c *SnapshotSaveCommand) verify(path string) (verified, ok bool) {
	verified, err := verifySnapshotFile(path)
	switch {
	case errors.Is(err, api.ErrSnapshotVersion), errors.Is(err, consensus.ErrSnapshotTooNew):
		c.Ui.Warn(fmt.Sprintf("Warning: cannot verify the snapshot: %v", err))
	case err != nil:
		c.Ui.Error("Error verifying snapshot file: " + err.Error())
		return false, false
	}
	return verified, true
}
