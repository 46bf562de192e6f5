package command

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// OperatorRaftRecoverPlanCommand is "conclave operator raft recover-plan":
// it prints the peers.json every surviving server should get to recover a
// cluster that lost its majority for good.
type OperatorRaftRecoverPlanCommand struct {
	Meta
}

const operatorRaftRecoverPlanHelp = `
Usage: conclave operator raft recover-plan [options]

  Prints, from the Raft configuration this server knows (answered without
  a leader), the peers.json that every surviving server should get when a
  majority of the servers is lost for good, with the steps to apply it.
  Leave the lost servers out with -exclude.

Options:

  -exclude=<id>
     The node ID of a server that is lost for good and must not be in the
     recovered cluster. Can be given more than once.
` + httpOptionsHelp

// Help returns the usage text of the recover-plan command.
func (c *OperatorRaftRecoverPlanCommand) Help() string {
	return strings.TrimSpace(operatorRaftRecoverPlanHelp)
}

// Synopsis returns a one-line description of the recover-plan command.
func (c *OperatorRaftRecoverPlanCommand) Synopsis() string {
	return "Prints the peers.json to recover a lost majority"
}

// recoveryPeer is one entry of peers.json, in Consul's format.
type recoveryPeer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}

// idList is a flag that can be given more than once.
type idList []string

func (l *idList) String() string { return strings.Join(*l, ",") }

func (l *idList) Set(s string) error {
	if s == "" {
		return fmt.Errorf("empty node ID")
	}
	*l = append(*l, s)
	return nil
}

const recoverPlanSteps = `To recover: stop every surviving server listed below, write exactly this
content to data_dir/raft/peers.json on each of them, then start them all.
Each applies the file at start, logs it, and removes it; the servers then
elect a leader among themselves. Do not start a server that is left out.
Lost servers can join again later as new servers, with empty data_dirs.`

// Run prints the recovery plan and returns the exit code.
func (c *OperatorRaftRecoverPlanCommand) Run(args []string) int {
	var exclude idList
	fs := c.FlagSet("operator raft recover-plan", c.Help())
	fs.Var(&exclude, "exclude", "")
	client, ok := c.Setup(fs, args, func() bool { return c.noArgs(fs) })
	if !ok {
		return 1
	}
	conf, err := client.RaftConfigurationStale()
	if err != nil {
		c.Ui.Error("Error retrieving Raft configuration: " + err.Error())
		return 1
	}
	peers, err := recoverPlan(conf.Servers, exclude)
	if err != nil {
		c.Ui.Error("Error building the recovery plan: " + err.Error())
		return 1
	}
	out, err := json.MarshalIndent(peers, "", "  ")
	if err != nil {
		c.Ui.Error("Error encoding peers.json: " + err.Error())
		return 1
	}
	c.Ui.Output(recoverPlanSteps + "\n\n" + string(out))
	return 0
}

// recoverPlan is the peers.json content for servers without the excluded
// IDs, sorted by ID. Every excluded ID must be in servers, and at least
// one voter must remain.
func recoverPlan(servers []*api.RaftServer, exclude []string) ([]recoveryPeer, error) {
	known := map[string]bool{}
	for _, s := range servers {
		known[s.ID] = true
	}
	for _, id := range exclude {
		if !known[id] {
			return nil, fmt.Errorf("-exclude %q: no server with that ID in the Raft configuration", id)
		}
	}
	var peers []recoveryPeer
	voters := 0
	for _, s := range servers {
		if slices.Contains(exclude, s.ID) {
			continue
		}
		if s.Voter {
			voters++
		}
		peers = append(peers, recoveryPeer{ID: s.ID, Address: s.Address, NonVoter: !s.Voter})
	}
	if voters == 0 {
		return nil, fmt.Errorf("no voter left after the exclusions")
	}
	slices.SortFunc(peers, func(a, b recoveryPeer) int { return cmp.Compare(a.ID, b.ID) })
	return peers, nil
}
