package consensus

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/conclavehq/conclave/consensus/archive"
)

// SnapshotArchiveMeta is what an archive's meta.json says of the snapshot
// in it, in this package's types.
type SnapshotArchiveMeta struct {
	// ID, Index and Term are Raft's: "term-index-milliseconds", the
	// highest index in the state, and the term at the time.
	ID          string
	Index, Term uint64
	// Servers and ConfigurationIndex are the Raft configuration.
	Servers            []Server
	ConfigurationIndex uint64
	// Size is the length of the state stream, state.bin.
	Size int64
}

// SaveArchive writes the local state to w as a snapshot archive in Consul's
// format (consensus/archive): meta.json (index, term, the configuration,
// the state's size), the snapshot stream SaveSnapshot writes as
// state.bin, and SHA256SUMS. Since meta.json comes first and holds the
// stream's size, the stream is written to a temporary file first (in
// data_dir/raft, or the system's temporary directory in memory mode).
func (n *Node) SaveArchive(w io.Writer) (SnapshotInfo, error) {
	tmp, err := n.tempFile("save-*.snap")
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	info, err := writeSnapshot(tmp, n.fsm.View())
	if err != nil {
		return info, fmt.Errorf("write snapshot stream: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return info, fmt.Errorf("rewind snapshot stream: %w", err)
	}
	servers, confIndex, err := n.Configuration()
	if err != nil {
		return info, err
	}
	stats := n.raft.Stats()
	// The term of the applied index: the last entry's when the state is
	// current, else the current term, which is at least as high.
	term, _ := strconv.ParseUint(stats["term"], 10, 64)
	if stats["last_log_index"] == strconv.FormatUint(info.Index, 10) {
		term, _ = strconv.ParseUint(stats["last_log_term"], 10, 64)
	}
	meta := archive.Meta{
		Version:            raft.SnapshotVersionMax,
		ID:                 fmt.Sprintf("%d-%d-%d", term, info.Index, time.Now().UnixMilli()),
		Index:              info.Index,
		Term:               term,
		Configuration:      toRaftConfiguration(servers),
		ConfigurationIndex: confIndex,
		Size:               info.Size,
	}
	if err := archive.Write(w, meta, tmp); err != nil {
		return info, err
	}
	return info, nil
}

// RestoreArchive is RestoreSnapshot for a snapshot archive: it checks the
// archive in full (archive.Read: checksums and sizes) into a temporary
// file, then restores the state stream in it. A damaged archive is an
// error that matches ErrCorruptSnapshot and the archive's own sentinel,
// such as archive.ErrChecksum.
func (n *Node) RestoreArchive(ctx context.Context, r io.Reader) (SnapshotInfo, error) {
	tmp, err := n.tempFile("restore-*.tar.gz")
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if _, err := ReadArchive(r, tmp); err != nil {
		return SnapshotInfo{}, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return SnapshotInfo{}, fmt.Errorf("rewind restore file: %w", err)
	}
	return n.RestoreSnapshot(ctx, tmp)
}

// ReadArchive reads a snapshot archive from r, copies its state stream to
// stateTo and returns its metadata once every check passed. A damaged
// archive is an error that matches ErrCorruptSnapshot and the archive's
// sentinel; an error of stateTo is returned as it is.
func ReadArchive(r io.Reader, stateTo io.Writer) (SnapshotArchiveMeta, error) {
	sw := &stateWriter{w: stateTo}
	m, err := archive.Read(r, sw)
	switch {
	case err != nil && sw.err != nil:
		return SnapshotArchiveMeta{}, err
	case err != nil:
		return SnapshotArchiveMeta{}, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	out := SnapshotArchiveMeta{ID: m.ID, Index: m.Index, Term: m.Term, ConfigurationIndex: m.ConfigurationIndex, Size: m.Size}
	for _, s := range m.Configuration.Servers {
		out.Servers = append(out.Servers, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// IsArchive reports whether a snapshot file or body that begins with
// prefix (its first two bytes suffice) is an archive (gzip) rather than a
// plain snapshot stream, which begins "CNCLVKV".
func IsArchive(prefix []byte) bool {
	return len(prefix) >= 2 && prefix[0] == 0x1f && prefix[1] == 0x8b
}

// stateWriter remembers whether an error came from the writer, so that it
// is not taken for a defect of the archive.
type stateWriter struct {
	w   io.Writer
	err error
}

func (s *stateWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// tempFile creates a temporary file where RestoreSnapshot keeps its own.
func (n *Node) tempFile(pattern string) (*os.File, error) {
	dir := os.TempDir()
	if !n.cfg.InMemory {
		dir = filepath.Join(n.cfg.DataDir, "raft")
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("create snapshot file: %w", err)
	}
	return f, nil
}

func toRaftConfiguration(servers []Server) raft.Configuration {
	var c raft.Configuration
	for _, s := range servers {
		suffrage := raft.Nonvoter
		if s.Voter {
			suffrage = raft.Voter
		}
		c.Servers = append(c.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address)})
	}
	return c
}
