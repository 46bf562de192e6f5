package consensus

import (
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// Sessions and locks, as Consul's state store does them (session.go,
// kvs.go's kvsLockTxn and kvsUnlockTxn, delay.go).

// SessionBehavior is what invalidating a session does to the keys it
// holds: Consul's Behavior.
type SessionBehavior string

// Session behaviors.
const (
	// SessionRelease releases the keys: their Session is cleared, their
	// value and LockIndex kept. It is the default.
	SessionRelease SessionBehavior = "release"
	// SessionDelete deletes the keys.
	SessionDelete SessionBehavior = "delete"
)

// Session limits and defaults: Consul's.
const (
	// DefaultLockDelay is a new session's LockDelay unless it says
	// otherwise.
	DefaultLockDelay = 15 * time.Second
	// MaxLockDelay caps the lock delay applied when a session is
	// invalidated; a longer LockDelay is kept but applied as this.
	MaxLockDelay = 60 * time.Second
	// SessionTTLMin and SessionTTLMax bound a session's TTL (zero means
	// no TTL).
	SessionTTLMin = 10 * time.Second
	SessionTTLMax = 24 * time.Hour
	// SessionTTLMultiplier is the grace the leader gives a TTL: a session
	// is invalidated when 2×TTL passes without a renewal, as in Consul.
	SessionTTLMultiplier = 2
	// SerfHealth is the node check every session has unless it says
	// otherwise: the node is alive in gossip.
	SerfHealth = "serfHealth"
)

// Session is a Consul session: a lease that holds locks on keys. The ID
// is chosen before the log (see OpSessionCreate).
type Session struct {
	// ID is the session's UUID.
	ID string
	// Name is the operator's label; it need not be unique.
	Name string
	// Node is the name of the node the session belongs to: when it fails
	// or leaves the gossip pool, the session is invalidated.
	Node string
	// LockDelay is how long, after the session is invalidated, a key it
	// held cannot be acquired (applied at most MaxLockDelay).
	LockDelay time.Duration
	// Behavior is what invalidation does to the keys held.
	Behavior SessionBehavior
	// TTL, when not zero, is how long the session lives without a renewal
	// (the leader waits SessionTTLMultiplier times as long).
	TTL time.Duration
	// NodeChecks are the node's checks whose failure invalidates the
	// session: SerfHealth, or none.
	NodeChecks []string
	// CreateIndex and ModifyIndex are the log index of the create. A
	// command's own values are ignored.
	CreateIndex, ModifyIndex uint64
}

// DefaultSession returns the session that Consul's /v1/session/create
// makes when the body says nothing: LockDelay 15 s, behavior release, no
// TTL, and the serfHealth check of the node.
func DefaultSession(id, node string) Session {
	return Session{ID: id, Node: node, LockDelay: DefaultLockDelay, Behavior: SessionRelease,
		NodeChecks: []string{SerfHealth}}
}

// ParseSessionTTL parses a session's TTL as Consul's session endpoint
// does: a Go duration, "" meaning none; the bounds are checked by
// Command.Validate.
func ParseSessionTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	ttl, err := time.ParseDuration(s)
	if err != nil {
		return 0, sessionError(fmt.Sprintf("Session TTL '%s' invalid: %v", s, err))
	}
	return ttl, nil
}

// sessionError is a session refused before the log. Its text is Consul's
// (for the HTTP body), and it matches ErrInvalidSession and
// ErrInvalidCommand.
type sessionError string

func (e sessionError) Error() string { return string(e) }

// Is matches ErrInvalidSession and ErrInvalidCommand.
func (e sessionError) Is(target error) bool {
	return target == ErrInvalidSession || target == ErrInvalidCommand
}

// validate checks a session to create, with Consul's messages.
func (s Session) validate() error {
	switch {
	case s.ID == "":
		return sessionError("Must provide ID")
	case s.Node == "":
		return sessionError("Must provide Node")
	}
	for _, f := range []string{s.ID, s.Name, s.Node} {
		if !utf8.ValidString(f) {
			return sessionError(fmt.Sprintf("Session field %q is not valid UTF-8", f))
		}
	}
	switch s.Behavior {
	case "", SessionRelease, SessionDelete:
	default:
		return sessionError(fmt.Sprintf("Invalid Behavior setting '%s'", s.Behavior))
	}
	if s.TTL != 0 && (s.TTL < SessionTTLMin || s.TTL > SessionTTLMax) {
		return sessionError(fmt.Sprintf("Invalid Session TTL '%d', must be between [%v=%v]",
			s.TTL, SessionTTLMin, SessionTTLMax))
	}
	if s.LockDelay < 0 {
		return sessionError(fmt.Sprintf("Invalid LockDelay '%v', must not be negative", s.LockDelay))
	}
	for _, c := range s.NodeChecks {
		// The only node check Conclave has is the gossip health; Consul
		// refuses a check the node has not registered.
		if c != SerfHealth {
			return sessionError(fmt.Sprintf("Missing check '%s' registration", c))
		}
	}
	return nil
}

