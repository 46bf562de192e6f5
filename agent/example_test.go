package agent_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/conclavehq/conclave/agent"
	"github.com/conclavehq/conclave/config"
)

// notes is an application's replicated state machine: it keeps every
// command it is given, in order.
type notes struct {
	mu   sync.Mutex
	list []string
}

func (n *notes) Apply(index uint64, data []byte) any {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, string(data))
	return len(n.list)
}

func (n *notes) Snapshot() (io.WriterTo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.NewReader(strings.Join(n.list, "\n")), nil
}

func (n *notes) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = nil
	if len(b) > 0 {
		n.list = strings.Split(string(b), "\n")
	}
	return nil
}

// Example runs a one-server agent in memory with an application's own
// state machine, applies one command through Raft and shuts down. A real
// cluster differs only in its configuration: bootstrap_expect and
// retry_join instead of dev mode.
func Example() {
	cfg := config.Dev() // one server, in memory, bootstraps itself
	cfg.NodeName = "example"
	cfg.Ports.HTTP, cfg.Ports.SerfLAN, cfg.Ports.Server = 0, 0, 0 // free ports

	a, err := agent.New(agent.Options{Config: cfg, FSM: &notes{}, Version: "example"})
	if err != nil {
		fmt.Println("new agent:", err)
		return
	}
	a.Start(context.Background())
	defer a.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !a.Node().IsLeader() {
		select {
		case <-ctx.Done():
			fmt.Println("no leader")
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	n, err := a.Node().ApplyBytes(ctx, []byte("hello"))
	if err != nil {
		fmt.Println("apply:", err)
		return
	}
	fmt.Println("notes:", n)
	// Output: notes: 1
}
