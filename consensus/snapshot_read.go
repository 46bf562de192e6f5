package consensus

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// snapReader reads the stream through a buffer, counting and checksumming
// every byte it hands out (bufio reads ahead, so the checksum cannot be
// taken below it).
type snapReader struct {
	r     *bufio.Reader
	crc   uint32
	n     int64
	ioErr error // the last error of the underlying reader other than EOF
}

// ReadByte makes snapReader an io.ByteReader for binary.ReadUvarint.
func (r *snapReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err != nil {
		if err != io.EOF {
			r.ioErr = err
		}
		return 0, err
	}
	r.crc = crc32.Update(r.crc, castagnoli, []byte{b})
	r.n++
	return b, nil
}

func (r *snapReader) uvarint(what string) (uint64, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, r.fail(what, err)
	}
	return v, nil
}

// bytes reads n bytes. The buffer grows as data arrives, a step at a time,
// so a corrupt length costs at most about twice the bytes the stream really
// holds, never the length it claims.
func (r *snapReader) bytes(what string, n uint64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if n > math.MaxInt {
		return nil, fmt.Errorf("%w: %s of %d bytes", ErrCorruptSnapshot, what, n)
	}
	size := int(n)
	buf := make([]byte, 0, min(size, snapshotBuffer))
	for len(buf) < size {
		step := min(size-len(buf), snapshotBuffer)
		if len(buf)+step > cap(buf) {
			nb := make([]byte, len(buf), min(size, max(2*cap(buf), len(buf)+step)))
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r.r, buf[len(buf):len(buf)+step])
		r.crc = crc32.Update(r.crc, castagnoli, buf[len(buf):len(buf)+m])
		r.n += int64(m)
		buf = buf[:len(buf)+m]
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				r.ioErr = err
			}
			return nil, r.fail(what, err)
		}
	}
	return buf, nil
}

