package command

import (
	"strconv"
	"strings"
	"time"

	"github.com/conclavehq/conclave/agent/api"
)

// OperatorBootstrapCommand is "conclave operator bootstrap": it explains why
// the cluster was, or has not yet been, bootstrapped.
type OperatorBootstrapCommand struct {
	Meta
}

const operatorBootstrapHelp = `
Usage: conclave operator bootstrap [options]

  Shows the bootstrap state of the agent: whether it is waiting for
  bootstrap_expect servers, bootstrapped the cluster, joined an existing
  one or restarted with Raft state; how many servers it expects and which
  it has seen; who bootstrapped the cluster and when; and why.

Options:
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the operator bootstrap command.
func (c *OperatorBootstrapCommand) Help() string {
	return strings.TrimSpace(operatorBootstrapHelp)
}

// Synopsis returns a one-line description of the operator bootstrap command.
func (c *OperatorBootstrapCommand) Synopsis() string {
	return "Shows why the cluster is or is not bootstrapped"
}

// Run prints the bootstrap status and returns the exit code.
func (c *OperatorBootstrapCommand) Run(args []string) int {
	var format string
	fs := c.FlagSet("operator bootstrap", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) && c.validFormat(format) })
	if !ok {
		return 1
	}
	status, err := client.Bootstrap()
	if err != nil {
		c.Ui.Error("Error retrieving bootstrap status: " + err.Error())
		return 1
	}

	if format == formatJSON {
		if err := outputJSON(c.Ui, status); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	c.Ui.Output(bootstrapText(status))
	return 0
}

// bootstrapText formats s as aligned "Key = value" lines. The lines for
// facts the agent does not know are left out.
func bootstrapText(s *api.BootstrapStatus) string {
	seen := strconv.Itoa(len(s.Seen))
	if len(s.Seen) > 0 {
		seen += " (" + strings.Join(s.Seen, ", ") + ")"
	}
	pairs := [][2]string{
		{"State", s.State},
		{"Expected servers", strconv.Itoa(s.Expect)},
		{"Servers seen", seen},
	}
	if s.By != "" {
		pairs = append(pairs, [2]string{"Bootstrapped by", s.By})
	}
	if s.At != nil {
		pairs = append(pairs, [2]string{"Bootstrapped at", s.At.Format(time.RFC3339)})
	}
	if s.ClusterID != "" {
		pairs = append(pairs, [2]string{"Cluster ID", s.ClusterID})
	}
	if s.Reason != "" {
		pairs = append(pairs, [2]string{"Reason", s.Reason})
	}
	return formatKV(pairs)
}
