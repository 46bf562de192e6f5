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
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
)

// Backend names the on-disk store of the Raft log and stable state
// (Consul's raft_logstore.backend).
type Backend string

// The log store backends.
const (
	// BackendWAL is hashicorp/raft-wal in data_dir/raft/wal: append-only
	// segment files, one write and one fsync per batch, and a CRC-32C on
	// every entry, added here and checked on every read. The default for a
	// new data_dir.
	BackendWAL Backend = "wal"
	// BackendBoltDB is raft-boltdb v2 in data_dir/raft/raft.db, the store
	// of earlier versions. BoltDB keeps no checksum of the entries: a
	// changed byte in a value is read back as it is.
	BackendBoltDB Backend = "boltdb"
)

// DefaultWALSegmentSize is the size raft-wal preallocates for each segment
// file when LogStoreConfig.WALSegmentSize is 0: 64 MiB.
const DefaultWALSegmentSize = 64 << 20 // wal.DefaultSegmentSize

// LogStoreConfig selects and tunes the on-disk log store. The zero value
// keeps the backend the data_dir already has, uses wal for a new one, and
// runs no verification.
type LogStoreConfig struct {
	// Backend is the store to use. Empty means the one the data_dir was
	// created with, or BackendWAL for a new data_dir. When set, it must
	// match an existing store: New fails with ErrBackendMismatch rather
	// than start a second, empty store next to the old one.
	Backend Backend
	// WALSegmentSize is the size in bytes of each raft-wal segment file,
	// preallocated when the segment is created. 0 means
	// DefaultWALSegmentSize (64 MiB). Tests use a small one.
	WALSegmentSize int
	// Verification runs raft-wal's log verifier (see VerificationConfig).
	Verification VerificationConfig
}

// VerificationConfig configures log verification: the leader appends a
// checkpoint entry every Interval carrying the rolling checksum of the
// entries since the last one; every server, the leader too, then reads
// that range back from its own store and compares. A mismatch is fatal
// (see Config.OnFatal).
type VerificationConfig struct {
	// Enabled turns verification on. Default false.
	Enabled bool
	// Interval is the time between checkpoints. 0 means
	// DefaultVerificationInterval (60 s).
	Interval time.Duration
}

// DefaultVerificationInterval is the checkpoint interval when
// VerificationConfig.Interval is 0 (Consul's default).
const DefaultVerificationInterval = 60 * time.Second

var (
	// ErrBackendMismatch is returned (wrapped) by New when the configured
	// backend is not the one the data_dir holds, or when the data_dir holds
	// both.
	ErrBackendMismatch = errors.New("raft log store backend mismatch")
	// ErrDamagedStore is returned (wrapped) by New when the log, the stable
	// store or every snapshot on disk cannot be read back intact. The
	// message names the file and the remedy.
	ErrDamagedStore = errors.New("raft store is damaged")
	// ErrVerificationFailed is passed (wrapped) to Config.OnFatal when
	// log verification finds that this server's store does not hold what
	// the leader wrote, and returned by New while the marker file that
	// failure leaves is present.
	ErrVerificationFailed = errors.New("raft log verification failed")
)

// remedy is the advice every damaged-store error ends with.
//
// A server whose log is lost must not come back under its old identity
// with an empty log: it could vote twice in a term. So it is removed, and
// its data_dir (node-id included) wiped, and it joins as a new server.
const remedy = "remove this server from the cluster (conclave operator raft remove-peer -id=<its node ID> on another server), " +
	"wipe its data_dir and start it again to join as a new server that copies the data from the leader; " +
	"if no server has intact data, restore the cluster from a snapshot (conclave snapshot restore)"

// Names of the store files under data_dir/raft.
const (
	boltFile         = "raft.db"
	walDir           = "wal"
	snapshotsDir     = "snapshots"
	verifyFailedFile = "verification-failed"
)

// logStore is the opened log and stable store of a Node on disk.
type logStore struct {
	backend Backend
	path    string // the file or directory, for messages
	logs    raft.LogStore
	stable  raft.StableStore
	// closers close the store, in order: the verifier (when there is
	// one), the store, and raft-wal's meta database, which WAL.Close
	// leaves open.
	closers []io.Closer
}

