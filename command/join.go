package command

import (
	"fmt"
	"strings"
)

// JoinCommand is "conclave join": it asks the agent to join a gossip pool
// through one or more known addresses.
type JoinCommand struct {
	Meta
}

const joinHelp = `
Usage: conclave join [options] ADDRESS...

  Tells a running Conclave agent to join the cluster by contacting the
  agents at the given gossip addresses (host or host:port). Each address is
  tried; the command succeeds when at least one of them could be joined and
  prints an error line for each one that could not.

Options:

  -wan
     Consul's WAN join. Refused: Conclave has no WAN gossip pool.
` + httpOptionsHelp

// Help returns the usage text of the join command.
func (c *JoinCommand) Help() string {
	return strings.TrimSpace(joinHelp)
}

// Synopsis returns a one-line description of the join command.
func (c *JoinCommand) Synopsis() string {
	return "Tells an agent to join the cluster"
}

// Run asks the agent to join each address and returns the exit code: 0 when
// at least one join succeeded, 1 otherwise.
func (c *JoinCommand) Run(args []string) int {
	var wan bool
	fs := c.FlagSet("join", c.Help())
	fs.BoolVar(&wan, "wan", false, "")
	client, ok := c.Setup(fs, args, func() bool {
		if !c.unsupportedFlag(wan, "wan", "joining the WAN gossip pool") {
			return false
		}
		if fs.NArg() == 0 {
			c.Ui.Error("At least one address to join must be specified.")
			c.Ui.Error("")
			c.Ui.Error(c.Help())
			return false
		}
		return true
	})
	if !ok {
		return 1
	}
	addrs := fs.Args()
	joined := 0
	for _, addr := range addrs {
		if err := client.Join(addr); err != nil {
			c.Ui.Error(fmt.Sprintf("Error joining address %q: %v", addr, err))
			continue
		}
		joined++
	}
	if joined == 0 {
		c.Ui.Error("Failed to join any nodes.")
		return 1
	}
	c.Ui.Output(fmt.Sprintf("Successfully joined cluster by contacting %d nodes.", joined))
	return 0
}
