package consensus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/conclavehq/conclave/test/testutil"
)

// testSegmentSize keeps raft-wal's preallocated segments small in tests.
const testSegmentSize = 256 << 10

var backends = []Backend{BackendWAL, BackendBoltDB}

// syncBuffer collects log output for assertions.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openStoreNode opens a node on dir with backend and the given segment
// size, logging to the test and to logs (when not nil).
func openStoreNode(t *testing.T, dir string, backend Backend, logs *syncBuffer) (*Node, error) {
	t.Helper()
	stream, err := NewTCPStream("127.0.0.1:0", "127.0.0.1")
	if err != nil {
		t.Fatalf("NewTCPStream: %v", err)
	}
	logger := testutil.Logger(t)
	if logs != nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: logs})
	}
	n, err := New(Config{
		ID: "node-1", Name: "node-1", Stream: stream, DataDir: dir, Logger: logger,
		LogStore:     LogStoreConfig{Backend: backend, WALSegmentSize: testSegmentSize},
		MaxValueSize: testMaxValueSize,
	})
	if err != nil {
		stream.Close()
		return nil, err
	}
	t.Cleanup(func() { n.Shutdown() })
	return n, nil
}

// marker is the value prefix written by fillStore, found in the files by
// the damage helpers.
const marker = "value-MARKER-"