func (t *tx) session(id string) *Session {
	raw, err := t.mt.First(tableSessions, "id", id)
	must(err)
	if raw == nil {
		return nil
	}
	return raw.(*Session)
}

// sessionCreate inserts s at this index. An ID that exists is refused
// (false): IDs are chosen unique before the log, so this is a client
// reusing one, never a new session.
func (t *tx) sessionCreate(s Session) bool {
	if t.session(s.ID) != nil {
		return false
	}
	if s.Behavior == "" {
		s.Behavior = SessionRelease
	}
	s.NodeChecks = slices.Clone(s.NodeChecks)
	s.CreateIndex, s.ModifyIndex = t.idx, t.idx
	must(t.mt.Insert(tableSessions, &s))
	t.touch(indexedSessions)
	return true
}

// sessionDestroy invalidates a session as Consul's deleteSessionTxn does:
// every key it holds is released (Session cleared, value and LockIndex
// kept, ModifyIndex moved) or, for SessionDelete, deleted, and the lock
// delay is recorded for each of them. A missing session changes nothing.
func (t *tx) sessionDestroy(id string) {
	s := t.session(id)
	if s == nil {
		return
	}
	must(t.mt.Delete(tableSessions, s))
	t.touch(indexedSessions)
	var held []*Entry
	it, err := t.mt.Get(tableKVs, "session", id)
	must(err)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		held = append(held, raw.(*Entry))
	}
	delay := min(s.LockDelay, MaxLockDelay)
	for _, e := range held {
		if s.Behavior == SessionDelete {
			t.del(e.Key)
		} else {
			c := *e
			c.Session = ""
			t.put(e, &c)
		}
		if delay > 0 {
			t.delays = append(t.delays, keyDelay{e.Key, delay})
		}
	}
}

// lock is Consul's kvsLockTxn: it writes key with value and flags and
// makes session its holder, if the session exists and the key is unlocked
// or already held by it. A new holder increments LockIndex (the fencing
// counter); the same holder again keeps it. It returns the entry, false
// when another session holds the key, and an error matching
// ErrUnknownSession when the session does not exist.
func (t *tx) lock(key string, value []byte, flags uint64, session string) (*Entry, bool, error) {
	if t.session(session) == nil {
		return nil, false, fmt.Errorf("%w %q", ErrUnknownSession, session)
	}
	old := t.get(key)
	e := &Entry{Key: key, Flags: flags, Value: value, Session: session, LockIndex: 1}
	if old != nil {
		switch old.Session {
		case session:
			e.LockIndex = old.LockIndex
		case "":
			e.LockIndex = old.LockIndex + 1
		default:
			return nil, false, nil
		}
	}
	return t.put(old, e), true, nil
}

// unlock is Consul's kvsUnlockTxn: if session holds key, it writes key
// with value and flags and clears the holder, keeping LockIndex; else it
// changes nothing and returns false. The session need not exist.
func (t *tx) unlock(key string, value []byte, flags uint64, session string) (*Entry, bool) {
	old := t.get(key)
	if old == nil || old.Session != session {
		return nil, false
	}
	return t.put(old, &Entry{Key: key, Flags: flags, Value: value, LockIndex: old.LockIndex}), true
}

// keyDelay is a lock delay to record when the transaction commits.
type keyDelay struct {
	key   string
	delay time.Duration
}

// lockDelay is Consul's Delay: for each key released or deleted by an
// invalidation, the time until which it cannot be acquired. It lives in
// memory on every server, is set when the state machine applies the
// invalidation (the time of apply plus the delay, by this server's wall
// clock), is checked by the leader before an acquire enters the log, and
// is neither replicated nor snapshotted: a new leader knows only the
// delays of the invalidations it applied itself, as in Consul.
type lockDelay struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]time.Time
	// sweepAt is the size of m at which expired keys are next dropped,
	// so the map holds at most about twice the keys still delayed.
	sweepAt int
}

func newLockDelay() *lockDelay {
	return &lockDelay{now: time.Now, m: map[string]time.Time{}, sweepAt: 64}
}

func (d *lockDelay) set(delays []keyDelay) {
	if len(delays) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for _, kd := range delays {
		d.m[kd.key] = now.Add(kd.delay)
	}
	if len(d.m) >= d.sweepAt {
		for k, until := range d.m {
			if !until.After(now) {
				delete(d.m, k)
			}
		}
		d.sweepAt = max(64, 2*len(d.m))
	}
}

// reset forgets every delay.
func (d *lockDelay) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.m)
}

// until returns the end of key's lock delay, and false when it is not
// delayed now.
func (d *lockDelay) until(key string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.m[key]
	if !ok {
		return time.Time{}, false
	}
	if !until.After(d.now()) {
		delete(d.m, key)
		return time.Time{}, false
	}
	return until, true
}
