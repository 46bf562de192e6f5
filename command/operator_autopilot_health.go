package command

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// OperatorAutopilotHealthCommand is "conclave operator autopilot health":
// it shows the health of every server as the leader's autopilot sees it.
type OperatorAutopilotHealthCommand struct {
	Meta
}

const operatorAutopilotHealthHelp = `
Usage: conclave operator autopilot health [options]

  Displays the leader's autopilot view of the servers in the committed Raft
  configuration, sorted by node name: whether each is healthy (alive in
  gossip, in contact with the leader, on the leader's term and within 250
  entries of its last index) and votes, and how many voters the cluster
  can lose while keeping a quorum of healthy ones (failure tolerance).
  Unhealthy servers do not make the command fail.
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the autopilot health command.
func (c *OperatorAutopilotHealthCommand) Help() string {
	return strings.TrimSpace(operatorAutopilotHealthHelp)
}

// Synopsis returns a one-line description of the autopilot health command.
func (c *OperatorAutopilotHealthCommand) Synopsis() string {
	return "Displays the health of the servers"
}

// Run prints the servers' health and returns the exit code.
func (c *OperatorAutopilotHealthCommand) Run(args []string) int {
	var format string
	fs := c.FlagSet("operator autopilot health", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) && c.validFormat(format) })
	if !ok {
		return 1
	}
	reply, err := client.AutopilotServerHealth()
	if err != nil {
		c.Ui.Error("Error retrieving autopilot health: " + err.Error())
		return 1
	}
	slices.SortFunc(reply.Servers, func(a, b api.ServerHealth) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})

	if format == formatJSON {
		if err := outputJSON(c.Ui, reply); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	c.Ui.Output(formatKV([][2]string{
		{"Healthy", strconv.FormatBool(reply.Healthy)},
		{"Failure tolerance", strconv.Itoa(reply.FailureTolerance)},
	}))
	c.Ui.Output("")
	c.Ui.Output(autopilotHealthTable(reply.Servers))
	return 0
}

// autopilotHealthTable formats servers, already sorted, as a table.
func autopilotHealthTable(servers []api.ServerHealth) string {
	rows := [][]string{{"Node", "ID", "Address", "State", "Voter", "Healthy", "Serf", "LastContact", "LastTerm", "LastIndex"}}
	for _, s := range servers {
		state := "follower"
		if s.Leader {
			state = "leader"
		}
		rows = append(rows, []string{
			s.Name, s.ID, s.Address, state, strconv.FormatBool(s.Voter), strconv.FormatBool(s.Healthy), s.SerfStatus,
			s.LastContact.String(), strconv.FormatUint(s.LastTerm, 10), strconv.FormatUint(s.LastIndex, 10),
		})
	}
	return formatTable(rows)
}
