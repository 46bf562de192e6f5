package command

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/conclavehq/conclave/agent/api"
)

// OperatorAutopilotSetConfigCommand is "conclave operator autopilot
// set-config": it changes the autopilot configuration.
type OperatorAutopilotSetConfigCommand struct {
	Meta
}

const operatorAutopilotSetConfigHelp = `
Usage: conclave operator autopilot set-config [options]

  Changes the autopilot configuration, as "consul operator autopilot
  set-config" does: it reads the configuration, changes the settings given
  as flags, and writes it back only if nobody changed it in between (a
  check-and-set on its ModifyIndex). The configuration is replicated
  through Raft.

  Autopilot in Conclave only judges the servers' health; it never changes
  the Raft configuration (the leader's reconciler alone does). So:

  - LastContactThreshold and MaxTrailingLogs take effect: the leader's
    health view (operator autopilot health and state, and the rollout
    gate's "the leader counts it healthy") judges with them.
  - CleanupDeadServers, MinQuorum and ServerStabilizationTime are stored
    and reported, and have no effect: no failed server is removed and no
    server is promoted by autopilot.

Options:

  -cleanup-dead-servers=<true|false>
     Stored; no effect in Conclave.

  -last-contact-threshold=<duration>
     How long a server may go without contact from the leader and still
     be healthy, such as 1s.

  -max-trailing-logs=<count>
     How many log entries a server may be behind the leader and still be
     healthy.

  -min-quorum=<count>
     Stored; no effect in Conclave.

  -server-stabilization-time=<duration>
     Stored; no effect in Conclave.
` + httpOptionsHelp

// Help returns the usage text of the set-config command.
func (c *OperatorAutopilotSetConfigCommand) Help() string {
	return strings.TrimSpace(operatorAutopilotSetConfigHelp)
}

// Synopsis returns a one-line description of the set-config command.
func (c *OperatorAutopilotSetConfigCommand) Synopsis() string {
	return "Changes the autopilot configuration"
}

// Run changes the configuration and returns the exit code.
func (c *OperatorAutopilotSetConfigCommand) Run(args []string) int {
	var (
		cleanup                bool
		lastContact, stabilize time.Duration
		trailing, minQuorum    uint64
	)
	fs := c.FlagSet("operator autopilot set-config", c.Help())
	fs.BoolVar(&cleanup, "cleanup-dead-servers", false, "")
	fs.DurationVar(&lastContact, "last-contact-threshold", 0, "")
	fs.Uint64Var(&trailing, "max-trailing-logs", 0, "")
	fs.Uint64Var(&minQuorum, "min-quorum", 0, "")
	fs.DurationVar(&stabilize, "server-stabilization-time", 0, "")
	set := map[string]bool{}
	client, ok := c.Setup(fs, args, func() bool {
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		switch {
		case !c.noArgs(fs):
			return false
		case set["last-contact-threshold"] && lastContact <= 0:
			c.Ui.Error(fmt.Sprintf("Invalid -last-contact-threshold %s: want a positive duration", lastContact))
			return false
		case set["server-stabilization-time"] && stabilize < 0:
			c.Ui.Error(fmt.Sprintf("Invalid -server-stabilization-time %s: want a duration of 0 or more", stabilize))
			return false
		case set["max-trailing-logs"] && trailing == 0:
			c.Ui.Error("Invalid -max-trailing-logs 0: want a positive count")
			return false
		}
		return true
	})
	if !ok {
		return 1
	}
	conf, err := client.AutopilotConfiguration()
	if err != nil {
		c.Ui.Error("Error querying autopilot configuration: " + err.Error())
		return 1
	}
	if set["cleanup-dead-servers"] {
		conf.CleanupDeadServers = cleanup
	}
	if set["last-contact-threshold"] {
		conf.LastContactThreshold = api.NewReadableDuration(lastContact)
	}
	if set["max-trailing-logs"] {
		conf.MaxTrailingLogs = trailing
	}
	if set["min-quorum"] {
		conf.MinQuorum = uint(minQuorum)
	}
	if set["server-stabilization-time"] {
		conf.ServerStabilizationTime = api.NewReadableDuration(stabilize)
	}
	updated, err := client.AutopilotSetConfiguration(conf, true)
	if err != nil {
		c.Ui.Error("Error setting autopilot configuration: " + err.Error())
		return 1
	}
	if !updated {
		c.Ui.Error("Configuration could not be atomically updated, please try again")
		return 1
	}
	c.Ui.Output("Configuration updated!")
	return 0
}
