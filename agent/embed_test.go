package agent

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/test/testutil"
)

// countFSM is an application's state machine: it counts its commands.
type countFSM struct {
	mu sync.Mutex
	n  int
}

func (f *countFSM) Apply(uint64, []byte) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *countFSM) Snapshot() (io.WriterTo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.NewReader(fmt.Appendf(nil, "%d", f.n)), nil
}

func (f *countFSM) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err = fmt.Sscan(string(b), &f.n)
	return err
}

// TestLateServerJoinsAnEmbeddedCluster: a server that arrives after an
// embedded cluster (an application's state machine) has formed is added
// as a voter. Such a cluster has no cluster ID, so the reconciler must
// not ask for one: with the identity probe on, its leader refused every
// new server ("this leader has not written its cluster ID yet").
func TestLateServerJoinsAnEmbeddedCluster(t *testing.T) {
	first := testAgentWith(t, "e1", Options{FSM: &countFSM{}}, func(c *config.Config) { c.Bootstrap = true })
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !first.node.IsLeader() {
			return fmt.Errorf("e1 is not the leader yet")
		}
		return nil
	})
	second := testAgentWith(t, "e2", Options{FSM: &countFSM{}}, func(c *config.Config) {
		c.RetryJoin = []string{first.serfAddr()}
	})
	testutil.WaitFor(t, 15*time.Second, func() error {
		conf, _, err := first.node.Configuration()
		if err != nil {
			return err
		}
		for _, s := range conf {
			if s.ID == second.id && s.Voter {
				return nil
			}
		}
		return fmt.Errorf("e2 is not a voter in %+v", conf)
	})
}
