package consensus

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/conclavehq/conclave/consensus/archive"
)

// TestSnapshotArchive saves a single server's state as an archive, reads
// it back (metadata and stream), refuses a damaged one naming the
// checksum, and restores it.
func TestSnapshotArchive(t *testing.T) {
	n := newTestNode(t, "a1", nil)
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n)
	mustApplyNode(t, n, setCmd("k1", "v1"))
	mustApplyNode(t, n, setCmd("k2", "v2"))

	var buf bytes.Buffer
	info, err := n.SaveArchive(&buf)
	if err != nil {
		t.Fatalf("SaveArchive: %v", err)
	}
	if !IsArchive(buf.Bytes()) {
		t.Fatalf("SaveArchive wrote % x..., want gzip", buf.Bytes()[:4])
	}
	var state bytes.Buffer
	meta, err := ReadArchive(bytes.NewReader(buf.Bytes()), &state)
	if err != nil {
		t.Fatalf("ReadArchive: %v", err)
	}
	if meta.Index != info.Index || meta.Size != info.Size || meta.Term == 0 || meta.ID == "" {
		t.Errorf("ReadArchive meta = %+v, want index %d, size %d, a term and an ID", meta, info.Index, info.Size)
	}
	if diff := cmp.Diff(meta.Servers, []Server{self(n)}); diff != "" {
		t.Errorf("archive configuration mismatch (-got +want):\n%s", diff)
	}
	got, err := InspectSnapshot(&state)
	if err != nil || got.Entries != 2 {
		t.Errorf("InspectSnapshot(state.bin) = %+v, %v; want 2 entries", got, err)
	}

	// A changed byte of state.bin fails its checksum. state.bin is stored
	// as is inside the tar, so change it there and compress again.
	bad := rewriteArchive(t, buf.Bytes())
	if _, err := n.RestoreArchive(ctxFor(t), bytes.NewReader(bad)); !errors.Is(err, ErrCorruptSnapshot) || !errors.Is(err, archive.ErrChecksum) {
		t.Errorf("RestoreArchive(changed state.bin) = %v, want ErrCorruptSnapshot and archive.ErrChecksum", err)
	}

	mustApplyNode(t, n, setCmd("k3", "after"))
	if _, err := n.RestoreArchive(ctxFor(t), bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("RestoreArchive: %v", err)
	}
	if _, ok := n.Get("k3"); ok {
		t.Error("k3, written after the snapshot, survived the restore")
	}
	if e, ok := n.Get("k1"); !ok || string(e.Value) != "v1" {
		t.Errorf("Get(k1) after restore = %+v, %v; want v1", e, ok)
	}
}

// rewriteArchive returns the archive with one byte of state.bin changed
// (the tar is uncompressed inside the gzip stream, so the stream's magic
// is found as is), compressed again.
func rewriteArchive(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(snapshotMagic))
	if i < 0 {
		t.Fatal("no snapshot stream in the archive")
	}
	raw[i+len(snapshotMagic)+3] ^= 0x01
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(raw)
	zw.Close()
	return out.Bytes()
}
