package command

import (
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// OperatorAutopilotGetConfigCommand is "conclave operator autopilot
// get-config": it shows the autopilot configuration.
type OperatorAutopilotGetConfigCommand struct {
	Meta
}

const operatorAutopilotGetConfigHelp = `
Usage: conclave operator autopilot get-config [options]

  Displays the autopilot configuration, as "consul operator autopilot
  get-config" does: the stored one, or, before any was set, the values
  Conclave runs with. See "conclave operator autopilot set-config -h" for
  which settings take effect.

      $ conclave operator autopilot get-config
      CleanupDeadServers = false
      LastContactThreshold = 1s
      MaxTrailingLogs = 250
      MinQuorum = 0
      ServerStabilizationTime = 10s
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the get-config command.
func (c *OperatorAutopilotGetConfigCommand) Help() string {
	return strings.TrimSpace(operatorAutopilotGetConfigHelp)
}

// Synopsis returns a one-line description of the get-config command.
func (c *OperatorAutopilotGetConfigCommand) Synopsis() string {
	return "Displays the autopilot configuration"
}

// Run prints the configuration and returns the exit code.
func (c *OperatorAutopilotGetConfigCommand) Run(args []string) int {
	var format string
	fs := c.FlagSet("operator autopilot get-config", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) && c.validFormat(format) })
	if !ok {
		return 1
	}
	conf, err := client.AutopilotConfiguration()
	if err != nil {
		c.Ui.Error("Error querying autopilot configuration: " + err.Error())
		return 1
	}
	if format == formatJSON {
		if err := outputJSON(c.Ui, conf); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	c.Ui.Output(autopilotConfigText(conf))
	return 0
}

// autopilotConfigText lays conf out as Consul's get-config does, without
// the Enterprise settings, which Conclave does not have.
func autopilotConfigText(conf *api.AutopilotConfiguration) string {
	return strings.Join([]string{
		"CleanupDeadServers = " + strconv.FormatBool(conf.CleanupDeadServers),
		"LastContactThreshold = " + conf.LastContactThreshold.String(),
		"MaxTrailingLogs = " + strconv.FormatUint(conf.MaxTrailingLogs, 10),
		"MinQuorum = " + strconv.FormatUint(uint64(conf.MinQuorum), 10),
		"ServerStabilizationTime = " + conf.ServerStabilizationTime.String(),
	}, "\n")
}
