package command

import (
	"fmt"
	"strings"
)

// OperatorRaftRemovePeerCommand is "conclave operator raft remove-peer": it
// removes a server from the Raft configuration by its ID or its address.
type OperatorRaftRemovePeerCommand struct {
	Meta
}

const operatorRaftRemovePeerHelp = `
Usage: conclave operator raft remove-peer (-id=ID | -address=IP:PORT) [options]

  Removes the server with the given Raft ID, or Raft address, from the Raft
  configuration.
  Use it to clean up after a server that failed and will not come back,
  when the leader has not removed it already. The IDs are shown by
  "conclave operator raft list-peers".

Options:

  -address=<ip:port>
     The Raft address of the server to remove, as list-peers shows it.

  -id=<id>
     The Raft ID of the server to remove. Exactly one of -id and -address
     is required.
` + httpOptionsHelp

// Help returns the usage text of the remove-peer command.
func (c *OperatorRaftRemovePeerCommand) Help() string {
	return strings.TrimSpace(operatorRaftRemovePeerHelp)
}

// Synopsis returns a one-line description of the remove-peer command.
func (c *OperatorRaftRemovePeerCommand) Synopsis() string {
	return "Removes a server from the Raft configuration"
}

// Run removes the peer and returns the exit code.
func (c *OperatorRaftRemovePeerCommand) Run(args []string) int {
	var id, address string
	fs := c.FlagSet("operator raft remove-peer", c.Help())
	fs.StringVar(&id, "id", "", "")
	fs.StringVar(&address, "address", "", "")
	client, ok := c.Setup(fs, args, func() bool {
		switch {
		case fs.NArg() > 0:
			c.Ui.Error("This command takes no arguments; give the ID with -id")
			return false
		case id == "" && address == "":
			c.Ui.Error("Missing peer ID: -id or -address is required")
			return false
		case id != "" && address != "":
			c.Ui.Error("Give either -id or -address, not both")
			return false
		}
		return true
	})
	if !ok {
		return 1
	}
	if address != "" {
		if err := client.RaftRemovePeerByAddress(address); err != nil {
			c.Ui.Error("Error removing peer: " + err.Error())
			return 1
		}
		c.Ui.Output(fmt.Sprintf("Removed peer with address %q", address))
		return 0
	}
	if err := client.RaftRemovePeerByID(id); err != nil {
		c.Ui.Error("Error removing peer: " + err.Error())
		return 1
	}
	c.Ui.Output(fmt.Sprintf("Removed peer with id %q", id))
	return 0
}
