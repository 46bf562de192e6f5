package consensus

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	autopilot "github.com/hashicorp/raft-autopilot"
)

// TestAutopilotStoredConfig: the stored configuration sets the health
// thresholds autopilot judges with; dead-server cleanup stays off whatever
// is stored, and zero thresholds fall back to the defaults.
func TestAutopilotStoredConfig(t *testing.T) {
	defaults := DefaultAutopilotConfig(2)
	for _, tc := range []struct {
		name   string
		stored func() (AutopilotConfig, bool)
		want   autopilot.Config
	}{
		{"none", nil, *libraryConfig(defaults)},
		{"not stored", func() (AutopilotConfig, bool) { return AutopilotConfig{}, false }, *libraryConfig(defaults)},
		{
			"stored",
			func() (AutopilotConfig, bool) {
				return AutopilotConfig{CleanupDeadServers: true, LastContactThreshold: 5 * time.Second, MaxTrailingLogs: 10, MinQuorum: 3, ServerStabilizationTime: time.Minute}, true
			},
			autopilot.Config{CleanupDeadServers: false, LastContactThreshold: 5 * time.Second, MaxTrailingLogs: 10, MinQuorum: 3, ServerStabilizationTime: time.Minute},
		},
		{
			"stored zeros",
			func() (AutopilotConfig, bool) { return AutopilotConfig{}, true },
			autopilot.Config{LastContactThreshold: defaults.LastContactThreshold, MaxTrailingLogs: MaxTrailingLogs, ServerStabilizationTime: defaults.ServerStabilizationTime},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &autopilotApp{config: libraryConfig(defaults), stored: tc.stored}
			if diff := cmp.Diff(*d.AutopilotConfig(), tc.want); diff != "" {
				t.Errorf("AutopilotConfig() mismatch (-got +want):\n%s", diff)
			}
		})
	}
	if defaults.LastContactThreshold != time.Second || defaults.MaxTrailingLogs != 250 || defaults.CleanupDeadServers {
		t.Errorf("DefaultAutopilotConfig(2) = %+v, want 1s, 250, no cleanup", defaults)
	}
}