// fillStore bootstraps a single server on dir, writes count keys whose
// values begin with marker and are size bytes long, and shuts it down. It
// returns the values written.
func fillStore(t *testing.T, dir string, backend Backend, count, size int, snapshotEvery int) map[string]string {
	t.Helper()
	n, err := openStoreNode(t, dir, backend, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n)
	ctx := ctxFor(t)
	want := make(map[string]string)
	for i := range count {
		k := fmt.Sprintf("key-%04d", i)
		v := fmt.Sprintf("%s%04d-", marker, i)
		v += strings.Repeat("x", max(0, size-len(v)))
		if _, err := n.Apply(ctx, set(k, v)); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
		want[k] = v
		if snapshotEvery > 0 && (i+1)%snapshotEvery == 0 {
			if err := n.raft.Snapshot().Error(); err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
		}
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	return want
}

// storeFiles are the files that hold the log of backend in dir, oldest
// segment first.
func storeFiles(t *testing.T, dir string, backend Backend) []string {
	t.Helper()
	if backend == BackendBoltDB {
		return []string{filepath.Join(dir, "raft", boltFile)}
	}
	files, err := filepath.Glob(filepath.Join(dir, "raft", walDir, "*.wal"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no wal segments in %s: %v", dir, err)
	}
	slices.Sort(files)
	return files
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkServes restarts the node on dir and checks that every value it
// serves is one that was written; it returns how many keys are missing.
func checkServes(t *testing.T, n *Node, want map[string]string) (wrong []string) {
	t.Helper()
	waitForLeader(t, n)
	// The restarted leader commits an entry of its term, after which
	// everything before it is applied.
	if _, err := n.Apply(ctxFor(t), set("after-restart", "1")); err != nil {
		t.Fatalf("Apply after restart: %v", err)
	}
	for k, v := range want {
		if e, ok := n.Get(k); ok && string(e.Value) != v {
			wrong = append(wrong, k)
		}
	}
	return wrong
}

// checkDamaged asserts that err is ErrDamagedStore naming path and saying
// what to do.
func checkDamaged(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrDamagedStore) {
		t.Fatalf("New on a damaged store = %v, want ErrDamagedStore", err)
	}
	for _, s := range []string{path, "wipe its data_dir", "restore the cluster from a snapshot"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestStoreBackendSelection(t *testing.T) {
	tests := []struct {
		name     string
		existing Backend // "" for a new data_dir; "both" for both stores
		both     bool
		config   Backend
		want     Backend // "" when New must fail with ErrBackendMismatch
		mentions []string
	}{
		{name: "new default", config: "", want: BackendWAL},
		{name: "new wal", config: BackendWAL, want: BackendWAL},
		{name: "new boltdb", config: BackendBoltDB, want: BackendBoltDB},
		{name: "boltdb kept", existing: BackendBoltDB, config: "", want: BackendBoltDB},
		{name: "wal kept", existing: BackendWAL, config: "", want: BackendWAL},
		{name: "boltdb configured wal", existing: BackendBoltDB, config: BackendWAL,
			mentions: []string{`backend is "wal"`, `holds a "boltdb" store (raft.db)`, "wipe data_dir"}},
		{name: "wal configured boltdb", existing: BackendWAL, config: BackendBoltDB,
			mentions: []string{`backend is "boltdb"`, `holds a "wal" store (wal/)`, "wipe data_dir"}},
		{name: "both", existing: BackendWAL, both: true, config: "",
			mentions: []string{"both raft.db (boltdb) and wal/ (wal)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.existing != "" {
				want := fillStore(t, dir, tc.existing, 3, 10, 0)
				if tc.both {
					mustWrite(t, filepath.Join(dir, "raft", boltFile), nil)
				}
				_ = want
			}
			n, err := openStoreNode(t, dir, tc.config, nil)
			if tc.want == "" {
				if !errors.Is(err, ErrBackendMismatch) {
					t.Fatalf("New = %v, want ErrBackendMismatch", err)
				}
				for _, s := range tc.mentions {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				// No second store was started next to the first.
				if got, _ := detectBackend(filepath.Join(dir, "raft")); !tc.both && got != tc.existing {
					t.Errorf("after the refusal the data_dir holds %q, want only %q", got, tc.existing)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if n.store.backend != tc.want {
				t.Errorf("backend = %q, want %q", n.store.backend, tc.want)
			}
			if tc.existing != "" {
				waitForLeader(t, n)
				waitForValue(t, n, "key-0002", marker+"0002-")
			}
		})
	}
}

func TestDamagedStoreTruncated(t *testing.T) {
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			dir := t.TempDir()
			fillStore(t, dir, backend, 50, 100, 0)
			files := storeFiles(t, dir, backend)
			path := files[len(files)-1]
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			_, err = openStoreNode(t, dir, backend, nil)
			checkDamaged(t, err, path)
		})
	}
}

// TestDamagedStoreChangedValue changes one byte inside a stored value, as
// a disk that returns bad data would. With wal the entry's checksum fails
// and the server refuses to start; boltdb keeps no checksum of its
// entries, so the changed value is replayed: that is the documented reason
// to prefer wal, or to run log verification.
func TestDamagedStoreChangedValue(t *testing.T) {
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			dir := t.TempDir()
			want := fillStore(t, dir, backend, 20, 64, 0)
			files := storeFiles(t, dir, backend)
			path := files[len(files)-1]
			b := mustRead(t, path)
			target := []byte(marker + "0007-")
			changed := 0
			for i := 0; ; {
				j := bytes.Index(b[i:], target)
				if j < 0 {
					break
				}
				b[i+j+len(target)] ^= 0x01 // the first "x" after the marker
				changed++
				i += j + len(target)
			}
			if changed == 0 {
				t.Fatalf("value of key-0007 not found in %s", path)
			}
			mustWrite(t, path, b)

			n, err := openStoreNode(t, dir, backend, nil)
			if backend == BackendWAL {
				checkDamaged(t, err, path)
				if !strings.Contains(err.Error(), "checksum mismatch") {
					t.Errorf("error %q does not say the checksum failed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New on boltdb with a changed value byte = %v; boltdb has no entry checksum, want it to open", err)
			}
			wrong := checkServes(t, n, want)
			if !slices.Equal(wrong, []string{"key-0007"}) {
				t.Errorf("boltdb served wrong values for %v, want exactly [key-0007] (the known limitation); update the docs if this changed", wrong)
			}
		})
	}
}

// TestDamagedStoreRandomBytes writes 64 random bytes into the middle of
// the store: for wal into an older (sealed) segment, for boltdb into the
// middle of raft.db. Neither may panic; wal must refuse to start.
func TestDamagedStoreRandomBytes(t *testing.T) {
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			dir := t.TempDir()
			// Enough data for several wal segments.
			want := fillStore(t, dir, backend, 300, 2000, 0)
			files := storeFiles(t, dir, backend)
			path := files[0]
			if backend == BackendWAL && len(files) < 2 {
				t.Fatalf("want several wal segments, got %v", files)
			}
			b := mustRead(t, path)
			end := len(b)
			if backend == BackendWAL {
				// Segments are preallocated: damage the middle of what was written.
				end = len(bytes.TrimRight(b, "\x00"))
			}
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 64 {
				b[end/2+i] = byte(r.UintN(256))
			}
			mustWrite(t, path, b)

			n, err := openStoreNode(t, dir, backend, nil)
			if backend == BackendWAL {
				checkDamaged(t, err, path)
				return
			}
			switch {
			case errors.Is(err, ErrDamagedStore):
				checkDamaged(t, err, path)
			case err != nil:
				t.Fatalf("New = %v, want nil or ErrDamagedStore", err)
			default:
				t.Logf("boltdb opened after 64 random bytes in the middle; wrong values: %v", checkServes(t, n, want))
			}
		})
	}
}

