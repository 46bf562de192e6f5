package command

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/discover"
)

// OperatorDiscoverCommand is "conclave operator discover": it resolves
// retry_join entries now and says how, to debug an agent that finds no one
// to join.
type OperatorDiscoverCommand struct {
	Meta
}

const operatorDiscoverHelp = `
Usage: conclave operator discover [options] ENTRY...

  Resolves each retry_join entry now, as an agent's retry_join would, and
  shows how: for a go-discover entry, the provider and the arguments parsed
  from it; the addresses found; and for an entry that found none, the error
  and what the provider logged on the way, such as the pods the k8s provider
  skipped because they were not Running and Ready.

  Give each entry as one argument, quoted as in the configuration, after
  the options:

      conclave operator discover 10.0.0.5 servers.conclave.internal \
          'provider=k8s label_selector="app=conclave" namespace=prod'

  The entries are resolved here, by this process, with this machine's DNS,
  network and credentials; no agent is needed. With -via-agent, the agent at
  -http-addr resolves them instead, from its own network view: inside a pod,
  with the pod's DNS and service account.

  Values of secret keys (secret_access_key, api_token, ...) are shown as
  [redacted].

  Exit codes: 0 when every entry resolved, 2 when at least one failed (it
  found no address, or its provider returned one that is not valid), 1 on
  error.

Options:

  -port=<port>
     The gossip port given to addresses that carry none. Default: 8301;
     with -via-agent, the agent's own ports.serf_lan, as its retry_join
     uses.

  -timeout=<duration>
     How long to let the whole resolution run. A go-discover provider call
     cannot be interrupted, so past this the command gives up on it.
     Default: 30s; at most 2m with -via-agent.

  -via-agent
     Ask the agent at -http-addr to resolve the entries
     (GET /v1/operator/discover) instead of resolving them here.
` + formatFlagHelp + httpOptionsHelp

// Help returns the usage text of the operator discover command.
func (c *OperatorDiscoverCommand) Help() string {
	return strings.TrimSpace(operatorDiscoverHelp)
}

// Synopsis returns a one-line description of the operator discover command.
func (c *OperatorDiscoverCommand) Synopsis() string {
	return "Resolves retry_join entries and explains how"
}

// Run resolves the entries given as arguments, prints how each resolved and
// returns the exit code.
func (c *OperatorDiscoverCommand) Run(args []string) int {
	var (
		format   string
		port     int
		timeout  time.Duration
		viaAgent bool
	)
	fs := c.FlagSet("operator discover", c.Help())
	fs.StringVar(&format, "format", formatText, "")
	fs.IntVar(&port, "port", config.DefaultSerfLANPort, "")
	fs.DurationVar(&timeout, "timeout", api.DiscoverTimeout, "")
	fs.BoolVar(&viaAgent, "via-agent", false, "")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	entries := fs.Args()
	if len(entries) == 0 {
		c.Ui.Error("Must specify at least one retry_join entry")
		return 1
	}
	for _, e := range entries {
		// No entry starts with '-' (a host name cannot); flag stops at the
		// first entry, so this is a flag given after one.
		if strings.HasPrefix(e, "-") {
			c.Ui.Error(fmt.Sprintf("Flag %s after an entry: give the options before the entries", e))
			return 1
		}
	}
	if err := checkFormat(format); err != nil {
		c.Ui.Error(err.Error())
		return 1
	}
	if port < 1 || port > 65535 {
		c.Ui.Error(fmt.Sprintf("Invalid -port %d: want a number from 1 to 65535", port))
		return 1
	}
	if timeout <= 0 || viaAgent && timeout > api.MaxDiscoverTimeout {
		c.Ui.Error(fmt.Sprintf("Invalid -timeout %s: want a positive duration, at most %s with -via-agent", timeout, api.MaxDiscoverTimeout))
		return 1
	}
	if set["http-addr"] && !viaAgent {
		c.Ui.Error("-http-addr needs -via-agent: without it the entries are resolved here")
		return 1
	}

	var results []*api.DiscoverResult
	if viaAgent {
		client, err := c.Client()
		if err != nil {
			c.Ui.Error("Error creating client: " + err.Error())
			return 1
		}
		// Unset flags leave the agent its own defaults: its gossip port.
		if !set["port"] {
			port = 0
		}
		if !set["timeout"] {
			timeout = 0
		}
		if results, err = client.Discover(entries, port, timeout); err != nil {
			c.Ui.Error("Error resolving entries via the agent: " + err.Error())
			return 1
		}
	} else {
		var err error
		if results, err = resolveLocally(entries, port, timeout); err != nil {
			c.Ui.Error("Error resolving entries: " + err.Error())
			return 1
		}
	}

	if format == formatJSON {
		if err := outputJSON(c.Ui, results); err != nil {
			c.Ui.Error(err.Error())
			return 1
		}
	} else {
		c.Ui.Output(discoverText(results))
	}
	for _, r := range results {
		if r.Error != "" || len(r.Addrs) == 0 {
			return 2
		}
	}
	return 0
}

