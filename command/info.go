package command

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// InfoCommand is "conclave info": it prints the agent's configuration
// basics and the stats of its subsystems, for debugging.
type InfoCommand struct {
	Meta
}

const infoHelp = `
Usage: conclave info [options]

  Prints information about the agent for debugging: one section per
  subsystem, each with sorted "key = value" lines, as consul info does.
  The sections are Consul's (build; consul, with leader, server,
  known_servers and bootstrap; raft on a server; runtime; serf_lan) and
  Conclave's agent section, which also holds the basics of the agent's
  configuration.
` + httpOptionsHelp

// Help returns the usage text of the info command.
func (c *InfoCommand) Help() string {
	return strings.TrimSpace(infoHelp)
}

// Synopsis returns a one-line description of the info command.
func (c *InfoCommand) Synopsis() string {
	return "Provides debugging information for operators"
}

// Run prints the agent's information and returns the exit code.
func (c *InfoCommand) Run(args []string) int {
	fs := c.FlagSet("info", c.Help())
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) })
	if !ok {
		return 1
	}
	self, err := client.Self()
	if err != nil {
		c.Ui.Error("Error querying agent: " + err.Error())
		return 1
	}
	c.Ui.Output(infoText(self))
	return 0
}

// infoText formats the sections of self, sorted by name, with their keys
// sorted and indented by a tab as consul info does.
func infoText(self *api.Self) string {
	sections := make(map[string]map[string]string, len(self.Stats)+1)
	maps.Copy(sections, self.Stats)
	agent := maps.Clone(sections["agent"])
	if agent == nil {
		agent = make(map[string]string)
	}
	// The configuration fills in the agent section; a stat of the same name,
	// reported by the agent at run time, is kept.
	conf := self.Config
	for k, v := range map[string]string{
		"node_name":        conf.NodeName,
		"node_id":          conf.NodeID,
		"datacenter":       conf.Datacenter,
		"server":           strconv.FormatBool(conf.Server),
		"version":          conf.Version,
		"bootstrap_expect": strconv.Itoa(conf.BootstrapExpect),
		"data_dir":         conf.DataDir,
	} {
		if _, ok := agent[k]; !ok {
			agent[k] = v
		}
	}
	sections["agent"] = agent

	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(sections)) {
		b.WriteString(name + ":\n")
		section := sections[name]
		for _, k := range slices.Sorted(maps.Keys(section)) {
			b.WriteString("\t" + k + " = " + section[k] + "\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
