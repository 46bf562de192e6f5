package command

import (
	"fmt"
	"strconv"
	"strings"
)

// SessionInfoCommand is "conclave session info": it shows one session.
type SessionInfoCommand struct {
	Meta
}

const sessionInfoHelp = `
Usage: conclave session info [options] ID

  Displays the session ID. Exits with 1 when it does not exist.

Options:
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the session info command.
func (c *SessionInfoCommand) Help() string { return strings.TrimSpace(sessionInfoHelp) }

// Synopsis returns a one-line description of the session info command.
func (c *SessionInfoCommand) Synopsis() string { return "Shows a session" }

// Run prints the session and returns the exit code.
func (c *SessionInfoCommand) Run(args []string) int {
	var format string
	fs := c.FlagSet("session info", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	client, ok := c.Setup(fs, args, func() bool { return c.oneSessionArg(fs.NArg()) && c.validFormat(format) })
	if !ok {
		return 1
	}
	id := fs.Arg(0)
	s, err := client.SessionInfo(id)
	if err != nil {
		c.Ui.Error("Error retrieving session: " + err.Error())
		return 1
	}
	if s == nil {
		c.Ui.Error(fmt.Sprintf("Error! No session %q", id))
		return 1
	}
	if format == formatJSON {
		if err := outputJSON(c.Ui, s); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	ttl, checks := s.TTL, strings.Join(s.NodeChecks, ",")
	c.Ui.Output(formatKV([][2]string{
		{"ID", s.ID}, {"Name", s.Name}, {"Node", s.Node}, {"TTL", ttl}, {"Behavior", s.Behavior},
		{"LockDelay", s.LockDelay.String()}, {"NodeChecks", checks},
		{"CreateIndex", strconv.FormatUint(s.CreateIndex, 10)}, {"ModifyIndex", strconv.FormatUint(s.ModifyIndex, 10)},
	}))
	return 0
}

// oneSessionArg is a check for Setup: the command takes exactly one
// session ID.
func (m *Meta) oneSessionArg(n int) bool {
	if n != 1 {
		m.Ui.Error(fmt.Sprintf("Error! Expected one session ID (got %d arguments)", n))
		return false
	}
	return true
}
