package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
)

// checkBoltSize refuses a raft.db shorter than its own meta page says it
// is. bbolt maps the file into memory and does not check; reading a page
// past the end of a truncated file is then a SIGBUS, which no recover can
// catch. The meta pages (0 and 1) hold the page size and the high-water
// page; the valid one with the higher transaction counts, as in bbolt.
func checkBoltSize(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	const (
		pageHeader = 16         // id, flags, count, overflow
		boltMagic  = 0xED0CDAED // bbolt's
		metaLen    = 64         // magic … checksum
	)
	var page [pageHeader + metaLen]byte
	var best struct{ txid, pages, pageSize uint64 }
	found := false
	for _, off := range []int64{0, -1} {
		if off < 0 {
			if best.pageSize == 0 {
				// Page 1 lies one page in; without a valid page 0, try bbolt's usual size.
				best.pageSize = uint64(os.Getpagesize())
			}
			off = int64(best.pageSize)
		}
		if _, err := f.ReadAt(page[:], off); err != nil {
			continue
		}
		m := page[pageHeader:]
		le := binary.LittleEndian
		h := fnv.New64a()
		h.Write(m[:56])
		if le.Uint32(m[0:]) != boltMagic || le.Uint64(m[56:]) != h.Sum64() {
			continue
		}
		if txid := le.Uint64(m[48:]); !found || txid > best.txid {
			best.txid, best.pages, best.pageSize = txid, le.Uint64(m[40:]), uint64(le.Uint32(m[8:]))
			found = true
		}
	}
	if !found {
		return nil // bbolt reports an invalid file itself
	}
	if want := best.pages * best.pageSize; uint64(fi.Size()) < want {
		return damaged(path, fmt.Errorf("the file is %d bytes but its pages reach to %d: it was truncated", fi.Size(), want))
	}
	return nil
}

