package consensus

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Op is the type of a Command: the first byte of its log entry, by which
// the state machine dispatches it. A type this release does not know was
// written by a newer one; applying it is an error that names it.
type Op uint8

// Command types. Each Command is one Raft log entry. The numbers are in the
// log: never reuse or renumber one.
const (
	// OpSet writes Key with Value and Flags.
	OpSet Op = 1
	// OpDelete removes Key. Deleting a missing key is not an error.
	OpDelete Op = 2
	// OpCAS writes Key only if its ModifyIndex equals Index; Index 0
	// means "only if Key does not exist".
	OpCAS Op = 3
	// OpDeleteCAS removes Key only if its ModifyIndex equals Index. As in
	// Consul, it succeeds when Key does not exist.
	OpDeleteCAS Op = 4
	// OpDeleteTree removes every key that begins with Key (the prefix; it
	// may be empty, which removes everything).
	OpDeleteTree Op = 5
	// OpTxn applies Ops atomically: all their writes or none.
	OpTxn Op = 6
	// OpReapTombstones forgets the tombstones of deletes at log index
	// Index or lower (see DESIGN.md). The leader issues it periodically.
	OpReapTombstones Op = 7
	// OpSetClusterMeta writes ClusterID as the cluster's identity, once:
	// writing the same ID again succeeds, another one is refused
	// (Result.OK false).
	OpSetClusterMeta Op = 8
	// OpSetAutopilotConfig writes Autopilot as the autopilot
	// configuration. With CAS it is written only if a configuration
	// exists whose ModifyIndex equals Index, as Consul's ?cas=.
	OpSetAutopilotConfig Op = 9
	// OpSessionCreate creates Session. Its ID is chosen before the log,
	// by the leader (a UUID not in use), since applying must be
	// deterministic; an ID in use is refused (Result.OK false).
	OpSessionCreate Op = 10
	// OpSessionDestroy invalidates the session Session.ID: the keys it
	// holds are released or deleted (its Behavior) and their lock delay
	// starts. A missing session is not an error.
	OpSessionDestroy Op = 11
	// OpLock writes Key with Value and Flags and makes Session.ID its
	// lock holder (Consul's ?acquire=): false when another session holds
	// it, an error matching ErrUnknownSession when the session does not
	// exist. Node.Apply answers false without logging while the key's lock
	// delay runs.
	OpLock Op = 12
	// OpUnlock writes Key with Value and Flags and clears its holder, if
	// Session.ID holds it (Consul's ?release=); false otherwise.
	OpUnlock Op = 13
)

var opNames = [...]string{
	OpSet:                "set",
	OpDelete:             "delete",
	OpCAS:                "cas",
	OpDeleteCAS:          "delete-cas",
	OpDeleteTree:         "delete-tree",
	OpTxn:                "txn",
	OpReapTombstones:     "reap-tombstones",
	OpSetClusterMeta:     "set-cluster-meta",
	OpSetAutopilotConfig: "set-autopilot-config",
	OpSessionCreate:      "session-create",
	OpSessionDestroy:     "session-destroy",
	OpLock:               "lock",
	OpUnlock:             "unlock",
}

func (o Op) valid() bool { return o >= OpSet && o <= OpUnlock }

