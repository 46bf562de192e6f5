package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

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
	size, err := c.encodedSize()
	if err != nil {
		return nil, err
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
		b = appendTxn(b, c.Ops)
	case OpReapTombstones:
		b = binary.AppendUvarint(b, c.Index)
	case OpSetClusterMeta:
		b = append(b, c.ClusterID...)
	case OpSetAutopilotConfig:
		b = appendAutopilot(b, c)
	case OpSessionCreate:
		b = appendSessionCreate(b, c.Session)
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

// encodedSize bounds the length of c's log entry, and checks that its
// verbs are known.
func (c Command) encodedSize() (int, error) {
	size := 1 + 3*binary.MaxVarintLen64 + len(c.Key) + len(c.Value)
	for _, op := range c.Ops {
		if !op.Verb.valid() {
			return 0, fmt.Errorf("%w: unknown KV verb %d", ErrInvalidCommand, op.Verb)
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
	return size, nil
}

// appendTxn appends a txn's count and operations.
func appendTxn(b []byte, ops []TxnOp) []byte {
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
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
	return b
}

// appendAutopilot appends a set-autopilot-config's flags, index and settings.
func appendAutopilot(b []byte, c Command) []byte {
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
	return b
}

// appendSessionCreate appends a session-create's session.
func appendSessionCreate(b []byte, s Session) []byte {
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
	return b
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
		ops, err := d.txn()
		if err != nil {
			return Command{}, err
		}
		c.Ops = ops
	case OpReapTombstones:
		c.Index = d.uvarint()
	case OpSetClusterMeta:
		c.ClusterID = string(d.rest())
	case OpSetAutopilotConfig:
		if err := d.autopilot(&c); err != nil {
			return Command{}, err
		}
	case OpSessionCreate:
		if err := d.sessionCreate(&c); err != nil {
			return Command{}, err
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

// txn reads a txn's count and operations. Its errors are final: the
// caller returns them as they are.
func (d *decoder) txn() ([]TxnOp, error) {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minTxnOp) {
		return nil, fmt.Errorf("txn of %d operations in %d bytes", n, len(d.b))
	}
	var ops []TxnOp
	if n > 0 {
		ops = make([]TxnOp, n)
	}
	for i := range ops {
		op := &ops[i]
		if d.err != nil {
			break
		}
		if len(d.b) == 0 {
			return nil, fmt.Errorf("decode txn op %d: %w", i, errTruncated)
		}
		op.Verb = Verb(d.b[0])
		d.b = d.b[1:]
		if !op.Verb.valid() {
			return nil, fmt.Errorf("decode txn op %d: unknown KV verb %d", i, op.Verb)
		}
		op.Flags = d.uvarint()
		op.Index = d.uvarint()
		op.Key = d.string()
		op.Value = emptyToNil(d.bytes(d.uvarint()))
		if op.Verb.hasSession() {
			op.Session = d.string()
		}
	}
	return ops, nil
}

// autopilot reads a set-autopilot-config's flags, index and settings into
// c. Its errors are final: the caller returns them as they are.
func (d *decoder) autopilot(c *Command) error {
	flags := d.uvarint()
	if d.err == nil && flags&^(autopilotCAS|autopilotCleanup) != 0 {
		return fmt.Errorf("decode %s: unknown flags %#x", c.Op, flags)
	}
	c.CAS, c.Autopilot.CleanupDeadServers = flags&autopilotCAS != 0, flags&autopilotCleanup != 0
	c.Index = d.uvarint()
	c.Autopilot.LastContactThreshold = time.Duration(d.uvarint())
	c.Autopilot.MaxTrailingLogs = d.uvarint()
	minQuorum := d.uvarint()
	if minQuorum > math.MaxUint32 {
		return fmt.Errorf("decode %s: min quorum %d out of range", c.Op, minQuorum)
	}
	c.Autopilot.MinQuorum = uint(minQuorum)
	c.Autopilot.ServerStabilizationTime = time.Duration(d.uvarint())
	return nil
}

// sessionCreate reads a session-create's session into c. Its errors are
// final: the caller returns them as they are.
func (d *decoder) sessionCreate(c *Command) error {
	s := &c.Session
	behavior, lockDelay, ttl := d.uvarint(), d.uvarint(), d.uvarint()
	if d.err == nil && (behavior > 1 || lockDelay > math.MaxInt64 || ttl > math.MaxInt64) {
		return fmt.Errorf("decode %s: behavior or duration out of range", c.Op)
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
		return fmt.Errorf("decode %s: %d checks in %d bytes", c.Op, n, len(d.b))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		s.NodeChecks = append(s.NodeChecks, d.string())
	}
	return nil
}

func emptyToNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