// resolveLocally explains each entry with a default discover.Resolver, as
// GET /v1/operator/discover does in the agent. Past timeout it gives up on
// the entry in progress, whose provider call cannot be interrupted; the
// process exits soon after anyway.
func resolveLocally(entries []string, port int, timeout time.Duration) ([]*api.DiscoverResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var current atomic.Int64 // index of the entry being resolved
	done := make(chan []*api.DiscoverResult, 1)
	go func() {
		var r discover.Resolver
		xs := r.ExplainAll(ctx, entries, port, &current)
		out := make([]*api.DiscoverResult, 0, len(xs))
		for _, x := range xs {
			out = append(out, &api.DiscoverResult{Entry: x.Entry, Provider: x.Provider, Args: x.Args, Addrs: x.Addrs, Log: x.Log, Error: x.Error})
		}
		done <- out
	}()
	select {
	case out := <-done:
		return out, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("entry %q did not resolve within %s", discover.Redact(entries[current.Load()]), timeout)
	}
}

// discoverKeyWidth is the width of the longest key discoverText prints.
const discoverKeyWidth = len("Addresses")

// discoverText formats results as one block of "Key = value" lines per
// entry, blank lines between them. A list takes one line per item.
func discoverText(results []*api.DiscoverResult) string {
	var b strings.Builder
	line := func(key string, values ...string) {
		for i, v := range values {
			if i == 0 {
				v = fmt.Sprintf("%-*s = %s", discoverKeyWidth, key, v)
			} else {
				v = strings.Repeat(" ", discoverKeyWidth+3) + v
			}
			b.WriteString(strings.TrimRight(v, " ") + "\n")
		}
	}
	for i, r := range results {
		if i > 0 {
			b.WriteString("\n")
		}
		line("Entry", r.Entry)
		if r.Provider != "" {
			line("Provider", r.Provider)
			var args []string
			for _, k := range slices.Sorted(maps.Keys(r.Args)) {
				if k != "provider" {
					args = append(args, k+"="+strconv.Quote(r.Args[k]))
				}
			}
			if len(args) > 0 {
				line("Arguments", strings.Join(args, " "))
			}
		}
		if len(r.Addrs) == 0 {
			line("Addresses", "(none)")
		} else {
			line("Addresses", r.Addrs...)
		}
		if r.Error != "" {
			// Some providers' errors span lines, such as go-multierror's
			// "2 errors occurred:\n\t* ...": keep them aligned.
			var lines []string
			for l := range strings.Lines(r.Error) {
				if l = strings.TrimSpace(l); l != "" {
					lines = append(lines, l)
				}
			}
			line("Error", lines...)
		}
		if len(r.Log) > 0 {
			line("Log", r.Log...)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}