// TestBoltPanicRecovered damages every page of raft.db past the meta
// pages; bbolt panics reading it, and the panic becomes ErrDamagedStore.
func TestBoltPanicRecovered(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, BackendBoltDB, 50, 100, 0)
	path := storeFiles(t, dir, BackendBoltDB)[0]
	b := mustRead(t, path)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 2 * os.Getpagesize(); i < len(b); i++ {
		b[i] = byte(r.UintN(256))
	}
	mustWrite(t, path, b)
	_, err := openStoreNode(t, dir, BackendBoltDB, nil)
	checkDamaged(t, err, path)
}

// TestDamagedSnapshot damages the newest snapshot file: Raft skips it for
// the older one, which is logged with the file, and the server serves the
// right values (the log still holds the entries after the older one).
// With both snapshots damaged it refuses to start.
func TestDamagedSnapshot(t *testing.T) {
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			dir := t.TempDir()
			want := fillStore(t, dir, backend, 40, 50, 15) // snapshots at 15 and 30 writes
			snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, "raft"), 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			metas, err := snaps.List()
			if err != nil || len(metas) != 2 {
				t.Fatalf("snapshots = %v, %v; want 2", metas, err)
			}
			newest := filepath.Join(dir, "raft", snapshotsDir, metas[0].ID, "state.bin")
			b := mustRead(t, newest)
			b[len(b)/2] ^= 0xff
			mustWrite(t, newest, b)

			logs := &syncBuffer{}
			n, err := openStoreNode(t, dir, backend, logs)
			if err != nil {
				t.Fatalf("New with the newest snapshot damaged: %v", err)
			}
			if wrong := checkServes(t, n, want); len(wrong) > 0 {
				t.Errorf("wrong values after starting from the older snapshot: %v", wrong)
			}
			for k, v := range want {
				if e, ok := n.Get(k); !ok || string(e.Value) != v {
					t.Errorf("Get(%s) = %q, %v; want %q", k, e.Value, ok, v)
				}
			}
			out := logs.String()
			for _, s := range []string{"snapshot is damaged; skipping it for an older one", newest, "starting from an older snapshot"} {
				if !strings.Contains(out, s) {
					t.Errorf("log does not mention %q:\n%s", s, out)
				}
			}
			n.Shutdown()

			// Now the older one too (the newest stays damaged).
			metas, _ = snaps.List()
			for _, m := range metas {
				p := filepath.Join(dir, "raft", snapshotsDir, m.ID, "state.bin")
				if p == newest {
					continue
				}
				b := mustRead(t, p)
				b[len(b)/3] ^= 0xff
				mustWrite(t, p, b)
			}
			_, err = openStoreNode(t, dir, backend, nil)
			checkDamaged(t, err, filepath.Join(dir, "raft", snapshotsDir))
		})
	}
}

func TestChecksumStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := openWAL(dir, testSegmentSize, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("a")},
		{Index: 2, Term: 1, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte("bc"), Extensions: []byte("ext")},
	}
	orig := slices.Clone(in[0].Data)
	if err := s.logs.StoreLogs(in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in[0].Data, orig) {
		t.Errorf("StoreLogs changed the caller's Data to %q", in[0].Data)
	}
	for _, want := range in {
		var got raft.Log
		if err := s.logs.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", want.Index, err)
		}
		if got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) {
			t.Errorf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
		}
	}
	if err := s.logs.DeleteRange(1, 1); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.logs.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog(1) after deleting it = %v, want raft.ErrLogNotFound", err)
	}
}

