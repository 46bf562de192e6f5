package consensus

import (
	autopilot "github.com/hashicorp/raft-autopilot"
)

// DefaultAutopilotConfig is the autopilot configuration Conclave runs
// with until one is stored (OpSetAutopilotConfig): no dead-server cleanup,
// the last-contact threshold of the raft_multiplier
// (LastContactThreshold), MaxTrailingLogs entries, no minimum quorum and a
// 10 s stabilization time. /v1/operator/autopilot/configuration reports it
// with CreateIndex and ModifyIndex 0.
func DefaultAutopilotConfig(multiplier int) AutopilotConfig {
	return AutopilotConfig{
		CleanupDeadServers:      false,
		LastContactThreshold:    LastContactThreshold(multiplier),
		MaxTrailingLogs:         MaxTrailingLogs,
		ServerStabilizationTime: defaultStabilizationTime,
	}
}

// libraryConfig is the raft-autopilot configuration for c. Of the stored
// settings only the two that judge health take effect:
// LastContactThreshold and MaxTrailingLogs. Autopilot here never changes
// the configuration, so CleanupDeadServers stays off whatever is stored,
// and MinQuorum and ServerStabilizationTime, which only matter for
// removals and promotions, are kept as they are but change nothing.
func libraryConfig(c AutopilotConfig) *autopilot.Config {
	return &autopilot.Config{
		CleanupDeadServers:      false,
		LastContactThreshold:    c.LastContactThreshold,
		MaxTrailingLogs:         c.MaxTrailingLogs,
		MinQuorum:               c.MinQuorum,
		ServerStabilizationTime: c.ServerStabilizationTime,
	}
}

// currentConfig is what autopilot asks for on every round: the stored
// configuration when there is one, else the defaults. A stored zero
// threshold or trailing-log count (Consul's PUT replaces the whole
// configuration) would mark every server unhealthy; the default is used
// for it instead.
func (d *autopilotApp) currentConfig() *autopilot.Config {
	if d.stored == nil {
		return d.config
	}
	c, ok := d.stored()
	if !ok {
		return d.config
	}
	if c.LastContactThreshold <= 0 {
		c.LastContactThreshold = d.config.LastContactThreshold
	}
	if c.MaxTrailingLogs == 0 {
		c.MaxTrailingLogs = d.config.MaxTrailingLogs
	}
	if c.ServerStabilizationTime <= 0 {
		c.ServerStabilizationTime = d.config.ServerStabilizationTime
	}
	return libraryConfig(c)
}