// String returns the operation's name, such as "delete-tree".
func (o Op) String() string {
	if o.valid() {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Verb is the kind of one operation of a transaction. Its names are the KV
// verbs of Consul's /v1/txn.
type Verb uint8

// Transaction verbs. The reads (get, get-tree, check-index,
// check-not-exists) see the writes of earlier operations in the same
// transaction.
const (
	// VerbSet writes Key with Value and Flags.
	VerbSet Verb = 1
	// VerbCAS writes Key if its ModifyIndex equals Index (0: if absent).
	VerbCAS Verb = 2
	// VerbGet returns Key with its value; it fails if Key does not exist.
	VerbGet Verb = 3
	// VerbGetTree returns every entry under the prefix Key.
	VerbGetTree Verb = 4
	// VerbCheckIndex fails unless Key exists with ModifyIndex == Index.
	VerbCheckIndex Verb = 5
	// VerbCheckNotExists fails if Key exists.
	VerbCheckNotExists Verb = 6
	// VerbDelete removes Key.
	VerbDelete Verb = 7
	// VerbDeleteTree removes every key under the prefix Key.
	VerbDeleteTree Verb = 8
	// VerbDeleteCAS removes Key if its ModifyIndex equals Index.
	VerbDeleteCAS Verb = 9
	// VerbLock acquires Key for Session, as OpLock; it fails if another
	// session holds it or Session does not exist.
	VerbLock Verb = 10
	// VerbUnlock releases Key held by Session, as OpUnlock; it fails if
	// Session does not hold it.
	VerbUnlock Verb = 11
	// VerbCheckSession fails unless Key exists and is held by Session
	// (an empty Session: held by none).
	VerbCheckSession Verb = 12
)

var verbNames = [...]string{
	VerbSet:            "set",
	VerbCAS:            "cas",
	VerbGet:            "get",
	VerbGetTree:        "get-tree",
	VerbCheckIndex:     "check-index",
	VerbCheckNotExists: "check-not-exists",
	VerbDelete:         "delete",
	VerbDeleteTree:     "delete-tree",
	VerbDeleteCAS:      "delete-cas",
	VerbLock:           "lock",
	VerbUnlock:         "unlock",
	VerbCheckSession:   "check-session",
}

func (v Verb) valid() bool { return v >= VerbSet && v <= VerbCheckSession }

// hasSession reports whether the verb carries a session (in the log too).
func (v Verb) hasSession() bool { return v >= VerbLock && v <= VerbCheckSession }

// String returns Consul's name of the verb, such as "check-index".
func (v Verb) String() string {
	if v.valid() {
		return verbNames[v]
	}
	return fmt.Sprintf("Verb(%d)", uint8(v))
}

// ParseVerb returns the verb with Consul's name s ("set", "cas", "get",
// "get-tree", "check-index", "check-not-exists", "delete", "delete-tree",
// "delete-cas", "lock", "unlock", "check-session").
func ParseVerb(s string) (Verb, bool) {
	for v, name := range verbNames {
		if name != "" && name == s {
			return Verb(v), true
		}
	}
	return 0, false
}

// Writes reports whether the verb changes state. A transaction of reads
// only can be answered by View.ReadTxn without going through Raft.
func (v Verb) Writes() bool {
	switch v {
	case VerbSet, VerbCAS, VerbDelete, VerbDeleteTree, VerbDeleteCAS, VerbLock, VerbUnlock:
		return true
	}
	return false
}

// Command is one replicated change to the state machine. Which fields
// matter depends on Op, its type; the others are ignored and not
// replicated.
type Command struct {
	Op Op
	// Key is the key, or the prefix for OpDeleteTree.
	Key string
	// Value is the value for OpSet, OpCAS, OpLock and OpUnlock.
	Value []byte
	// Flags is the opaque uint64 stored with the value (OpSet, OpCAS,
	// OpLock, OpUnlock).
	Flags uint64
	// Index is the expected ModifyIndex for OpCAS, OpDeleteCAS and a CAS
	// OpSetAutopilotConfig, and the highest tombstone index to forget for
	// OpReapTombstones.
	Index uint64
	// Ops are the operations of an OpTxn, applied in order.
	Ops []TxnOp
	// ClusterID is the cluster's identity for OpSetClusterMeta.
	ClusterID string
	// Autopilot is the configuration for OpSetAutopilotConfig; its
	// CreateIndex and ModifyIndex are ignored.
	Autopilot AutopilotConfig
	// CAS makes OpSetAutopilotConfig conditional on Index.
	CAS bool
	// Session is the session to create for OpSessionCreate (its indexes
	// are ignored); only its ID matters for OpSessionDestroy, OpLock and
	// OpUnlock.
	Session Session
}

// TxnOp is one operation of a transaction. Key, Value, Flags and Index mean
// what they mean in Command; Session is the session ID of a lock, unlock
// or check-session.
type TxnOp struct {
	Verb    Verb
	Key     string
	Value   []byte
	Flags   uint64
	Index   uint64
	Session string
}

// Validate checks cmd before it goes into the log: keys must be valid
// UTF-8 and must not begin with "/", every key but a delete-tree prefix must
// be non-empty, and no value may be larger than maxValueSize bytes (no
// size check when maxValueSize <= 0; Node.Apply passes
// Config.MaxValueSize). It returns an error that
// matches ErrInvalidKey, ErrValueTooLarge or ErrInvalidCommand; for a
// transaction it is a *TxnOpError naming the operation.
func (c Command) Validate(maxValueSize int) error {
	switch c.Op {
	case OpSet, OpCAS:
		if err := checkKey(c.Key, false); err != nil {
			return err
		}
		return checkValue(c.Key, c.Value, maxValueSize)
	case OpLock, OpUnlock:
		if err := checkKey(c.Key, false); err != nil {
			return err
		}
		if err := checkSessionID(c.Session.ID); err != nil {
			return err
		}
		return checkValue(c.Key, c.Value, maxValueSize)
	case OpSessionCreate:
		return c.Session.validate()
	case OpSessionDestroy:
		if c.Session.ID == "" {
			return sessionError("Must provide ID")
		}
		return checkSessionID(c.Session.ID)
	case OpDelete, OpDeleteCAS:
		return checkKey(c.Key, false)
	case OpDeleteTree:
		return checkKey(c.Key, true)
	case OpTxn:
		for i, op := range c.Ops {
			if err := op.validate(maxValueSize); err != nil {
				return &TxnOpError{OpIndex: i, Err: err}
			}
		}
		return nil
	case OpReapTombstones:
		if c.Index == 0 {
			return fmt.Errorf("%w: reap-tombstones needs an index", ErrInvalidCommand)
		}
		return nil
	case OpSetClusterMeta:
		if c.ClusterID == "" || !utf8.ValidString(c.ClusterID) {
			return fmt.Errorf("%w: set-cluster-meta needs a cluster ID of valid UTF-8", ErrInvalidCommand)
		}
		return nil
	case OpSetAutopilotConfig:
		if a := c.Autopilot; a.LastContactThreshold < 0 || a.ServerStabilizationTime < 0 {
			return fmt.Errorf("%w: set-autopilot-config: durations must not be negative", ErrInvalidCommand)
		}
		if c.Autopilot.MinQuorum > math.MaxUint32 {
			return fmt.Errorf("%w: set-autopilot-config: min quorum %d out of range", ErrInvalidCommand, c.Autopilot.MinQuorum)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown operation %d", ErrInvalidCommand, c.Op)
}

func (op TxnOp) validate(maxValueSize int) error {
	if !op.Verb.valid() {
		return fmt.Errorf("%w: unknown KV verb %d", ErrInvalidCommand, op.Verb)
	}
	// As in Consul, only delete-tree may name the empty prefix.
	if err := checkKey(op.Key, op.Verb == VerbDeleteTree); err != nil {
		return err
	}
	if (op.Verb == VerbLock || op.Verb == VerbUnlock) && op.Session == "" {
		return checkSessionID("")
	}
	if !utf8.ValidString(op.Session) {
		return checkSessionID(op.Session)
	}
	if op.Verb == VerbSet || op.Verb == VerbCAS || op.Verb == VerbLock || op.Verb == VerbUnlock {
		return checkValue(op.Key, op.Value, maxValueSize)
	}
	return nil
}

// checkSessionID checks the session of a lock or unlock: Consul's
// "missing session" when there is none.
func checkSessionID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: missing session", ErrInvalidCommand)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: session %q is not valid UTF-8", ErrInvalidCommand, id)
	}
	return nil
}

func checkKey(key string, allowEmpty bool) error {
	switch {
	case key == "" && !allowEmpty:
		return fmt.Errorf("%w: missing key", ErrInvalidKey)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w %q: must not begin with \"/\"", ErrInvalidKey, key)
	}
	return nil
}

