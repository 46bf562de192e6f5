package command

import (
	"strings"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/config"
)

// ValidateCommand is "conclave validate": it checks configuration files
// without starting an agent.
type ValidateCommand struct {
	// Ui receives the verdict, warnings and errors.
	Ui cli.Ui
}

const validateHelp = `
Usage: conclave validate FILE_OR_DIR...

  Loads the configuration files and directories as "conclave agent" would,
  in the order given, and reports every problem found. A directory
  contributes its .hcl and .json files in lexical order.

  Warnings are printed but do not fail the check. The exit code is 0 when
  the configuration is valid and 1 otherwise.
`

// Help returns the usage text of the validate command.
func (c *ValidateCommand) Help() string {
	return strings.TrimSpace(validateHelp)
}

// Synopsis returns a one-line description of the validate command.
func (c *ValidateCommand) Synopsis() string {
	return "Validates configuration files"
}

// Run loads the configuration named by args and returns the exit code.
func (c *ValidateCommand) Run(args []string) int {
	fs := newFlagSet(c.Ui, "validate", c.Help())
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() == 0 {
		c.Ui.Error("Must specify at least one config file or directory")
		c.Ui.Error("")
		c.Ui.Error(c.Help())
		return 1
	}

	res, err := config.Load(config.LoadOptions{Paths: fs.Args()})
	if err != nil {
		c.reportError(err)
		return 1
	}
	for _, w := range res.Warnings {
		c.Ui.Warn(w)
	}
	c.Ui.Output("Configuration is valid!")
	return 0
}

// reportError prints err, one line per problem when config.Load joined
// several.
func (c *ValidateCommand) reportError(err error) {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) < 2 {
		c.Ui.Error("Config validation failed: " + err.Error())
		return
	}
	c.Ui.Error("Config validation failed:")
	for _, e := range joined.Unwrap() {
		c.Ui.Error("  " + e.Error())
	}
}
