package command

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// MembersCommand is "conclave members": it lists the gossip pool as the
// agent sees it.
type MembersCommand struct {
	Meta
}

const membersHelp = `
Usage: conclave members [options]

  Outputs the members of the gossip pool, as the agent sees them, sorted by
  name.

  Exit codes: 0 when at least one member is shown, 2 when no member matches
  -status, 1 on error.

Options:

  -detailed
     Add a Tags column with every tag of each member, as k=v pairs.

  -status=<regexp>
     Show only the members whose status (alive, leaving, left, failed)
     matches the regular expression.

  -wan
     Consul's WAN members. Refused: Conclave has no WAN gossip pool.
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the members command.
func (c *MembersCommand) Help() string {
	return strings.TrimSpace(membersHelp)
}

// Synopsis returns a one-line description of the members command.
func (c *MembersCommand) Synopsis() string {
	return "Lists the members of the gossip pool"
}

// Run lists the members and returns the exit code.
func (c *MembersCommand) Run(args []string) int {
	var (
		detailed bool
		status   string
		format   string
		wan      bool
	)
	fs := c.FlagSet("members", c.Help())
	fs.BoolVar(&wan, "wan", false, "")
	fs.BoolVar(&detailed, "detailed", false, "")
	fs.StringVar(&status, "status", ".*", "")
	fs.StringVar(&format, "format", formatText, "")
	var statusRe *regexp.Regexp
	client, ok := c.Setup(fs, args, func() bool {
		if !c.noArgs(fs) || !c.validFormat(format) || !c.unsupportedFlag(wan, "wan", "the WAN gossip pool") {
			return false
		}
		var err error
		if statusRe, err = regexp.Compile(status); err != nil {
			c.Ui.Error(fmt.Sprintf("Invalid -status regexp: %v", err))
			return false
		}
		return true
	})
	if !ok {
		return 1
	}
	members, err := client.Members()
	if err != nil {
		c.Ui.Error("Error retrieving members: " + err.Error())
		return 1
	}

	members = slices.DeleteFunc(members, func(m *api.Member) bool {
		return !statusRe.MatchString(api.MemberStatusString(m.Status))
	})
	if len(members) == 0 {
		// Like consul members: no output, and an exit code a script can test.
		return 2
	}
	slices.SortFunc(members, func(a, b *api.Member) int { return cmp.Compare(a.Name, b.Name) })

	if format == formatJSON {
		if err := outputJSON(c.Ui, members); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
		return 0
	}
	c.Ui.Output(membersTable(members, detailed))
	return 0
}

// membersTable formats members, already sorted, as a table.
func membersTable(members []*api.Member, detailed bool) string {
	header := []string{"Node", "Address", "Status", "Type", "Build", "DC"}
	if detailed {
		header = append(header, "Tags")
	}
	rows := [][]string{header}
	for _, m := range members {
		role := api.MemberType(m)
		row := []string{
			m.Name,
			net.JoinHostPort(m.Addr, strconv.Itoa(int(m.Port))),
			api.MemberStatusString(m.Status),
			role,
			m.Tags[api.TagVersion],
			m.Tags[api.TagDC],
		}
		if detailed {
			row = append(row, formatTags(m.Tags))
		}
		rows = append(rows, row)
	}
	return formatTable(rows)
}

// formatTags returns tags as "k=v,k=v", sorted by key.
func formatTags(tags map[string]string) string {
	pairs := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		pairs = append(pairs, k+"="+tags[k])
	}
	return strings.Join(pairs, ",")
}
