package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/consensus"
)

// Deleted keys leave tombstones in the state machine so that blocking
// queries on them report the delete's index. As in Consul, the leader
// forgets them once they are older than tombstoneTTL: it samples the
// applied index every tombstoneGranularity and reaps up to the newest
// sample that has aged past the TTL. Samples start afresh with each
// leadership, so a new leader waits a whole TTL before its first reap.
const (
	tombstoneTTL         = 15 * time.Minute
	tombstoneGranularity = time.Minute
)

// tombstoneSampler remembers (time, applied index) samples.
type tombstoneSampler struct {
	samples []indexSample
}

type indexSample struct {
	at    time.Time
	index uint64
}

func (s *tombstoneSampler) add(at time.Time, index uint64) {
	s.samples = append(s.samples, indexSample{at, index})
}

// reapable returns the highest sampled index taken at least ttl before
// now, and drops the samples up to it; 0 when there is none.
func (s *tombstoneSampler) reapable(now time.Time, ttl time.Duration) uint64 {
	n := 0
	for n < len(s.samples) && now.Sub(s.samples[n].at) >= ttl {
		n++
	}
	if n == 0 {
		return 0
	}
	index := s.samples[n-1].index
	s.samples = append(s.samples[:0], s.samples[n:]...)
	return index
}

// Applier is the part of consensus.Node the reaper uses.
type Applier interface {
	Apply(ctx context.Context, cmd consensus.Command) (consensus.Result, error)
	AppliedIndex() uint64
}

// reapTimeout bounds one reap from the leader's point of view.
const reapTimeout = 10 * time.Second

// ReapTombstones is a leader duty: it runs while this server leads, until
// ctx ends.
func ReapTombstones(ctx context.Context, logger hclog.Logger, node Applier) {
	var s tombstoneSampler
	t := time.NewTicker(tombstoneGranularity)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.add(now, node.AppliedIndex())
			index := s.reapable(now, tombstoneTTL)
			if index == 0 {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, reapTimeout)
			_, err := node.Apply(actx, consensus.Command{Op: consensus.OpReapTombstones, Index: index})
			cancel()
			if err != nil && ctx.Err() == nil {
				logger.Warn("failed to reap tombstones", "index", index, "error", err)
			}
		}
	}
}
