// Package sessions holds the leader's side of Consul sessions that is not
// in the replicated state: the TTL timers, and the decision which
// sessions gossip invalidates. It does no I/O and takes no part in Raft:
// on expiry it calls back, and the caller (the agent's leader loop) turns
// that into a session-destroy through consensus.Node.Apply.
//
// The lifecycle, as in Consul's session_ttl.go: when a server becomes
// leader it calls RearmAll with every session in the state store, so each
// TTL session gets a full 2×TTL from then on; a create with a TTL and
// every renew call Arm; a destroy calls Stop; losing leadership calls
// StopAll. A TTL timer therefore lives only on the leader, and a leader
// change restarts every session's grace in full (the contract is that a
// session never expires before its TTL, not that it expires promptly).
package sessions

import (
	"slices"
	"sync"
	"time"

	"github.com/conclavehq/conclave/consensus"
)

// Timers is the leader's set of session TTL timers. Its methods are safe
// for concurrent use.
type Timers struct {
	// expire is called, on a goroutine of its own, when a session's timer
	// runs out.
	expire func(id string)

	mu     sync.Mutex
	timers map[string]*time.Timer
}

// NewTimers returns an empty set of timers that calls expire with a
// session's ID when its timer runs out. expire runs on its own goroutine,
// without any lock of Timers held, so it may block (for the Raft apply of
// the session-destroy and its retries) and may call Timers' methods. Once
// a timer has fired its session has no timer; a renew that comes later
// arms a new one, as Consul does.
func NewTimers(expire func(id string)) *Timers {
	return &Timers{expire: expire, timers: map[string]*time.Timer{}}
}

// Arm starts the timer of session id, or restarts it if it runs: it fires
// after ttl × consensus.SessionTTLMultiplier (2×TTL, Consul's grace). Call
// it when a session with a TTL is created and on every renew. A ttl of 0
// (a session without TTL) stops any timer of id instead.
func (t *Timers) Arm(id string, ttl time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.timers[id]; ok {
		old.Stop()
		delete(t.timers, id)
	}
	if ttl <= 0 {
		return
	}
	var timer *time.Timer
	timer = time.AfterFunc(ttl*consensus.SessionTTLMultiplier, func() {
		t.mu.Lock()
		// A timer stopped or replaced while this callback was starting
		// is no longer the session's: only the current one expires it.
		current := t.timers[id] == timer
		if current {
			delete(t.timers, id)
		}
		t.mu.Unlock()
		if current {
			t.expire(id)
		}
	})
	t.timers[id] = timer
}

// Stop stops the timer of session id, if it has one: call it when the
// session is destroyed.
func (t *Timers) Stop(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if timer, ok := t.timers[id]; ok {
		timer.Stop()
		delete(t.timers, id)
	}
}

// StopAll stops every timer: call it when this server stops being the
// leader. No expire call starts after it returns (one already running may
// still be finishing; its apply fails on a follower).
func (t *Timers) StopAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, timer := range t.timers {
		timer.Stop()
		delete(t.timers, id)
	}
}

// RearmAll replaces every timer with one per session of list that has a
// TTL, each at its full 2×TTL from now: call it with View.SessionList
// when this server becomes the leader, as Consul's
// initializeSessionTimers does.
func (t *Timers) RearmAll(list []consensus.Session) {
	t.StopAll()
	for _, s := range list {
		if s.TTL > 0 {
			t.Arm(s.ID, s.TTL)
		}
	}
}

// Len returns the number of running timers.
func (t *Timers) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.timers)
}

// NodeChange is what gossip says happened to a node.
type NodeChange int

// Node changes that invalidate sessions.
const (
	// NodeFailed: the node stopped answering gossip (Serf's failed). Its
	// serfHealth check is critical.
	NodeFailed NodeChange = iota + 1
	// NodeLeft: the node left the pool gracefully, or was reaped (Serf's
	// left and reap). Consul deregisters such a node, and with it every
	// session of the node, whatever its checks.
	NodeLeft
)

// ToInvalidate returns, sorted, the IDs of the sessions of list that must
// be destroyed because node changed, as Consul decides it: when the node
// failed, the sessions of the node whose NodeChecks include serfHealth
// (a session with no checks outlives its node's failure); when it left,
// every session of the node. The leader applies a session-destroy for
// each; a session already gone makes that a no-op, so a repeated or late
// event is harmless.
func ToInvalidate(list []consensus.Session, node string, change NodeChange) []string {
	var ids []string
	for _, s := range list {
		if s.Node != node {
			continue
		}
		if change == NodeLeft || change == NodeFailed && slices.Contains(s.NodeChecks, consensus.SerfHealth) {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}
