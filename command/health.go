package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/conclavehq/conclave/agent/api"
)

// defaultHealthTimeout bounds a health check unless -timeout says
// otherwise; container runtimes run the check with their own, similar
// timeout.
const defaultHealthTimeout = 5 * time.Second

// HealthCommand is "conclave health": it runs one of the agent's health
// checks and exits 0 when it passes, 1 otherwise. The image is FROM
// scratch, so a container HEALTHCHECK has this binary and nothing else.
type HealthCommand struct {
	Meta
}

const healthHelp = `
Usage: conclave health [options]

  Runs one health check against the agent and prints its one-line reason.
  Exits 0 when the check passes and 1 when it fails or the agent cannot be
  reached, so it can serve as a container HEALTHCHECK or a probe command.

  With no flag it checks liveness (GET /v1/agent/health): the agent serves
  HTTP. It depends on nothing else.

  -ready checks readiness (GET /v1/status/ready): the agent has started and
  is not leaving or shutting down. It needs no leader and no peer, so
  discovery (go-discover's k8s provider lists only ready pods) may depend
  on it.

  -voter checks the rollout gate (GET /v1/status/ready?voter): this server
  is a voter, caught up with the leader and healthy in its autopilot view,
  and the cluster again tolerates one failure. It cannot pass before the
  cluster has bootstrapped; wait on it between the steps of a rolling
  restart.

Options:

  -ready
     Check readiness instead of liveness.

  -voter
     Check the rollout gate. Servers only.

  -timeout=<duration>
     Fail the check when the agent has not answered within this time.
     Default: 5s.
` + httpOptionsHelp

// Help returns the usage text of the health command.
func (c *HealthCommand) Help() string { return strings.TrimSpace(healthHelp) }

// Synopsis returns a one-line description of the health command.
func (c *HealthCommand) Synopsis() string { return "Checks the health of the agent" }

// Run runs the check and returns 0 when it passes, 1 otherwise.
func (c *HealthCommand) Run(args []string) int {
	var (
		ready, voter bool
		timeout      time.Duration
	)
	fs := c.FlagSet("health", c.Help())
	fs.BoolVar(&ready, "ready", false, "")
	fs.BoolVar(&voter, "voter", false, "")
	fs.DurationVar(&timeout, "timeout", defaultHealthTimeout, "")
	client, ok := c.Setup(fs, args, func() bool {
		if !c.noArgs(fs) {
			return false
		}
		if timeout <= 0 {
			c.Ui.Error(fmt.Sprintf("invalid -timeout %s: want a positive duration", timeout))
			return false
		}
		return true
	})
	if !ok {
		return 1
	}
	check := api.CheckAlive
	switch {
	case voter: // the gate includes readiness
		check = api.CheckVoter
	case ready:
		check = api.CheckReady
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	h, err := client.Health(ctx, check)
	if err != nil {
		c.Ui.Error(fmt.Sprintf("Unhealthy (%s): %s", check, healthFailure(err, timeout)))
		return 1
	}
	c.Ui.Output(fmt.Sprintf("Healthy (%s): %s", check, h.Reason))
	return 0
}

// healthFailure says in one line why a check failed: the agent's reason
// when it answered one, else what kept it from answering.
func healthFailure(err error, timeout time.Duration) string {
	var se *api.StatusError
	switch {
	case errors.As(err, &se) && se.Body != "":
		return se.Body
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer from the agent within %s", timeout)
	}
	return "cannot reach the agent: " + err.Error()
}
