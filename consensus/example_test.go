package consensus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/conclavehq/conclave/consensus"
)

// This example runs a single server with in-memory storage: it bootstraps
// a cluster of one, waits until it is leader, then writes and reads keys.
func Example() {
	stream, err := consensus.NewTCPStream("127.0.0.1:0", "127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	node, err := consensus.New(consensus.Config{
		ID:       "4e7b0d3c-server-1",
		Name:     "server-1",
		Stream:   stream,
		InMemory: true,
		// The largest value a set accepts: Consul's default
		// kv_max_value_size, which the agent passes from its config.
		MaxValueSize: 512 << 10,
	})
	if err != nil {
		stream.Close()
		fmt.Println(err)
		return
	}
	defer node.Shutdown()

	// Only a node without Raft state may bootstrap, and only once.
	fmt.Println("has state:", node.HasState())
	err = node.Bootstrap([]consensus.Server{{ID: node.ID(), Address: node.RaftAddr(), Voter: true}})
	if err != nil {
		fmt.Println(err)
		return
	}

	// LeaderCh delivers true once this node wins the election.
	select {
	case <-node.LeaderCh():
	case <-time.After(10 * time.Second):
		fmt.Println("no leader")
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := node.Apply(ctx, consensus.Command{Op: consensus.OpSet, Key: "greeting", Value: []byte("hello")})
	if err != nil {
		fmt.Println(err)
		return
	}
	e, ok := node.Get("greeting")
	fmt.Printf("greeting = %s (found: %v, written at the entry's ModifyIndex: %v)\n", e.Value, ok, e.ModifyIndex == res.Index)

	// A check-and-set with a stale index is a result, not an error.
	res, err = node.Apply(ctx, consensus.Command{Op: consensus.OpCAS, Key: "greeting", Value: []byte("hi"), Index: e.ModifyIndex - 1})
	fmt.Println("stale cas applied:", res.OK, err)

	// A transaction applies all of its writes or none.
	res, err = node.Apply(ctx, consensus.Command{Op: consensus.OpTxn, Ops: []consensus.TxnOp{
		{Verb: consensus.VerbSet, Key: "web/port", Value: []byte("8080")},
		{Verb: consensus.VerbCheckIndex, Key: "greeting", Index: e.ModifyIndex},
	}})
	fmt.Println("txn committed:", res.OK, len(res.Results), "results", err)
	fmt.Println("keys:", node.Keys("", "/"))
	fmt.Println("bootstrap again:", node.Bootstrap([]consensus.Server{{ID: node.ID(), Address: node.RaftAddr()}}))

	// Output:
	// has state: false
	// greeting = hello (found: true, written at the entry's ModifyIndex: true)
	// stale cas applied: false <nil>
	// txn committed: true 2 results <nil>
	// keys: [greeting web/]
	// bootstrap again: raft state already exists
}
