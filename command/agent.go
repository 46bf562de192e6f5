package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/cli"
	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent"
	"github.com/conclavehq/conclave/config"
)

// gracefulTimeout bounds a graceful leave on the first signal.
const gracefulTimeout = 15 * time.Second

// AgentCommand runs a Conclave agent until it is told to stop.
type AgentCommand struct {
	// Ui receives the start-up summary, configuration warnings and errors.
	Ui cli.Ui
	// ShutdownCh, when set, replaces the process signals: a value on it
	// acts as SIGINT. Tests use it.
	ShutdownCh <-chan os.Signal
}

// agentHelpIntro and agentHelpSignals are the fixed parts of the agent's
// help. The options between them are generated from the flag set, so that
// each flag's usage is written once, where the flag is defined.
const (
	agentHelpIntro = `
Usage: conclave agent [options]

  Starts a Conclave agent and runs until an interrupt is received. The
  agent is a server (it takes part in Raft and may bootstrap the cluster)
  or a client (it only gossips). Configuration comes from files and
  directories, in the order given, then from the flags below, which
  override the files. A boolean flag takes an optional value, as in
  "-server=false".
`
	agentHelpSignals = `
Signals:

  SIGINT and SIGTERM shut the agent down. By default a server does not
  leave the cluster on either (skip_leave_on_interrupt = true,
  leave_on_terminate = false), so a restart keeps its place; set those keys
  to leave instead. A second signal exits at once. SIGHUP reloads the log
  level from the configuration files and the TLS certificates, keys and CA
  files, as "conclave reload" does.
`
)

// Help returns the usage text, with one entry per flag of the flag set.
func (c *AgentCommand) Help() string {
	fs, _, _ := agentFlagSet()
	return strings.TrimSpace(agentHelpIntro) + "\n\nOptions:\n\n" + flagsHelp(fs) +
		"\n\n" + strings.TrimSpace(agentHelpSignals)
}

// agentFlagSet returns the agent's flag set and what it parses into: the
// -config-file and -config-dir paths in command-line order, and the
// overrides defined by config.Flags.
func agentFlagSet() (*flag.FlagSet, *pathList, *config.Flags) {
	var (
		paths pathList
		flags config.Flags
	)
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.Var(&paths, "config-file",
		"A configuration `file`, HCL or JSON (by its .json extension). Can be given more\n"+
			"than once; files and directories load in the order given.")
	fs.Var(&paths, "config-dir",
		"A `directory` whose *.hcl and *.json files load in lexical order, without\n"+
			"subdirectories. Can be given more than once.")
	flags.AddTo(fs)
	return fs, &paths, &flags
}

// Synopsis returns a one-line description.
func (c *AgentCommand) Synopsis() string { return "Runs a Conclave agent" }

// Run parses the configuration, starts the agent and waits for a signal.
func (c *AgentCommand) Run(args []string) int {
	fs, paths, flags := agentFlagSet()
	fs.SetOutput(uiErrorWriter{c.Ui})
	fs.Usage = func() { c.Ui.Error(c.Help()) }
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() > 0 {
		c.Ui.Error(fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
		return 1
	}
	opts := config.LoadOptions{Paths: *paths, Flags: flags}
	res, err := config.Load(opts)
	if err != nil {
		c.Ui.Error("Error loading configuration: " + err.Error())
		return 1
	}
	for _, w := range res.Warnings {
		c.Ui.Warn("WARNING: " + w)
	}
	cfg := res.Config

	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "conclave",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON,
		Output:     os.Stdout,
	})
	a, err := agent.New(agent.Options{
		Config: cfg, Logger: logger, Version: Version,
		Reload: func() error { return reloadConfig(opts, logger) },
	})
	if err != nil {
		c.Ui.Error("Error starting agent: " + err.Error())
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.Start(ctx)

	c.Ui.Output("Conclave agent running!")
	httpAPI := a.HTTPAddr()
	if httpAPI == "" {
		httpAPI = "off"
	}
	if https := a.HTTPSAddr(); https != "" {
		httpAPI += ", HTTPS: " + https
	}
	c.Ui.Info(fmt.Sprintf("  Node name: %s\n    Node ID: %s\n     Server: %t (bootstrap_expect: %d)\n   HTTP API: %s\n       Raft: %s\n Datacenter: %s",
		cfg.NodeName, a.NodeID(), cfg.Server, cfg.BootstrapExpect, httpAPI, a.RaftAddr(), cfg.Datacenter))

	return c.wait(a, cfg, opts, logger)
}

// wait handles signals until the agent stops. The first SIGINT or SIGTERM
// shuts down gracefully (leaving first if so configured); a second one
// exits at once.
func (c *AgentCommand) wait(a *agent.Agent, cfg *config.Config, opts config.LoadOptions, logger hclog.Logger) int {
	sigCh := c.ShutdownCh
	if sigCh == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(ch)
		sigCh = ch
	}
	for {
		var sig os.Signal
		select {
		case <-a.ShutdownCh():
			if err := a.Err(); err != nil {
				c.Ui.Error("Agent stopped: " + err.Error())
				return 1
			}
			return 0
		case sig = <-sigCh:
		}
		if sig == syscall.SIGHUP {
			if err := a.Reload(); err != nil {
				logger.Error("reload failed; what failed keeps its running configuration", "error", err)
			}
			continue
		}
		logger.Info("caught signal", "signal", sig.String())
		leave := (sig == syscall.SIGTERM && cfg.LeaveOnTerminate) || (sig == os.Interrupt && !cfg.SkipLeaveOnInterrupt)
		done := make(chan error, 1)
		go func() {
			var err error
			if leave {
				err = a.Leave()
			}
			done <- errors.Join(err, a.Shutdown())
		}()
		select {
		case err := <-done:
			if err != nil {
				c.Ui.Error("Error during shutdown: " + err.Error())
				return 1
			}
			return 0
		case <-sigCh:
			c.Ui.Error("Second signal received; exiting without waiting")
			return 1
		case <-time.After(gracefulTimeout):
			c.Ui.Error("Timed out during graceful shutdown")
			return 1
		}
	}
}

// reloadConfig re-reads the configuration files and applies what the
// command owns and can change at run time: the log level. The agent calls
// it first when it reloads (SIGHUP, PUT /v1/agent/reload), then reloads
// its TLS files.
func reloadConfig(opts config.LoadOptions, logger hclog.Logger) error {
	res, err := config.Load(opts)
	if err != nil {
		return fmt.Errorf("load configuration: %w", err)
	}
	logger.SetLevel(hclog.LevelFromString(res.Config.LogLevel))
	logger.Info("reloaded configuration", "log_level", res.Config.LogLevel)
	return nil
}

// pathList collects the values of a repeatable flag in command-line order:
// -config-file and -config-dir, and the -additional-* flags of tls.
type pathList []string

func (p *pathList) String() string     { return strings.Join(*p, ",") }
func (p *pathList) Set(v string) error { *p = append(*p, v); return nil }