func checkValue(key string, value []byte, limit int) error {
	if limit > 0 && len(value) > limit {
		return &ValueTooLargeError{Key: key, Size: len(value), Limit: limit}
	}
	return nil
}

// ValueTooLargeError reports a value over the configured limit. It matches
// ErrValueTooLarge; the HTTP API answers it with 413.
type ValueTooLargeError struct {
	Key   string // the key whose value was refused
	Size  int    // bytes
	Limit int    // bytes
}

// Error says which key's value was too large, by how much.
func (e *ValueTooLargeError) Error() string {
	return fmt.Sprintf("value for key %q is too large (%d > %d bytes)", e.Key, e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrValueTooLarge) true.
func (e *ValueTooLargeError) Is(target error) bool { return target == ErrValueTooLarge }

// TxnOpError is a transaction refused before it reached the log because of
// one of its operations. OpIndex is the operation's position, as in
// Consul's TxnError.
type TxnOpError struct {
	OpIndex int
	Err     error
}

// Error names the operation and what is wrong with it.
func (e *TxnOpError) Error() string { return fmt.Sprintf("txn op %d: %v", e.OpIndex, e.Err) }

// Unwrap returns the operation's error, so errors.Is sees through.
func (e *TxnOpError) Unwrap() error { return e.Err }