// fail turns a read error into what Restore reports: the source's own
// error, or ErrCorruptSnapshot (with io.ErrUnexpectedEOF when the stream
// ends early).
func (r *snapReader) fail(what string, err error) error {
	switch {
	case r.ioErr != nil:
		return fmt.Errorf("read snapshot %s: %w", what, r.ioErr)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: truncated in %s at byte %d: %w", ErrCorruptSnapshot, what, r.n, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %s at byte %d: %v", ErrCorruptSnapshot, what, r.n, err)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

// string reads a length and that many bytes.
func (r *snapReader) string(what string) (string, error) {
	n, err := r.uvarint(what + " length")
	if err != nil {
		return "", err
	}
	b, err := r.bytes(what, n)
	return string(b), err
}

// uvarints reads one uvarint into each of ps.
func (r *snapReader) uvarints(what string, ps ...*uint64) error {
	for _, p := range ps {
		v, err := r.uvarint(what)
		if err != nil {
			return err
		}
		*p = v
	}
	return nil
}

// readSnapshot reads and checks a snapshot stream of any supported
// version. With txn it also inserts the rows into it (which Restore
// empties first); without, it keeps nothing, so a stream of any size is
// checked in bounded memory.
func readSnapshot(src io.Reader, txn *memdb.Txn) (SnapshotInfo, error) {
	var info SnapshotInfo
	r := &snapReader{r: bufio.NewReaderSize(src, snapshotBuffer)}
	if _, err := r.r.Peek(1); err == io.EOF {
		return info, errEmptySnapshot
	}
	hdr, err := r.bytes("header", uint64(len(snapshotMagic)+1))
	if err != nil {
		return info, err
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return info, corrupt("not a conclave snapshot")
	}
	l := loader{txn: txn}
	switch v := hdr[len(snapshotMagic)]; {
	case v == 1:
		err = readSnapshotV1(r, &l, &info)
	case v == 2:
		err = readTables(r, &l, &info, snapshotTablesV2)
	case v == snapshotVersion:
		err = readTables(r, &l, &info, snapshotTables)
	case v > snapshotVersion:
		return info, tooNewError(v)
	default:
		return info, corrupt("unsupported snapshot version %d", v)
	}
	if err != nil {
		return info, err
	}
	return info, r.finish(&info)
}

// tooNewError is a snapshot of a newer format version. It matches
// ErrSnapshotTooNew, and ErrCorruptSnapshot too: a damaged version byte
// looks the same, and to a caller of this release the stream is unusable
// either way.
type tooNewError byte

func (e tooNewError) Error() string {
	return fmt.Sprintf("snapshot format version %d is newer than this Conclave supports (%d): upgrade Conclave to restore it",
		byte(e), snapshotVersion)
}

// Is matches ErrSnapshotTooNew and ErrCorruptSnapshot.
func (e tooNewError) Is(target error) bool {
	return target == ErrSnapshotTooNew || target == ErrCorruptSnapshot
}

// loader inserts restored rows into a write transaction, or nowhere when
// the stream is only checked.
type loader struct{ txn *memdb.Txn }

func (l *loader) insert(table string, row any) {
	if l.txn != nil {
		must(l.txn.Insert(table, row))
	}
}

// readTables reads the sections of tables, in order, and the end record.
func readTables(r *snapReader, l *loader, info *SnapshotInfo, tables []snapshotTable) error {
	for _, st := range tables {
		tag, err := r.ReadByte()
		if err != nil {
			return r.fail("table tag", err)
		}
		if tag != st.tag {
			return corrupt("table tag %d at byte %d, want %d (%s)", tag, r.n-1, st.tag, st.name)
		}
		n, err := r.uvarint(st.name + " row count")
		if err != nil {
			return err
		}
		if st.single && n > 1 {
			return corrupt("%d rows in the single row table %s", n, st.name)
		}
		var prev string
		// n is only a bound: each row is read from bytes that arrive, so a
		// corrupt count costs nothing ahead.
		for i := uint64(0); i < n; i++ {
			row, key, idx, err := st.read(r)
			if err != nil {
				return err
			}
			if i > 0 && key <= prev {
				return corrupt("%s row %q out of order", st.name, key)
			}
			prev = key
			info.Index = max(info.Index, idx)
			l.insert(st.name, row)
		}
		info.count(st.name, int(n))
	}
	tag, err := r.ReadByte()
	if err != nil {
		return r.fail("end record", err)
	}
	if tag != secEnd {
		return corrupt("record type %d at byte %d after the last table", tag, r.n-1)
	}
	return nil
}

func readIndexRow(r *snapReader) (any, string, uint64, error) {
	row := &indexRow{}
	var err error
	if row.Name, err = r.string("index name"); err != nil {
		return nil, "", 0, err
	}
	if err := r.uvarints("index "+row.Name, &row.Value); err != nil {
		return nil, "", 0, err
	}
	return row, row.Name, row.Value, nil
}

func readMetaRow(r *snapReader) (any, string, uint64, error) {
	m := &ClusterMeta{}
	var err error
	if m.ClusterID, err = r.string("cluster ID"); err != nil {
		return nil, "", 0, err
	}
	if err := r.uvarints("cluster meta", &m.CreateIndex, &m.ModifyIndex); err != nil {
		return nil, "", 0, err
	}
	return m, "", max(m.CreateIndex, m.ModifyIndex), nil
}

func readAutopilotRow(r *snapReader) (any, string, uint64, error) {
	var flags, lastContact, minQuorum, stabilization uint64
	c := &AutopilotConfig{}
	if err := r.uvarints("autopilot config", &flags, &lastContact, &c.MaxTrailingLogs, &minQuorum,
		&stabilization, &c.CreateIndex, &c.ModifyIndex); err != nil {
		return nil, "", 0, err
	}
	if flags > 1 || lastContact > math.MaxInt64 || stabilization > math.MaxInt64 || minQuorum > math.MaxUint32 {
		return nil, "", 0, corrupt("autopilot config out of range at byte %d", r.n)
	}
	c.CleanupDeadServers = flags == 1
	c.LastContactThreshold, c.ServerStabilizationTime = time.Duration(lastContact), time.Duration(stabilization)
	c.MinQuorum = uint(minQuorum)
	return c, "", max(c.CreateIndex, c.ModifyIndex), nil
}

func readEntryRow(r *snapReader) (any, string, uint64, error) {
	e := &Entry{}
	var err error
	if e.Key, err = r.string("entry key"); err != nil {
		return nil, "", 0, err
	}
	if err := r.uvarints("entry "+e.Key, &e.Flags, &e.CreateIndex, &e.ModifyIndex, &e.LockIndex); err != nil {
		return nil, "", 0, err
	}
	if e.Session, err = r.string("session of " + e.Key); err != nil {
		return nil, "", 0, err
	}
	n, err := r.uvarint("entry " + e.Key)
	if err != nil {
		return nil, "", 0, err
	}
	if e.Value, err = r.bytes("value of "+e.Key, n); err != nil {
		return nil, "", 0, err
	}
	return e, e.Key, max(e.CreateIndex, e.ModifyIndex), nil
}

func readTombstoneRow(r *snapReader) (any, string, uint64, error) {
	t := &tombstone{}
	var err error
	if t.Key, err = r.string("tombstone key"); err != nil {
		return nil, "", 0, err
	}
	if err := r.uvarints("tombstone "+t.Key, &t.Index); err != nil {
		return nil, "", 0, err
	}
	return t, t.Key, t.Index, nil
}

func readSessionRow(r *snapReader) (any, string, uint64, error) {
	s := &Session{}
	var err error
	for _, f := range []*string{&s.ID, &s.Name, &s.Node} {
		if *f, err = r.string("session"); err != nil {
			return nil, "", 0, err
		}
	}
	var behavior, lockDelay, ttl, checks uint64
	if err := r.uvarints("session "+s.ID, &behavior, &lockDelay, &ttl, &checks); err != nil {
		return nil, "", 0, err
	}
	if behavior > 1 || lockDelay > math.MaxInt64 || ttl > math.MaxInt64 {
		return nil, "", 0, corrupt("session %q out of range at byte %d", s.ID, r.n)
	}
	s.Behavior = SessionRelease
	if behavior == 1 {
		s.Behavior = SessionDelete
	}
	s.LockDelay, s.TTL = time.Duration(lockDelay), time.Duration(ttl)
	// checks is only a bound: each check is read from bytes that arrive.
	for i := uint64(0); i < checks; i++ {
		c, err := r.string("check of session " + s.ID)
		if err != nil {
			return nil, "", 0, err
		}
		s.NodeChecks = append(s.NodeChecks, c)
	}
	if err := r.uvarints("session "+s.ID, &s.CreateIndex, &s.ModifyIndex); err != nil {
		return nil, "", 0, err
	}
	return s, s.ID, max(s.CreateIndex, s.ModifyIndex), nil
}

// finish reads and checks the checksum, and that the stream ends there.
func (r *snapReader) finish(info *SnapshotInfo) error {
	want := r.crc
	var sum [4]byte
	if _, err := io.ReadFull(r.r, sum[:]); err != nil {
		return r.fail("checksum", err)
	}
	r.n += 4
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return corrupt("checksum %08x, computed %08x", got, want)
	}
	switch _, err := r.r.ReadByte(); {
	case err == nil:
		return corrupt("data after the end record")
	case err != io.EOF:
		return fmt.Errorf("read snapshot: %w", err)
	}
	info.Size = r.n
	return nil
}
