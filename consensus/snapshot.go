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

// Snapshot stream format, version 3: every table of the store. Integers
// are uvarints unless noted.
//
//	header   "CNCLVKV" version(1 byte)
//	table*   tag(1 byte) rows row*
//	end      0x00 crc32c(4 bytes, big-endian)
//
// The tables come in the order of snapshotTables, each exactly once, its
// rows in strictly increasing key order:
//
//	0x01 index            namelen name value
//	0x02 meta             idlen clusterID createIndex modifyIndex                   (at most one row)
//	0x03 autopilot_config flags lastContact maxTrailing minQuorum stabilization createIndex modifyIndex (at most one row)
//	0x04 kvs              keylen key flags createIndex modifyIndex lockIndex sessionlen session valuelen value
//	0x05 tombstones       keylen key index
//	0x06 sessions         idlen id namelen name nodelen node behavior lockDelay ttl checks { len check }* createIndex modifyIndex
//
// In autopilot_config, flags is 1 for CleanupDeadServers and durations are
// nanoseconds; in sessions, behavior is 0 for release and 1 for delete, and
// durations are nanoseconds. Which session holds a key is the kvs row's
// session; lock delays are not in the stream (as in Consul, they live in
// each server's memory). The CRC-32C covers every byte before it. Nothing
// may follow it, so a stream cut anywhere, even between records, is an
// error. The ACL tables have no section yet: no command writes them, so
// they are always empty; the version that brings their commands adds
// their sections, and a new format version.
//
// Version 2 is version 3 without the sessions section (the store of tables
// before sessions), and version 1 (snapshot_v1.go) the key/value store
// before tables; both are still read.
const (
	snapshotMagic   = "CNCLVKV"
	snapshotVersion = 3

	secEnd = 0x00

	// snapshotBuffer is the bufio size on both sides, and the step in
	// which a long key or value is read.
	snapshotBuffer = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errEmptySnapshot is a stream with no bytes at all.
var errEmptySnapshot = fmt.Errorf("%w: empty stream", ErrCorruptSnapshot)

// SnapshotInfo describes a snapshot stream.
type SnapshotInfo struct {
	// Index is the highest Raft index in the stream: the applied index
	// it was taken at, or any higher index of a row.
	Index uint64
	// Entries and Tombstones count the key/value table's rows.
	Entries, Tombstones int
	// Tables counts the rows of every table in the stream, in the order
	// of the stream ("index", "meta", "autopilot_config", "kvs",
	// "tombstones", "sessions").
	Tables []TableCount
	// Size is the length of the stream in bytes.
	Size int64
}

// TableCount is the number of rows of one table in a snapshot.
type TableCount struct {
	Table string
	Rows  int
}

// InspectSnapshot reads a whole snapshot stream, checks it as Restore
// would (format, order, counts, checksum, nothing after the end) without
// keeping its contents, and describes it.
func InspectSnapshot(r io.Reader) (SnapshotInfo, error) {
	return readSnapshot(r, nil)
}

// snapshotTable is one table's section: how its rows are written and read.
type snapshotTable struct {
	tag  byte
	name string
	// single tables hold at most one row.
	single bool
	// write appends the row's record to rec, and returns a tail written
	// after it without copying (a value), and the row's highest index.
	write func(rec []byte, row any) ([]byte, []byte, uint64)
	// read reads one row and returns it, its key (for the order check) and
	// its highest index.
	read func(r *snapReader) (row any, key string, index uint64, err error)
}

var snapshotTables = []snapshotTable{
	{tag: 0x01, name: tableIndex, write: writeIndexRow, read: readIndexRow},
	{tag: 0x02, name: tableMeta, single: true, write: writeMetaRow, read: readMetaRow},
	{tag: 0x03, name: tableAutopilot, single: true, write: writeAutopilotRow, read: readAutopilotRow},
	{tag: 0x04, name: tableKVs, write: writeEntryRow, read: readEntryRow},
	{tag: 0x05, name: tableTombstones, write: writeTombstoneRow, read: readTombstoneRow},
	{tag: 0x06, name: tableSessions, write: writeSessionRow, read: readSessionRow},
}

// snapshotTablesV2 are the sections of format version 2.
var snapshotTablesV2 = snapshotTables[:5]

// hashWriter counts and checksums what goes through it to w.
type hashWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.crc = crc32.Update(h.crc, castagnoli, p[:n])
	h.n += int64(n)
	return n, err
}

