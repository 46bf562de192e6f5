package command

import (
	"strings"
)

// OperatorRaftTransferLeaderCommand is "conclave operator raft
// transfer-leader": it asks the leader to hand leadership to another
// server.
type OperatorRaftTransferLeaderCommand struct {
	Meta
}

const operatorRaftTransferLeaderHelp = `
Usage: conclave operator raft transfer-leader [-id=ID] [options]

  Asks the leader to hand leadership to another voter, as "consul operator
  raft transfer-leader" does: to the server with the given Raft ID, or,
  without -id, to the voter Raft finds most up to date. It returns once the
  leader has stepped down. Writes fail with "No cluster leader" for the
  moment the hand-off takes, a few tens of milliseconds.

      $ conclave operator raft transfer-leader
      Success

Options:

  -id=<id>
     The Raft ID of the voter that should lead, as list-peers shows it.
     Default: the one Raft picks.
` + httpOptionsHelp

// Help returns the usage text of the transfer-leader command.
func (c *OperatorRaftTransferLeaderCommand) Help() string {
	return strings.TrimSpace(operatorRaftTransferLeaderHelp)
}

// Synopsis returns a one-line description of the transfer-leader command.
func (c *OperatorRaftTransferLeaderCommand) Synopsis() string {
	return "Hands Raft leadership to another server"
}

// Run asks for the transfer and returns the exit code.
func (c *OperatorRaftTransferLeaderCommand) Run(args []string) int {
	var id string
	fs := c.FlagSet("operator raft transfer-leader", c.Help())
	fs.StringVar(&id, "id", "", "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) })
	if !ok {
		return 1
	}
	res, err := client.RaftTransferLeader(id)
	if err != nil {
		c.Ui.Error("Error transferring leadership: " + err.Error())
		return 1
	}
	if !res.Success {
		c.Ui.Error("Error transferring leadership: the leader did not report success")
		return 1
	}
	c.Ui.Output("Success")
	return 0
}
