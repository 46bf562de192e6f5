package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
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

// Log entry layout. Every entry starts with the Op byte; integers are
// uvarints, and a trailing key or value takes the rest of the entry.
//
//	set          op flags keylen key value
//	delete       op key
//	cas          op index flags keylen key value
//	delete-cas   op index key
//	delete-tree  op prefix
//	txn          op count { verb flags index keylen key valuelen value [sessionlen session] }*
//	reap         op index
//	cluster-meta op clusterID
//	autopilot    op flags index lastContactThreshold maxTrailingLogs minQuorum serverStabilizationTime
//	session-create  op behavior lockDelay ttl idlen id namelen name nodelen node checks { len check }*
//	session-destroy op id
//	lock, unlock op flags sessionlen session keylen key value
//
// In autopilot, flags is a uvarint of bits (1: CAS, 2: CleanupDeadServers)
// and the durations are nanoseconds. In a txn, only lock, unlock and
// check-session carry the session, so the operations of older entries
// decode unchanged. In session-create, behavior is 0 for release and 1
// for delete, and the durations are nanoseconds.
//
// minTxnOp is the smallest encoded transaction operation: a verb byte and
// four one-byte uvarints.
const minTxnOp = 5

// encode returns the log entry for c. It checks only that the op and verbs
// are known; Validate checks the rest.
func (c Command) encode() ([]byte, error) {
	if !c.Op.valid() {
		return nil, fmt.Errorf("%w: unknown operation %d", ErrInvalidCommand, c.Op)
	}
	size := 1 + 3*binary.MaxVarintLen64 + len(c.Key) + len(c.Value)
	for _, op := range c.Ops {
		if !op.Verb.valid() {
			return nil, fmt.Errorf("%w: unknown KV verb %d", ErrInvalidCommand, op.Verb)
		}
		size += 1 + 5*binary.MaxVarintLen64 + len(op.Key) + len(op.Value) + len(op.Session)
	}
	if c.Op >= OpSessionCreate {
		s := c.Session
		size += 6*binary.MaxVarintLen64 + len(s.ID) + len(s.Name) + len(s.Node)
		for _, ch := range s.NodeChecks {
			size += binary.MaxVarintLen64 + len(ch)
		}
	}
	b := make([]byte, 1, size)
	b[0] = byte(c.Op)
	switch c.Op {
	case OpSet:
		b = binary.AppendUvarint(b, c.Flags)
		b = appendString(b, c.Key)
		b = append(b, c.Value...)
	case OpDelete, OpDeleteTree:
		b = append(b, c.Key...)
	case OpCAS:
		b = binary.AppendUvarint(b, c.Index)
		b = binary.AppendUvarint(b, c.Flags)
		b = appendString(b, c.Key)
		b = append(b, c.Value...)
	case OpDeleteCAS:
		b = binary.AppendUvarint(b, c.Index)
		b = append(b, c.Key...)
	case OpTxn:
		b = binary.AppendUvarint(b, uint64(len(c.Ops)))
		for _, op := range c.Ops {
			b = append(b, byte(op.Verb))
			b = binary.AppendUvarint(b, op.Flags)
			b = binary.AppendUvarint(b, op.Index)
			b = appendString(b, op.Key)
			b = binary.AppendUvarint(b, uint64(len(op.Value)))
			b = append(b, op.Value...)
			if op.Verb.hasSession() {
				b = appendString(b, op.Session)
			}
		}
	case OpReapTombstones:
		b = binary.AppendUvarint(b, c.Index)
	case OpSetClusterMeta:
		b = append(b, c.ClusterID...)
	case OpSetAutopilotConfig:
		a := c.Autopilot
		var flags uint64
		if c.CAS {
			flags |= autopilotCAS
		}
		if a.CleanupDeadServers {
			flags |= autopilotCleanup
		}
		for _, v := range []uint64{flags, c.Index, uint64(a.LastContactThreshold), a.MaxTrailingLogs,
			uint64(a.MinQuorum), uint64(a.ServerStabilizationTime)} {
			b = binary.AppendUvarint(b, v)
		}
	case OpSessionCreate:
		s := c.Session
		var behavior uint64
		if s.Behavior == SessionDelete {
			behavior = 1
		}
		for _, v := range []uint64{behavior, uint64(s.LockDelay), uint64(s.TTL)} {
			b = binary.AppendUvarint(b, v)
		}
		for _, f := range []string{s.ID, s.Name, s.Node} {
			b = appendString(b, f)
		}
		b = binary.AppendUvarint(b, uint64(len(s.NodeChecks)))
		for _, ch := range s.NodeChecks {
			b = appendString(b, ch)
		}
	case OpSessionDestroy:
		b = append(b, c.Session.ID...)
	case OpLock, OpUnlock:
		b = binary.AppendUvarint(b, c.Flags)
		b = appendString(b, c.Session.ID)
		b = appendString(b, c.Key)
		b = append(b, c.Value...)
	}
	return b, nil
}

