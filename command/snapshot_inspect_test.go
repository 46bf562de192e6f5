package command

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/consensus/archive"
)

// writeTestArchive writes an archive of an empty store's snapshot stream
// to dir and returns its path and the stream.
func writeTestArchive(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	var stream bytes.Buffer
	if _, err := consensus.NewFSM().View().WriteTo(&stream); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	var buf bytes.Buffer
	meta := archive.Meta{Version: 1, ID: "2-5-1764625200000", Index: 5, Term: 2, Size: int64(stream.Len())}
	if err := archive.Write(&buf, meta, bytes.NewReader(stream.Bytes())); err != nil {
		t.Fatalf("archive.Write: %v", err)
	}
	path := filepath.Join(dir, "backup.snap")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, stream.Bytes()
}

func TestSnapshotInspectCommand(t *testing.T) {
	dir := t.TempDir()
	path, stream := writeTestArchive(t, dir)
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &SnapshotInspectCommand{Ui: ui}, path)
	if code != 0 {
		t.Fatalf("Run() = %d, stderr %q", code, stderr)
	}
	checkGolden(t, "snapshot_inspect", stdout)

	// A plain stream of an earlier release: its index and size only.
	plain := filepath.Join(dir, "old.snap")
	if err := os.WriteFile(plain, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	ui = cli.NewMockUi()
	code, stdout, _ = run(t, ui, &SnapshotInspectCommand{Ui: ui}, plain)
	if code != 0 || !strings.HasPrefix(stdout, " Size ") || strings.Contains(stdout, "Term") {
		t.Errorf("Run(plain) = %d, %q; want the size and index, no term", code, stdout)
	}
}

func TestSnapshotInspectCommand_damaged(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeTestArchive(t, dir)
	data, _ := os.ReadFile(path)
	for name, bad := range map[string][]byte{"truncated": data[:len(data)-9], "not a snapshot": []byte("hello")} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &SnapshotInspectCommand{Ui: ui}, path)
			if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "Error verifying snapshot ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("Run() = %d, stdout %q, stderr %q; want 1 and one error line", code, stdout, stderr)
			}
		})
	}
}
