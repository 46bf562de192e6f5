package consensus

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
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
