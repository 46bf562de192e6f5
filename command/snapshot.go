package command

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/consensus"
)

// SnapshotCommand is "conclave snapshot", the parent of the snapshot
// subcommands. It only shows help.
type SnapshotCommand struct{}

const snapshotHelp = `
Usage: conclave snapshot <subcommand> [options] FILE

  Saves the state of the servers to a file, or restores it from one,
  through the agent's HTTP API (/v1/snapshot), as "consul snapshot" does,
  in Consul's archive format; or describes a saved file. Run a subcommand
  with -h for its options.

  Save a snapshot, look inside it, then restore it:

      $ conclave snapshot save backup.snap
      $ conclave snapshot inspect backup.snap
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

// snapshotFile is what a saved snapshot file holds: an archive in Consul's
// format, with its metadata, or the plain stream of earlier releases.
type snapshotFile struct {
	archive bool
	meta    consensus.SnapshotArchiveMeta
	info    consensus.SnapshotInfo
}

// inspectSnapshotFile reads the snapshot file at path to its end and
// checks it: an archive's checksums and sizes, then, for either format,
// the state stream as the agent would restore it (format, order, counts,
// checksum). The checks are consensus's own, run on the file alone.
func inspectSnapshotFile(path string) (snapshotFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return snapshotFile{}, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	prefix, _ := br.Peek(2)
	if !consensus.IsArchive(prefix) {
		info, err := consensus.InspectSnapshot(br)
		return snapshotFile{info: info}, err
	}
	// The archive's state streams through a pipe into the stream's own
	// check; the archive's checksums come last, so both must pass.
	pr, pw := io.Pipe()
	type result struct {
		info consensus.SnapshotInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := consensus.InspectSnapshot(pr)
		// Stop the writer if the stream's check stopped early.
		pr.CloseWithError(errStateChecked)
		done <- result{info, err}
	}()
	meta, err := consensus.ReadArchive(br, pw)
	pw.CloseWithError(err)
	res := <-done
	switch {
	case err != nil && !errors.Is(err, errStateChecked):
		// A defect of the archive; the stream's check saw it end early.
		return snapshotFile{archive: true}, err
	case res.err != nil:
		return snapshotFile{archive: true}, fmt.Errorf("state.bin: %w", res.err)
	}
	return snapshotFile{archive: true, meta: meta, info: res.info}, nil
}

// errStateChecked ends the copy of an archive's state once its check
// returned; the check's own result is the one reported.
var errStateChecked = errors.New("state stream check returned")