// Close closes the store, once.
func (s *logStore) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// detectBackend reports which store dir (data_dir/raft) holds: "" for
// none, or the backend, or an error when it holds both.
func detectBackend(dir string) (Backend, error) {
	bolt := filepath.Join(dir, boltFile)
	wdir := filepath.Join(dir, walDir)
	_, errBolt := os.Stat(bolt)
	_, errWAL := os.Stat(wdir)
	hasBolt, hasWAL := errBolt == nil, errWAL == nil
	switch {
	case hasBolt && hasWAL:
		return "", fmt.Errorf("%w: %s holds both %s (boltdb) and %s/ (wal) and only one can be this server's log; "+
			"if you know which one this server last ran with, move the other aside; otherwise %s",
			ErrBackendMismatch, dir, boltFile, walDir, remedy)
	case hasBolt:
		return BackendBoltDB, nil
	case hasWAL:
		return BackendWAL, nil
	}
	for _, err := range []error{errBolt, errWAL} {
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("inspect raft store in %s: %w", dir, err)
		}
	}
	return "", nil
}

// openLogStore opens (or creates) the store in dir, data_dir/raft, after
// checking that it is the configured backend and that its files are whole.
// openSnapshots then reads every entry back (logStore.check).
func openLogStore(cfg LogStoreConfig, dir string, logger hclog.Logger) (*logStore, error) {
	if b := cfg.Backend; b != "" && b != BackendWAL && b != BackendBoltDB {
		return nil, fmt.Errorf("unknown raft log store backend %q (want %q or %q)", b, BackendWAL, BackendBoltDB)
	}
	if err := checkVerificationMarker(dir); err != nil {
		return nil, err
	}
	found, err := detectBackend(dir)
	if err != nil {
		return nil, err
	}
	backend := found
	switch {
	case found == "" && cfg.Backend == "":
		backend = BackendWAL
	case found == "":
		backend = cfg.Backend
	case cfg.Backend != "" && cfg.Backend != found:
		return nil, fmt.Errorf("%w: raft_logstore.backend is %q but %s holds a %q store (%s); "+
			"set backend = %q (or remove the setting) to keep using it, or move this server to %q the way Consul does: "+
			"leave the cluster, wipe data_dir and start again with the new backend so it rejoins and copies the data",
			ErrBackendMismatch, cfg.Backend, dir, found, storeName(found), found, cfg.Backend)
	}

	var s *logStore
	switch backend {
	case BackendBoltDB:
		s, err = openBolt(filepath.Join(dir, boltFile))
	default:
		s, err = openWAL(filepath.Join(dir, walDir), cfg.WALSegmentSize, logger)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func storeName(b Backend) string {
	if b == BackendBoltDB {
		return boltFile
	}
	return walDir + "/"
}

// damaged wraps what was found wrong with path into an ErrDamagedStore
// error that ends with the remedy.
func damaged(path string, err error) error {
	return fmt.Errorf("%w: %s: %v; %s", ErrDamagedStore, path, err, remedy)
}

// recovered turns a panic of the storage library into an error: bbolt
// panics on a damaged page ("invalid freelist page", "index out of
// range") instead of returning one. bbolt reads its file through a memory
// map, and a damaged length can make it read outside the map, which is a
// fault that crashes the process; the functions that read the stores at
// start therefore also turn on debug.SetPanicOnFault, which makes such a
// fault a panic that this recovers (Go documents it for memory-mapped
// files).
func recovered(path string, errp *error) {
	if r := recover(); r != nil {
		*errp = damaged(path, fmt.Errorf("the store library panicked reading it: %v", r))
	}
}

func openBolt(path string) (s *logStore, err error) {
	defer recovered(path, &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if err := checkBoltSize(path); err != nil {
		return nil, err
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		return nil, damaged(path, fmt.Errorf("open boltdb: %w", err))
	}
	return &logStore{backend: BackendBoltDB, path: path, logs: bolt, stable: bolt, closers: []io.Closer{bolt}}, nil
}

func openWAL(dir string, segmentSize int, logger hclog.Logger) (s *logStore, err error) {
	defer recovered(dir, &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft wal dir: %w", err)
	}
	if segmentSize <= 0 {
		segmentSize = DefaultWALSegmentSize
	}
	if err := checkSegments(dir); err != nil {
		return nil, err
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir,
		wal.WithMetaStore(meta),
		wal.WithSegmentSize(segmentSize),
		wal.WithLogger(logger.Named("wal")))
	if err != nil {
		meta.Close()
		return nil, damaged(dir, fmt.Errorf("open wal: %w", err))
	}
	return &logStore{backend: BackendWAL, path: dir, logs: checksumStore{w}, stable: w, closers: []io.Closer{w, meta}}, nil
}

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

// openSnapshots opens the snapshot store in dir (data_dir/raft) and checks
// the snapshots the way Raft will use them at start: it takes the newest
// one whose checksum matches (FileSnapshotStore.Open verifies the CRC of
// state.bin) and skips damaged ones for older ones, as Raft does. Here the
// skip is logged with the file, and a start that Raft would turn into a
// panic later is an error now: no intact snapshot at all, or an intact one
// so old that the log no longer holds the entries after it.
//
// It then checks the log (logStore.check) against the snapshot it found.
func openSnapshots(dir string, store *logStore, logger hclog.Logger) (*raft.FileSnapshotStore, error) {
	fss, used, err := findSnapshot(dir, store.logs, logger)
	if err != nil {
		return nil, err
	}
	if err := store.check(used); err != nil {
		return nil, err
	}
	return fss, nil
}

// findSnapshot opens the snapshot store and returns the index of the
// snapshot Raft will start from (0 for none); see openSnapshots.
func findSnapshot(dir string, logs raft.LogStore, logger hclog.Logger) (*raft.FileSnapshotStore, uint64, error) {
	fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
	if err != nil {
		return nil, 0, fmt.Errorf("open snapshot store in %s: %w", dir, err)
	}
	metas, err := fss.List()
	if err != nil {
		return nil, 0, damaged(filepath.Join(dir, snapshotsDir), fmt.Errorf("list snapshots: %w", err))
	}
	var skipped []string
	for _, m := range metas {
		path := filepath.Join(dir, snapshotsDir, m.ID, "state.bin")
		_, rc, err := fss.Open(m.ID)
		if err != nil {
			logger.Error("snapshot is damaged; skipping it for an older one", "path", path, "index", m.Index, "error", err)
			skipped = append(skipped, fmt.Sprintf("%s (%v)", path, err))
			continue
		}
		rc.Close()
		if len(skipped) == 0 {
			return fss, m.Index, nil
		}
		first, err := logs.FirstIndex()
		if err != nil {
			return nil, 0, damaged(path, fmt.Errorf("read first log index: %w", err))
		}
		if last, _ := logs.LastIndex(); last > 0 && first > m.Index+1 {
			return nil, 0, damaged(skipped[0], fmt.Errorf("the newest intact snapshot, %s at index %d, is older than the log, which starts at %d", path, m.Index, first))
		}
		logger.Warn("starting from an older snapshot; the log holds the entries after it", "path", path, "index", m.Index)
		return fss, m.Index, nil
	}
	if len(skipped) > 0 {
		return nil, 0, damaged(filepath.Join(dir, snapshotsDir), fmt.Errorf("no snapshot is intact: %v", skipped))
	}
	return fss, 0, nil
}

// newRaft is raft.NewRaft with a panic turned into an error: it reads the
// stores and restores the newest snapshot, all of which is data on disk.
func newRaft(rc *raft.Config, fsm raft.FSM, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport, cfg Config) (r *raft.Raft, err error) {
	defer func() {
		if p := recover(); p != nil {
			where := "memory"
			if !cfg.InMemory {
				where = filepath.Join(cfg.DataDir, "raft")
			}
			err = damaged(where, fmt.Errorf("raft panicked while reading its state: %v", p))
		}
	}()
	r, err = raft.NewRaft(rc, fsm, logs, stable, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return r, nil
}
