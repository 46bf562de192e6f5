package command

import (
	"bufio"
	"context"
	"strings"
)

// MonitorCommand is "conclave monitor": it streams a running agent's log
// lines.
type MonitorCommand struct {
	Meta
}

const monitorHelp = `
Usage: conclave monitor [options]

  Shows the log lines of a running agent as they are written, as "consul
  monitor" does, until the agent stops or the command is interrupted. The
  level may be more verbose than the agent's own log_level: the agent
  sends this command every line at -log-level and above. A client that
  reads too slowly loses lines rather than slowing the agent; the stream
  then says how many were dropped.

Options:

  -log-level=<level>
     The least severe level shown: trace, debug, info, warn or error.
     Default: info.

  -log-json
     Print each line as JSON, as with log_json.
` + httpOptionsHelp

// Help returns the usage text of the monitor command.
func (c *MonitorCommand) Help() string {
	return strings.TrimSpace(monitorHelp)
}

// Synopsis returns a one-line description of the monitor command.
func (c *MonitorCommand) Synopsis() string {
	return "Streams the logs of a running agent"
}

// Run streams the log lines and returns the exit code: 0 when the agent
// ended the stream, 1 on error.
func (c *MonitorCommand) Run(args []string) int {
	var (
		level   string
		logJSON bool
	)
	fs := c.FlagSet("monitor", c.Help())
	fs.StringVar(&level, "log-level", "info", "")
	fs.BoolVar(&logJSON, "log-json", false, "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) })
	if !ok {
		return 1
	}
	stream, err := client.Monitor(context.Background(), level, logJSON)
	if err != nil {
		c.Ui.Error("Error starting monitor: " + err.Error())
		return 1
	}
	defer stream.Close()
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		c.Ui.Output(sc.Text())
	}
	if err := sc.Err(); err != nil {
		c.Ui.Error("Error reading logs: " + err.Error())
		return 1
	}
	c.Ui.Info("Remote side ended the monitor! This usually means that the remote side has exited or crashed.")
	return 0
}
