package agent

import (
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/consensus"
)

// logStoreConfig turns the raft_logstore block into consensus's terms.
func logStoreConfig(c config.RaftLogStore) consensus.LogStoreConfig {
	return consensus.LogStoreConfig{
		Backend:        consensus.Backend(c.Backend),
		WALSegmentSize: c.WAL.SegmentSizeMB << 20,
		Verification: consensus.VerificationConfig{
			Enabled:  c.Verification.Enabled,
			Interval: c.Verification.Interval,
		},
	}
}