// Bits of an encoded set-autopilot-config's flags.
const (
	autopilotCAS     = 1
	autopilotCleanup = 2
)

// unknownTypeError is a log entry whose command type this release does not
// know: a newer server wrote it.
type unknownTypeError struct{ op Op }

func (e unknownTypeError) Error() string { return fmt.Sprintf("unknown command type %d", e.op) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errTruncated = errors.New("truncated command")

// decoder reads a log entry front to back. The first error sticks; later
// reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		if n < 0 {
			d.err = errors.New("malformed varint")
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next n bytes; they alias the entry.
func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

// rest returns what is left of the entry.
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	b := d.b
	d.b = nil
	return b
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return d.err
}

// decodeCommand decodes a log entry. Values alias b; keys are copies.
func decodeCommand(b []byte) (Command, error) {
	if len(b) == 0 {
		return Command{}, errors.New("empty command")
	}
	c := Command{Op: Op(b[0])}
	d := decoder{b: b[1:]}
	switch c.Op {
	case OpSet:
		c.Flags = d.uvarint()
		c.Key = d.string()
		c.Value = emptyToNil(d.rest())
	case OpDelete, OpDeleteTree:
		c.Key = string(d.rest())
	case OpCAS:
		c.Index = d.uvarint()
		c.Flags = d.uvarint()
		c.Key = d.string()
		c.Value = emptyToNil(d.rest())
	case OpDeleteCAS:
		c.Index = d.uvarint()
		c.Key = string(d.rest())
	case OpTxn:
		n := d.uvarint()
		if d.err == nil && n > uint64(len(d.b)/minTxnOp) {
			return Command{}, fmt.Errorf("txn of %d operations in %d bytes", n, len(d.b))
		}
		if n > 0 {
			c.Ops = make([]TxnOp, n)
		}
		for i := range c.Ops {
			op := &c.Ops[i]
			if d.err != nil {
				break
			}
			if len(d.b) == 0 {
				return Command{}, fmt.Errorf("decode txn op %d: %w", i, errTruncated)
			}
			op.Verb = Verb(d.b[0])
			d.b = d.b[1:]
			if !op.Verb.valid() {
				return Command{}, fmt.Errorf("decode txn op %d: unknown KV verb %d", i, op.Verb)
			}
			op.Flags = d.uvarint()
			op.Index = d.uvarint()
			op.Key = d.string()
			op.Value = emptyToNil(d.bytes(d.uvarint()))
			if op.Verb.hasSession() {
				op.Session = d.string()
			}
		}
	case OpReapTombstones:
		c.Index = d.uvarint()
	case OpSetClusterMeta:
		c.ClusterID = string(d.rest())
	case OpSetAutopilotConfig:
		flags := d.uvarint()
		if d.err == nil && flags&^(autopilotCAS|autopilotCleanup) != 0 {
			return Command{}, fmt.Errorf("decode %s: unknown flags %#x", c.Op, flags)
		}
		c.CAS, c.Autopilot.CleanupDeadServers = flags&autopilotCAS != 0, flags&autopilotCleanup != 0
		c.Index = d.uvarint()
		c.Autopilot.LastContactThreshold = time.Duration(d.uvarint())
		c.Autopilot.MaxTrailingLogs = d.uvarint()
		minQuorum := d.uvarint()
		if minQuorum > math.MaxUint32 {
			return Command{}, fmt.Errorf("decode %s: min quorum %d out of range", c.Op, minQuorum)
		}
		c.Autopilot.MinQuorum = uint(minQuorum)
		c.Autopilot.ServerStabilizationTime = time.Duration(d.uvarint())
	case OpSessionCreate:
		s := &c.Session
		behavior, lockDelay, ttl := d.uvarint(), d.uvarint(), d.uvarint()
		if d.err == nil && (behavior > 1 || lockDelay > math.MaxInt64 || ttl > math.MaxInt64) {
			return Command{}, fmt.Errorf("decode %s: behavior or duration out of range", c.Op)
		}
		s.Behavior = SessionRelease
		if behavior == 1 {
			s.Behavior = SessionDelete
		}
		s.LockDelay, s.TTL = time.Duration(lockDelay), time.Duration(ttl)
		s.ID, s.Name, s.Node = d.string(), d.string(), d.string()
		n := d.uvarint()
		// Each check takes at least its length byte.
		if d.err == nil && n > uint64(len(d.b)) {
			return Command{}, fmt.Errorf("decode %s: %d checks in %d bytes", c.Op, n, len(d.b))
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			s.NodeChecks = append(s.NodeChecks, d.string())
		}
	case OpSessionDestroy:
		c.Session.ID = string(d.rest())
	case OpLock, OpUnlock:
		c.Flags = d.uvarint()
		c.Session.ID = d.string()
		c.Key = d.string()
		c.Value = emptyToNil(d.rest())
	default:
		return Command{}, unknownTypeError{c.Op}
	}
	if err := d.end(); err != nil {
		return Command{}, fmt.Errorf("decode %s: %w", c.Op, err)
	}
	return c, nil
}

func emptyToNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
