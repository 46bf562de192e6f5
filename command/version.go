package command

import (
	"strings"

	"github.com/hashicorp/cli"
)

// Version and GitCommit identify the build. Release builds set them with
// the linker, for example:
//
//	go build -ldflags "-X github.com/conclavehq/conclave/command.GitCommit=$(git rev-parse --short HEAD)"
var (
	// Version is the Conclave release, without the leading "v".
	Version = "0.1.0"

	// GitCommit is the commit the binary was built from; empty when the
	// linker did not set it.
	GitCommit string
)

// VersionCommand is "conclave version": it prints the version of the
// binary.
type VersionCommand struct {
	// Ui receives the version lines.
	Ui cli.Ui
}

const versionHelp = `
Usage: conclave version

  Prints the version of this Conclave binary and the commit it was built
  from.
`

// Help returns the usage text of the version command.
func (c *VersionCommand) Help() string {
	return strings.TrimSpace(versionHelp)
}

// Synopsis returns a one-line description of the version command.
func (c *VersionCommand) Synopsis() string {
	return "Prints the Conclave version"
}

// Run prints "Conclave v<Version>" and, when known, "Revision <GitCommit>".
// It ignores its arguments, so that "conclave version -v" still answers.
func (c *VersionCommand) Run(args []string) int {
	c.Ui.Output("Conclave v" + Version)
	if GitCommit != "" {
		c.Ui.Output("Revision " + GitCommit)
	}
	return 0
}
