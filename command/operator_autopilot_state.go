package command

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// OperatorAutopilotStateCommand is "conclave operator autopilot state": it
// shows the leader's autopilot state.
type OperatorAutopilotStateCommand struct {
	Meta
}

const operatorAutopilotStateHelp = `
Usage: conclave operator autopilot state [options]

  Displays the leader's autopilot state, as "consul operator autopilot
  state" does: whether the cluster is healthy, its failure tolerance (how
  many voters it can lose and keep a quorum) and optimistic failure
  tolerance (counting only healthy voters), the leader, the voters, and
  each server, sorted by name.
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the autopilot state command.
func (c *OperatorAutopilotStateCommand) Help() string {
	return strings.TrimSpace(operatorAutopilotStateHelp)
}

// Synopsis returns a one-line description of the autopilot state command.
func (c *OperatorAutopilotStateCommand) Synopsis() string {
	return "Displays the leader's autopilot state"
}

// Run prints the state and returns the exit code.
func (c *OperatorAutopilotStateCommand) Run(args []string) int {
	var format string
	fs := c.FlagSet("operator autopilot state", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) && c.validFormat(format) })
	if !ok {
		return 1
	}
	st, err := client.AutopilotState()
	if err != nil {
		c.Ui.Error("Error querying autopilot state: " + err.Error())
		return 1
	}
	if format == formatJSON {
		if err := outputJSON(c.Ui, st); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	c.Ui.Output(autopilotStateText(st))
	return 0
}

// autopilotStateText lays st out: the summary as key = value lines, then
// a table of the servers sorted by name.
func autopilotStateText(st *api.AutopilotState) string {
	servers := slices.SortedFunc(maps.Values(st.Servers), func(a, b api.AutopilotServer) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	leader := st.Leader
	if s, ok := st.Servers[st.Leader]; ok {
		leader = s.Name
	}
	var voters []string
	for _, id := range st.Voters {
		name := id
		if s, ok := st.Servers[id]; ok {
			name = s.Name
		}
		voters = append(voters, name)
	}
	slices.Sort(voters)
	summary := formatKV([][2]string{
		{"Healthy", strconv.FormatBool(st.Healthy)},
		{"Failure Tolerance", strconv.Itoa(st.FailureTolerance)},
		{"Optimistic Failure Tolerance", strconv.Itoa(st.OptimisticFailureTolerance)},
		{"Leader", leader},
		{"Voters", strings.Join(voters, ", ")},
	})
	rows := [][]string{{"Node", "ID", "Address", "Status", "Serf", "Healthy", "LastContact", "LastTerm", "LastIndex", "StableSince"}}
	for _, s := range servers {
		rows = append(rows, []string{
			s.Name, s.ID, s.Address, s.Status, s.NodeStatus, strconv.FormatBool(s.Healthy), s.LastContact.String(),
			strconv.FormatUint(s.LastTerm, 10), strconv.FormatUint(s.LastIndex, 10), s.StableSince.UTC().Format("2006-01-02T15:04:05Z"),
		})
	}
	return summary + "\n\n" + formatTable(rows)
}