// checkSegments compares the segment files in dir with the list raft-wal
// keeps in its meta database, before raft-wal opens them. raft-wal treats a
// missing or short tail segment as a crash before the first write and
// silently starts it again empty; here a file that is missing or shorter
// than the size it was preallocated to means entries were lost, and is an
// error.
func checkSegments(dir string) (err error) {
	meta := filepath.Join(dir, metadb.FileName)
	if _, err := os.Stat(meta); errors.Is(err, os.ErrNotExist) {
		return nil // a new store
	}
	defer recovered(meta, &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db metadb.BoltMetaDB
	defer db.Close()
	state, err := db.Load(dir)
	if err != nil {
		return damaged(meta, fmt.Errorf("read wal meta database: %w", err))
	}
	for _, si := range state.Segments {
		path := filepath.Join(dir, segment.FileName(si))
		fi, err := os.Stat(path)
		if err != nil {
			return damaged(path, fmt.Errorf("segment from index %d is listed in %s but cannot be read: %w", si.BaseIndex, metadb.FileName, err))
		}
		if fi.Size() < int64(si.SizeLimit) {
			return damaged(path, fmt.Errorf("segment from index %d is %d bytes, shorter than the %d it was created with: it was truncated", si.BaseIndex, fi.Size(), si.SizeLimit))
		}
		if si.SealTime.IsZero() {
			if err := checkTail(path); err != nil {
				return err
			}
		}
	}
	return nil
}

// Frame layout of raft-wal's segment files (see its README): a 32-byte
// file header, then frames of an 8-byte header (type, 3 reserved bytes, a
// little-endian length or, for a commit frame, a CRC-32C) and a payload
// padded to 8 bytes. Each write batch ends with a commit frame whose CRC
// covers everything since the previous commit frame (the first: since the
// start of the file).
const (
	walFileHeader  = 32
	walFrameHeader = 8
	walFrameCommit = 3
	walFrameTypes  = 3 // entry 1, index 2, commit 3
)

// checkTail finds damage that raft-wal's recovery would take for a torn
// write. Recovering the tail segment, raft-wal walks the frames from the
// start and stops at the first header it cannot read, and keeps what the
// commits before it hold: the end of a write cut short by a crash. But a
// crash can only tear the last batch; if a complete batch (a commit frame
// whose CRC matches the bytes since the commit frame before it) lies after
// the point where the walk stops, committed entries would be dropped
// silently. That is an error here.
func checkTail(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var (
		buf       = make([]byte, 64<<10)
		crc       uint32 // since the last commit-like frame header
		pos       int64  // offset of buf[0]
		nextFrame = int64(walFileHeader)
		stopped   = int64(-1) // where the walk of frame headers stopped
	)
	for {
		n, err := io.ReadFull(f, buf)
		n -= n % walFrameHeader
		chunk := buf[:n]
		from := 0 // the start of chunk not yet in crc
		for i := 0; i < n; i += walFrameHeader {
			off := pos + int64(i)
			h := chunk[i : i+walFrameHeader]
			if stopped < 0 && off >= walFileHeader && off == nextFrame {
				typ, length := h[0], binary.LittleEndian.Uint32(h[4:])
				switch {
				case typ == 0 || typ > walFrameTypes || h[1]|h[2]|h[3] != 0:
					stopped = off
				case typ == walFrameCommit:
					nextFrame += walFrameHeader
				default:
					nextFrame += walFrameHeader + int64(length+7)&^7
				}
			}
			if off < walFileHeader || h[0] != walFrameCommit || h[1]|h[2]|h[3] != 0 {
				continue
			}
			crc = crc32.Update(crc, entryCRCTable, chunk[from:i])
			from = i + walFrameHeader
			if stopped >= 0 && off > stopped && crc == binary.LittleEndian.Uint32(h[4:]) {
				return damaged(path, fmt.Errorf("the frame at offset %d cannot be read, but a complete write batch follows at offset %d: "+
					"the segment was damaged after it was written (raft-wal would drop the entries after offset %d as a torn write)", stopped, off, stopped))
			}
			crc = 0
		}
		crc = crc32.Update(crc, entryCRCTable, chunk[from:])
		pos += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// check reads every entry of the log back, and the stable store's keys,
// before Raft sees them. Raft panics when a log entry it needs cannot be
// read; reading them all here turns that into an error at start that
// names the file. With wal every entry's checksum is verified; with boltdb
// only its structure is (a bbolt panic is recovered). Entries up to
// snapshot, the index of the snapshot Raft will start from, may be
// missing: after a restore from a snapshot boltdb keeps the older entries
// and the log jumps past the snapshot's index.
func (s *logStore) check(snapshot uint64) (err error) {
	defer recovered(s.path, &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	first, err := s.logs.FirstIndex()
	if err != nil {
		return damaged(s.path, fmt.Errorf("read first index: %w", err))
	}
	last, err := s.logs.LastIndex()
	if err != nil {
		return damaged(s.path, fmt.Errorf("read last index: %w", err))
	}
	if last > 0 && first == 0 || first > last+1 {
		return damaged(s.path, fmt.Errorf("log index range %d-%d is inconsistent", first, last))
	}
	var prevTerm uint64
	for i := first; last > 0 && i <= last; i++ {
		var l raft.Log
		err := s.logs.GetLog(i, &l)
		if errors.Is(err, raft.ErrLogNotFound) && i <= snapshot {
			continue
		}
		if err != nil {
			return damaged(s.fileOf(i), fmt.Errorf("read log entry %d (of %d-%d): %w", i, first, last, err))
		}
		if l.Index != i {
			return damaged(s.path, fmt.Errorf("log entry %d reads back as index %d", i, l.Index))
		}
		if l.Term < prevTerm {
			return damaged(s.path, fmt.Errorf("log entry %d has term %d, lower than the %d before it", i, l.Term, prevTerm))
		}
		prevTerm = l.Term
	}
	for _, key := range []string{"CurrentTerm", "LastVoteTerm"} {
		if _, err := s.stable.GetUint64([]byte(key)); err != nil && !isNotFound(err) {
			return damaged(s.path, fmt.Errorf("read %s: %w", key, err))
		}
	}
	return nil
}

// fileOf names the file that holds log entry index: raft.db, or the wal
// segment whose first index is the highest at or below index (segment
// files are named after their first index).
func (s *logStore) fileOf(index uint64) string {
	if s.backend != BackendWAL {
		return s.path
	}
	files, _ := filepath.Glob(filepath.Join(s.path, "*.wal"))
	best, bestBase := s.path, uint64(0)
	for _, f := range files {
		var base, id uint64
		if _, err := fmt.Sscanf(filepath.Base(f), "%020d-%016x.wal", &base, &id); err == nil && base <= index && base >= bestBase {
			best, bestBase = f, base
		}
	}
	return best
}

// isNotFound reports a key that is absent from the stable store, which is
// normal for a new store. Each backend says so in its own way.
func isNotFound(err error) bool {
	return errors.Is(err, wal.ErrNotFound) || errors.Is(err, raftboltdb.ErrKeyNotFound)
}

// checksumStore wraps raft-wal's log store with a CRC-32C (Castagnoli) on
// every entry, checked on every read. raft-wal itself checks a CRC only
// over the last batch of the tail segment when it recovers from a crash,
// so a byte that changes later inside a stored entry would otherwise be
// read back as it is. (Its Codec option cannot carry the checksum: v0.4.0
// records the built-in codec in every segment it creates and then refuses
// to reopen them with any other.)
//
// The checksum covers the index, term, type, data and extensions, and is
// stored as 4 bytes after the data. checksumStore also answers
// raft.ErrLogNotFound below FirstIndex: raft-wal still returns entries of
// a compacted range while their segment remains, which would make the
// leader replay a long-compacted log instead of sending a snapshot.
type checksumStore struct {
	w *wal.WAL
}

// errEntryChecksum is the error a damaged entry reads back with.
var errEntryChecksum = fmt.Errorf("%w: log entry checksum mismatch", wal.ErrCorrupt)

// entryCRCTable is CRC-32C's; the snapshot stream uses the same one.
var entryCRCTable = crc32.MakeTable(crc32.Castagnoli)

func entryChecksum(l *raft.Log, data []byte) uint32 {
	var hdr [8 * 3]byte
	binary.BigEndian.PutUint64(hdr[0:], l.Index)
	binary.BigEndian.PutUint64(hdr[8:], l.Term)
	binary.BigEndian.PutUint64(hdr[16:], uint64(l.Type))
	sum := crc32.Update(0, entryCRCTable, hdr[:])
	sum = crc32.Update(sum, entryCRCTable, data)
	return crc32.Update(sum, entryCRCTable, l.Extensions)
}

func (s checksumStore) FirstIndex() (uint64, error) { return s.w.FirstIndex() }
func (s checksumStore) LastIndex() (uint64, error)  { return s.w.LastIndex() }
func (s checksumStore) IsMonotonic() bool           { return s.w.IsMonotonic() }
func (s checksumStore) Close() error                { return s.w.Close() }

func (s checksumStore) DeleteRange(min, max uint64) error { return s.w.DeleteRange(min, max) }

func (s checksumStore) GetLog(index uint64, l *raft.Log) error {
	if first, err := s.w.FirstIndex(); err != nil {
		return err
	} else if index < first {
		return raft.ErrLogNotFound
	}
	if err := s.w.GetLog(index, l); err != nil {
		return err
	}
	if l.Index != index {
		return fmt.Errorf("%w: log entry %d reads back as index %d", wal.ErrCorrupt, index, l.Index)
	}
	if len(l.Data) < 4 {
		return fmt.Errorf("%w: log entry %d has no checksum", wal.ErrCorrupt, index)
	}
	data, sum := l.Data[:len(l.Data)-4], binary.BigEndian.Uint32(l.Data[len(l.Data)-4:])
	if entryChecksum(l, data) != sum {
		return fmt.Errorf("log entry %d: %w", index, errEntryChecksum)
	}
	l.Data = data
	return nil
}

func (s checksumStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s checksumStore) StoreLogs(logs []*raft.Log) error {
	// Raft shares each entry's Data with its cache and the replication to
	// followers, so the copies carry the checksum, not the originals.
	out := make([]*raft.Log, len(logs))
	entries := make([]raft.Log, len(logs))
	for i, l := range logs {
		e := &entries[i]
		*e = *l
		e.Data = binary.BigEndian.AppendUint32(append(make([]byte, 0, len(l.Data)+4), l.Data...), entryChecksum(l, l.Data))
		out[i] = e
	}
	return s.w.StoreLogs(out)
}
