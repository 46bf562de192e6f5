package consensus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// Op is a state machine operation.
type Op uint8

// Operations of the key/value state machine.
const (
	OpSet    Op = 1
	OpDelete Op = 2
)

// Command is one replicated change to the state machine.
type Command struct {
	Op    Op
	Key   string
	Value []byte
}

// Log entry layout: op (1 byte), key length (uvarint), key, value (rest).
func (c Command) encode() ([]byte, error) {
	if c.Op != OpSet && c.Op != OpDelete {
		return nil, fmt.Errorf("unknown operation %d", c.Op)
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(c.Key)+len(c.Value))
	b = append(b, byte(c.Op))
	b = binary.AppendUvarint(b, uint64(len(c.Key)))
	b = append(b, c.Key...)
	return append(b, c.Value...), nil
}

func decodeCommand(b []byte) (Command, error) {
	if len(b) < 2 {
		return Command{}, errors.New("command too short")
	}
	c := Command{Op: Op(b[0])}
	n, w := binary.Uvarint(b[1:])
	if w <= 0 || uint64(len(b)-1-w) < n {
		return Command{}, errors.New("malformed command key")
	}
	start := 1 + w
	c.Key = string(b[start : start+int(n)])
	c.Value = b[start+int(n):]
	return c, nil
}

// FSM is the replicated key/value state machine.
type FSM struct {
	mu   sync.RWMutex
	data map[string][]byte
}

// NewFSM returns an empty state machine.
func NewFSM() *FSM { return &FSM{data: make(map[string][]byte)} }

// Apply applies one committed log entry. It returns an error value (not a
// panic) for entries it cannot decode, which Node.Apply hands to the caller.
func (f *FSM) Apply(l *raft.Log) any {
	c, err := decodeCommand(l.Data)
	if err != nil {
		return fmt.Errorf("apply index %d: %w", l.Index, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case OpSet:
		f.data[c.Key] = append([]byte(nil), c.Value...)
	case OpDelete:
		delete(f.data, c.Key)
	default:
		return fmt.Errorf("apply index %d: unknown operation %d", l.Index, c.Op)
	}
	return nil
}

// Get returns the value of key.
func (f *FSM) Get(key string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok
}

// Len returns the number of keys.
func (f *FSM) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.data)
}

// Snapshot captures the current keys. Values are never modified in place,
// so sharing them with the snapshot is safe.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	cp := make(map[string][]byte, len(f.data))
	for k, v := range f.data {
		cp[k] = v
	}
	return &fsmSnapshot{data: cp}, nil
}

// Restore replaces the state with a snapshot written by Persist: a stream of
// records (key length, key, value length, value), each length a uvarint.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	r := bufio.NewReader(rc)
	data := make(map[string][]byte)
	for {
		k, err := readChunk(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		v, err := readChunk(r)
		if err != nil {
			return fmt.Errorf("restore snapshot: key %q: %w", k, io.ErrUnexpectedEOF)
		}
		data[string(k)] = v
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

// maxChunk bounds one key or value read from a snapshot, so a corrupt
// length cannot make Restore allocate without limit.
const maxChunk = 64 << 20

func readChunk(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxChunk {
		return nil, fmt.Errorf("chunk of %d bytes exceeds limit", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

type fsmSnapshot struct{ data map[string][]byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w := bufio.NewWriter(sink)
	var lenBuf [binary.MaxVarintLen64]byte
	for _, k := range keys {
		v := s.data[k]
		w.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(k)))])
		w.WriteString(k)
		w.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(v)))])
		w.Write(v)
	}
	if err := w.Flush(); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