// TestDamagedWALTail writes 64 random bytes into the middle of the tail
// segment, the one raft-wal recovers after a crash. Its recovery would
// take the first unreadable frame for a torn write and drop every entry
// after it; checkTail sees the intact batches that follow and refuses.
// Damage to the last batch alone is what a crash leaves, and is accepted:
// the entries of that batch are gone (they were never acknowledged by a
// server that crashed writing them) and no wrong value is served.
func TestDamagedWALTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		middle bool
		zeros  bool // 256 zero bytes, which hide frame headers, instead
	}{{"middle", true, false}, {"zeroed frames", true, true}, {"last batch", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := fillStore(t, dir, BackendWAL, 100, 60, 0)
			files := storeFiles(t, dir, BackendWAL)
			if len(files) != 1 {
				t.Fatalf("want one (tail) segment, got %v", files)
			}
			path := files[0]
			b := mustRead(t, path)
			end := len(bytes.TrimRight(b, "\x00"))
			at := end / 2
			if !tc.middle {
				at = end - 12 // inside the last entry of the last batch
			}
			r := rand.New(rand.NewPCG(5, 6))
			for i := 0; i < 64 && at+i < end; i++ {
				b[at+i] = byte(r.UintN(256))
			}
			if tc.zeros {
				// Frames are shorter than 256 bytes, so a header is among them and
				// raft-wal's walk of the headers stops there.
				at &^= 7
				clear(b[at : at+256])
			}
			mustWrite(t, path, b)

			n, err := openStoreNode(t, dir, BackendWAL, nil)
			if tc.middle {
				checkDamaged(t, err, path)
				if tc.zeros && !strings.Contains(err.Error(), "torn write") {
					t.Errorf("error %q does not explain what raft-wal would have done", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New with the last batch torn = %v, want it to start", err)
			}
			if wrong := checkServes(t, n, want); len(wrong) > 0 {
				t.Errorf("wrong values after a torn last batch: %v", wrong)
			}
		})
	}
}

// TestBoltFaultRecovered gives raft.db's freelist page an enormous count.
// bbolt copies that many page IDs out of its memory map, reads past the
// end of the map and faults, which would crash the process without
// debug.SetPanicOnFault; with it the fault is a panic, recovered into
// ErrDamagedStore.
func TestBoltFaultRecovered(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, BackendBoltDB, 20, 100, 0)
	path := storeFiles(t, dir, BackendBoltDB)[0]
	b := mustRead(t, path)
	le := binary.LittleEndian
	meta := b[16:] // page 0's meta, after its page header
	pageSize := int(le.Uint32(meta[8:]))
	freelist := int(le.Uint64(meta[32:]))
	for _, p := range []int{freelist, int(le.Uint64(b[pageSize+16+32:]))} { // page 1's freelist too
		page := b[p*pageSize:]
		le.PutUint16(page[10:], 0xffff) // count: "see the first element"
		le.PutUint64(page[16:], 1<<20)  // the real count: 8 MiB of IDs from a small map
	}
	mustWrite(t, path, b)
	_, err := openStoreNode(t, dir, BackendBoltDB, nil)
	checkDamaged(t, err, path)
}

// TestRestartAfterRestore restarts a server after a restore from a
// snapshot. boltdb keeps the entries from before the restore and the log
// jumps past the snapshot's index, so the log has a gap below the
// snapshot: that is not damage.
func TestRestartAfterRestore(t *testing.T) {
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			dir := t.TempDir()
			n, err := openStoreNode(t, dir, backend, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Bootstrap([]Server{self(n)}); err != nil {
				t.Fatal(err)
			}
			waitForLeader(t, n)
			ctx := ctxFor(t)
			for i := range 5 {
				if _, err := n.Apply(ctx, set(fmt.Sprintf("k%d", i), "before")); err != nil {
					t.Fatal(err)
				}
			}
			var snap bytes.Buffer
			if _, err := n.SaveSnapshot(&snap); err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if _, err := n.Apply(ctx, set(fmt.Sprintf("later%d", i), "x")); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := n.RestoreSnapshot(ctx, &snap); err != nil {
				t.Fatalf("RestoreSnapshot: %v", err)
			}
			if _, err := n.Apply(ctx, set("after", "restore")); err != nil {
				t.Fatal(err)
			}
			n.Shutdown()

			n, err = openStoreNode(t, dir, backend, nil)
			if err != nil {
				t.Fatalf("New after a restore: %v", err)
			}
			waitForLeader(t, n)
			waitForValue(t, n, "after", "restore")
			waitForValue(t, n, "k4", "before")
			if _, ok := n.Get("later3"); ok {
				t.Error("later3, written after the snapshot, survived the restore")
			}
		})
	}
}