func writeSnapshot(w io.Writer, v View) (SnapshotInfo, error) {
	var info SnapshotInfo
	hw := &hashWriter{w: w}
	bw := bufio.NewWriterSize(hw, snapshotBuffer)
	rec := make([]byte, 0, 128)

	rec = append(rec, snapshotMagic...)
	rec = append(rec, snapshotVersion)
	if _, err := bw.Write(rec); err != nil {
		return info, err
	}
	for _, st := range snapshotTables {
		rows := 0
		it, err := v.txn.Get(st.name, "id")
		must(err)
		for raw := it.Next(); raw != nil; raw = it.Next() {
			rows++
		}
		rec = binary.AppendUvarint(append(rec[:0], st.tag), uint64(rows))
		if _, err := bw.Write(rec); err != nil {
			return info, err
		}
		// A read transaction is immutable: the second pass sees the rows
		// the first one counted.
		it, err = v.txn.Get(st.name, "id")
		must(err)
		for raw := it.Next(); raw != nil; raw = it.Next() {
			var tail []byte
			var idx uint64
			rec, tail, idx = st.write(rec[:0], raw)
			if _, err := bw.Write(rec); err != nil {
				return info, err
			}
			if _, err := bw.Write(tail); err != nil {
				return info, err
			}
			info.Index = max(info.Index, idx)
		}
		info.count(st.name, rows)
	}
	if err := bw.WriteByte(secEnd); err != nil {
		return info, err
	}
	if err := bw.Flush(); err != nil {
		return info, err
	}
	// The checksum goes straight to w: it is not part of what it covers.
	sum := binary.BigEndian.AppendUint32(nil, hw.crc)
	if _, err := w.Write(sum); err != nil {
		return info, err
	}
	info.Size = hw.n + int64(len(sum))
	return info, nil
}

// count records a table's rows.
func (info *SnapshotInfo) count(table string, rows int) {
	info.Tables = append(info.Tables, TableCount{Table: table, Rows: rows})
	switch table {
	case tableKVs:
		info.Entries = rows
	case tableTombstones:
		info.Tombstones = rows
	}
}

func writeIndexRow(rec []byte, row any) ([]byte, []byte, uint64) {
	r := row.(*indexRow)
	rec = appendString(rec, r.Name)
	return binary.AppendUvarint(rec, r.Value), nil, r.Value
}

func writeMetaRow(rec []byte, row any) ([]byte, []byte, uint64) {
	m := row.(*ClusterMeta)
	rec = appendString(rec, m.ClusterID)
	rec = binary.AppendUvarint(rec, m.CreateIndex)
	return binary.AppendUvarint(rec, m.ModifyIndex), nil, max(m.CreateIndex, m.ModifyIndex)
}

func writeAutopilotRow(rec []byte, row any) ([]byte, []byte, uint64) {
	c := row.(*AutopilotConfig)
	var flags uint64
	if c.CleanupDeadServers {
		flags = 1
	}
	for _, v := range []uint64{flags, uint64(c.LastContactThreshold), c.MaxTrailingLogs, uint64(c.MinQuorum),
		uint64(c.ServerStabilizationTime), c.CreateIndex, c.ModifyIndex} {
		rec = binary.AppendUvarint(rec, v)
	}
	return rec, nil, max(c.CreateIndex, c.ModifyIndex)
}

func writeEntryRow(rec []byte, row any) ([]byte, []byte, uint64) {
	e := row.(*Entry)
	rec = appendString(rec, e.Key)
	for _, v := range []uint64{e.Flags, e.CreateIndex, e.ModifyIndex, e.LockIndex} {
		rec = binary.AppendUvarint(rec, v)
	}
	rec = appendString(rec, e.Session)
	return binary.AppendUvarint(rec, uint64(len(e.Value))), e.Value, max(e.CreateIndex, e.ModifyIndex)
}

func writeSessionRow(rec []byte, row any) ([]byte, []byte, uint64) {
	s := row.(*Session)
	for _, f := range []string{s.ID, s.Name, s.Node} {
		rec = appendString(rec, f)
	}
	var behavior uint64
	if s.Behavior == SessionDelete {
		behavior = 1
	}
	for _, v := range []uint64{behavior, uint64(s.LockDelay), uint64(s.TTL), uint64(len(s.NodeChecks))} {
		rec = binary.AppendUvarint(rec, v)
	}
	for _, c := range s.NodeChecks {
		rec = appendString(rec, c)
	}
	rec = binary.AppendUvarint(rec, s.CreateIndex)
	return binary.AppendUvarint(rec, s.ModifyIndex), nil, max(s.CreateIndex, s.ModifyIndex)
}

func writeTombstoneRow(rec []byte, row any) ([]byte, []byte, uint64) {
	t := row.(*tombstone)
	rec = appendString(rec, t.Key)
	return binary.AppendUvarint(rec, t.Index), nil, t.Index
}

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
