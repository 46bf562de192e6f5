package consensus

// Snapshot stream format version 1: the key/value store before tables.
// Servers of that release wrote it, so it is still read (never written).
// Integers are uvarints unless noted.
//
//	header     "CNCLVKV" 0x01
//	meta       applied kvIndex reapThrough reapIndex
//	entry*     0x01 keylen key flags createIndex modifyIndex lockIndex valuelen value
//	tombstone* 0x02 keylen key index
//	end        0x03 entries tombstones crc32c(4 bytes, big-endian)
//
// Entries come in strictly increasing key order, then tombstones likewise.
// The meta fields become rows of the index table.
const (
	recEntry     = 0x01
	recTombstone = 0x02
	recEnd       = 0x03
)

func readSnapshotV1(r *snapReader, l *loader, info *SnapshotInfo) error {
	var applied, kvIndex, reapThrough, reapIndex uint64
	if err := r.uvarints("header", &applied, &kvIndex, &reapThrough, &reapIndex); err != nil {
		return err
	}
	info.Index = max(applied, kvIndex, reapIndex)
	indexRows := 0
	for _, row := range []indexRow{
		// In name order, as a table is.
		{idxApplied, applied}, {tableKVs, kvIndex}, {idxReapIndex, reapIndex}, {idxReapThrough, reapThrough},
	} {
		if row.Value != 0 {
			l.insert(tableIndex, &row)
			indexRows++
		}
	}

	var prev *string
	inTombs := false
	for {
		tag, err := r.ReadByte()
		if err != nil {
			return r.fail("record tag", err)
		}
		switch tag {
		case recEntry:
			if inTombs {
				return corrupt("entry after tombstones")
			}
			e, err := r.entryV1()
			if err != nil {
				return err
			}
			if prev != nil && e.Key <= *prev {
				return corrupt("entry %q out of order", e.Key)
			}
			prev = &e.Key
			info.Entries++
			info.Index = max(info.Index, e.CreateIndex, e.ModifyIndex)
			l.insert(tableKVs, e)
		case recTombstone:
			if !inTombs {
				inTombs, prev = true, nil
			}
			t, err := r.tombstoneV1()
			if err != nil {
				return err
			}
			if prev != nil && t.Key <= *prev {
				return corrupt("tombstone %q out of order", t.Key)
			}
			prev = &t.Key
			info.Tombstones++
			info.Index = max(info.Index, t.Index)
			l.insert(tableTombstones, t)
		case recEnd:
			return r.endV1(info, indexRows)
		default:
			return corrupt("unknown record type %d at byte %d", tag, r.n-1)
		}
	}
}

func (r *snapReader) entryV1() (*Entry, error) {
	e := &Entry{}
	var err error
	if e.Key, err = r.string("entry key"); err != nil {
		return nil, err
	}
	if err := r.uvarints("entry "+e.Key, &e.Flags, &e.CreateIndex, &e.ModifyIndex, &e.LockIndex); err != nil {
		return nil, err
	}
	n, err := r.uvarint("entry " + e.Key)
	if err != nil {
		return nil, err
	}
	if e.Value, err = r.bytes("value of "+e.Key, n); err != nil {
		return nil, err
	}
	return e, nil
}

// tombstoneV1 reads a version 1 tombstone record after its tag.
func (r *snapReader) tombstoneV1() (*tombstone, error) {
	t := &tombstone{}
	var err error
	if t.Key, err = r.string("tombstone key"); err != nil {
		return nil, err
	}
	if err := r.uvarints("tombstone index", &t.Index); err != nil {
		return nil, err
	}
	return t, nil
}

// endV1 reads a version 1 end record after its tag, checks its counts
// against the records read, and counts the rows of each table.
func (r *snapReader) endV1(info *SnapshotInfo, indexRows int) error {
	var entries, tombs uint64
	if err := r.uvarints("end record", &entries, &tombs); err != nil {
		return err
	}
	if entries != uint64(info.Entries) || tombs != uint64(info.Tombstones) {
		return corrupt("end record counts %d entries and %d tombstones, stream holds %d and %d",
			entries, tombs, info.Entries, info.Tombstones)
	}
	entriesN, tombsN := info.Entries, info.Tombstones
	info.count(tableIndex, indexRows)
	info.count(tableKVs, entriesN)
	info.count(tableTombstones, tombsN)
	return nil
}
