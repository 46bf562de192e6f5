package consensus

import (
	"errors"
	"fmt"
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
