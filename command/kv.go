package command

import (
	"flag"
	"fmt"
	"strings"

	"github.com/hashicorp/cli"
)

// KVCommand is "conclave kv", the parent of the key/value subcommands. It
// only shows help.
type KVCommand struct{}

const kvHelp = `
Usage: conclave kv <subcommand> [options] [args]

  Reads and writes the replicated key/value store, through the agent's
  HTTP API (/v1/kv), as "consul kv" does. Run a subcommand with -h for its
  options.

  Write a value, read it, list the keys under a prefix, delete it:

      $ conclave kv put redis/config/connections 5
      $ conclave kv get redis/config/connections
      $ conclave kv get -recurse redis/
      $ conclave kv delete redis/config/connections
`

// Help returns the usage text of the kv command.
func (c *KVCommand) Help() string {
	return strings.TrimSpace(kvHelp)
}

// Synopsis returns a one-line description of the kv command.
func (c *KVCommand) Synopsis() string {
	return "Reads and writes the key/value store"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *KVCommand) Run(args []string) int {
	return cli.RunResultHelp
}

// keyArg returns the optional KEY_OR_PREFIX argument of kv get and kv
// delete, without a leading "/", or reports more than one argument.
func (m *Meta) keyArg(fs *flag.FlagSet) (string, bool) {
	switch fs.NArg() {
	case 0:
		return "", true
	case 1:
		return strings.TrimPrefix(fs.Arg(0), "/"), true
	default:
		m.Ui.Error(fmt.Sprintf("Error! Too many arguments (expected 1, got %d)", fs.NArg()))
		return "", false
	}
}
