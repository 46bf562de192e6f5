package consensus

import (
	"context"
	"fmt"
	"time"
)

// SessionGet reads the session with the given ID from the local state
// machine.
func (n *Node) SessionGet(id string) (Session, bool) { return n.fsm.View().SessionGet(id) }

// SessionList reads every session from the local state machine.
func (n *Node) SessionList() []Session { return n.fsm.View().SessionList() }

// SessionsByNode reads the sessions of node from the local state machine.
func (n *Node) SessionsByNode(node string) []Session { return n.fsm.View().SessionsByNode(node) }

// WaitSessions is FSM.WaitSessions on this node's state machine.
func (n *Node) WaitSessions(ctx context.Context, minIndex uint64) (View, error) {
	return n.fsm.WaitSessions(ctx, minIndex)
}

// LockDelay returns the end of key's lock delay on this server, and false
// when it has none now.
func (n *Node) LockDelay(key string) (time.Time, bool) { return n.fsm.LockDelay(key) }

// lockDelayed answers an acquire of a key whose lock delay runs, as
// Consul's kvsPreApply does on the leader before the log: a lock answers
// false, a transaction fails with the position of each delayed lock
// ("failed to lock key "k" due to lock delay"). It reports whether cmd was
// answered; if not, cmd goes to the log.
func (n *Node) lockDelayed(cmd Command) (Result, bool) {
	switch cmd.Op {
	case OpLock:
		if _, delayed := n.fsm.LockDelay(cmd.Key); delayed {
			return Result{OK: false}, true
		}
	case OpTxn:
		var errs []TxnError
		for i, op := range cmd.Ops {
			if op.Verb != VerbLock {
				continue
			}
			if _, delayed := n.fsm.LockDelay(op.Key); delayed {
				errs = append(errs, TxnError{OpIndex: i, What: fmt.Sprintf("failed to lock key %q due to lock delay", op.Key)})
			}
		}
		if len(errs) > 0 {
			return Result{OK: false, Errors: errs}, true
		}
	}
	return Result{}, false
}
