package command

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// OperatorRaftListPeersCommand is "conclave operator raft list-peers": it
// shows the servers in the Raft configuration.
type OperatorRaftListPeersCommand struct {
	Meta
}

const operatorRaftListPeersHelp = `
Usage: conclave operator raft list-peers [options]

  Displays the servers in the Raft configuration, sorted by node name, with
  the state (leader or follower) and voting status of each.

Options:

  -stale
     Answer from the agent's own Raft state instead of asking the leader.
     Works while the cluster has no leader, which is when it is needed
     most; the Leader column then shows whom this agent last followed.
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the list-peers command.
func (c *OperatorRaftListPeersCommand) Help() string {
	return strings.TrimSpace(operatorRaftListPeersHelp)
}

// Synopsis returns a one-line description of the list-peers command.
func (c *OperatorRaftListPeersCommand) Synopsis() string {
	return "Displays the Raft peer configuration"
}

// Run prints the Raft configuration and returns the exit code.
func (c *OperatorRaftListPeersCommand) Run(args []string) int {
	var (
		format string
		stale  bool
	)
	fs := c.FlagSet("operator raft list-peers", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	fs.BoolVar(&stale, "stale", false, "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) && c.validFormat(format) })
	if !ok {
		return 1
	}
	get := client.RaftConfiguration
	if stale {
		get = client.RaftConfigurationStale
	}
	conf, err := get()
	if err != nil {
		c.Ui.Error("Error retrieving Raft configuration: " + err.Error())
		return 1
	}
	slices.SortFunc(conf.Servers, func(a, b *api.RaftServer) int { return cmp.Compare(a.Node, b.Node) })

	if format == formatJSON {
		if err := outputJSON(c.Ui, conf); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	c.Ui.Output(raftPeersTable(conf.Servers))
	return 0
}

// raftPeersTable formats servers, already sorted, as a table, with
// Consul's Commit Index and Trails Leader By: each server's last index in
// the leader's view, and how far it is behind the leader's.
func raftPeersTable(servers []*api.RaftServer) string {
	var leaderIndex uint64
	for _, s := range servers {
		if s.Leader {
			leaderIndex = s.LastIndex
		}
	}
	rows := [][]string{{"Node", "ID", "Address", "State", "Voter", "Commit Index", "Trails Leader By"}}
	for _, s := range servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		// "-" where it is not known: the leader itself, and every server
		// when the answer has no index (from a follower, with -stale).
		trails := "-"
		if !s.Leader && leaderIndex > 0 && s.LastIndex > 0 {
			trails = fmt.Sprintf("%d commits", leaderIndex-min(leaderIndex, s.LastIndex))
		}
		commit := "-"
		if s.LastIndex > 0 {
			commit = strconv.FormatUint(s.LastIndex, 10)
		}
		rows = append(rows, []string{s.Node, s.ID, s.Address, state, strconv.FormatBool(s.Voter), commit, trails})
	}
	return formatTable(rows)
}
