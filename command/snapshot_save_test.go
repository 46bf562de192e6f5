package command

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/cli"
)

// testSnapshot returns a snapshot stream as the agent writes it: the
// header of format version (1 today), body, and the CRC-32C of all that.
func testSnapshot(version byte, body string) []byte {
	b := append([]byte("CNCLVKV"), version)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// snapshotBody is a snapshot's content: meta, one entry with a binary
// value, the end record. Only the agent decodes it.
const snapshotBody = "\xd3\x41\xd3\x41\x00\x00" + "\x01\x01k\x00\x05\x05\x00\x03\x00\xff\n" + "\x03\x01\x00"

func newSnapshotSaveCommand(t *testing.T, routes map[string]reply) (*cli.MockUi, *SnapshotSaveCommand, *fakeAgent) {
	t.Helper()
	agent := newFakeAgentWithHeader(t, routes, http.Header{"X-Consul-Index": {"8419"}})
	ui := cli.NewMockUi()
	return ui, &SnapshotSaveCommand{Meta: Meta{Ui: ui}}, agent
}

func TestSnapshotSaveCommand(t *testing.T) {
	archivePath, _ := writeTestArchive(t, t.TempDir())
	archived, err := os.ReadFile(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		snap       []byte
		wantOut    string
		wantStderr string
	}{
		{
			name:    "verified",
			snap:    testSnapshot(1, snapshotBody),
			wantOut: "Saved and verified snapshot to index 8419\n",
		},
		{
			name:    "archive",
			snap:    archived,
			wantOut: "Saved and verified snapshot to index 8419\n",
		},
		{
			name:       "newer format version",
			snap:       testSnapshot(4, snapshotBody),
			wantOut:    "Saved snapshot to index 8419\n",
			wantStderr: "Warning: cannot verify the snapshot: unknown snapshot format version: 4 (this client knows 3)\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newSnapshotSaveCommand(t, map[string]reply{"GET /v1/snapshot": ok(string(tc.snap))})
			dir := t.TempDir()
			file := filepath.Join(dir, "backup.snap")
			// An older snapshot is replaced.
			if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
				t.Fatalf("write old snapshot: %v", err)
			}
			code, stdout, stderr := run(t, ui, c, "-http-addr="+agent.addr, file)
			if code != 0 {
				t.Fatalf("Run() = %d, want 0; stderr:\n%s", code, stderr)
			}
			if stdout != tc.wantOut || stderr != tc.wantStderr {
				t.Errorf("Run() stdout = %q, stderr = %q; want %q and %q", stdout, stderr, tc.wantOut, tc.wantStderr)
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("read saved snapshot: %v", err)
			}
			if !bytes.Equal(got, tc.snap) {
				t.Errorf("saved %d bytes, want the %d bytes the agent sent", len(got), len(tc.snap))
			}
			if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("saved file mode = %v (err %v), want 0600", fi.Mode().Perm(), err)
			}
			checkOnlyFiles(t, dir, "backup.snap")
		})
	}
}

// checkOnlyFiles fails the test unless dir holds exactly the files names.
func checkOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir: %v", err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("files in %s = %q, want %q", dir, got, names)
	}
}

func TestSnapshotSaveCommand_errors(t *testing.T) {
	snap := testSnapshot(1, snapshotBody)
	altered := bytes.Clone(snap)
	altered[12] ^= 0x01
	archivePath, _ := writeTestArchive(t, t.TempDir())
	archived, err := os.ReadFile(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		snap       []byte
		routes     map[string]reply
		args       []string
		dead       bool
		wantPrefix string
		wantHelp   bool
	}{
		{
			// What a client sees when the agent fails halfway through.
			name:       "cut short",
			snap:       snap[:len(snap)/2],
			wantPrefix: "Error verifying snapshot file: corrupt snapshot: checksum ",
		},
		{
			name:       "altered",
			snap:       altered,
			wantPrefix: "Error verifying snapshot file: corrupt snapshot: checksum ",
		},
		{
			name:       "archive cut short",
			snap:       archived[:len(archived)-9],
			wantPrefix: "Error verifying snapshot file: corrupt snapshot: read snapshot archive: ",
		},
		{
			name:       "empty",
			snap:       nil,
			wantPrefix: "Error verifying snapshot file: corrupt snapshot: empty stream",
		},
		{
			name:       "not a snapshot",
			snap:       []byte("<html>proxy error</html>"),
			wantPrefix: "Error verifying snapshot file: corrupt snapshot: not a Conclave snapshot",
		},
		{
			name:       "server error",
			routes:     map[string]reply{"GET /v1/snapshot": {500, "No cluster leader"}},
			wantPrefix: "Error saving snapshot: Unexpected response code: 500 (No cluster leader)",
		},
		{name: "dead agent", dead: true, wantPrefix: "Error saving snapshot: "},
		{name: "missing file argument", args: []string{}, wantPrefix: "Missing FILE argument"},
		{name: "too many arguments", args: []string{"a", "b"}, wantPrefix: "Too many arguments (expected 1, got 2)"},
		{name: "no such directory", args: []string{"/nonexistent/dir/backup.snap"}, wantPrefix: "Error creating snapshot file: open /nonexistent/dir/backup.snap.tmp: "},
		{name: "bad http addr", args: []string{"-http-addr=unix:///x", "backup.snap"}, wantPrefix: "Error creating client: "},
		{name: "unknown flag", args: []string{"-bogus"}, wantPrefix: "flag provided but not defined: -bogus", wantHelp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			routes := tc.routes
			if routes == nil {
				routes = map[string]reply{"GET /v1/snapshot": ok(string(tc.snap))}
			}
			ui, c, agent := newSnapshotSaveCommand(t, routes)
			addr := agent.addr
			if tc.dead {
				addr = deadAddr(t)
			}
			dir := t.TempDir()
			args := tc.args
			if args == nil {
				args = []string{filepath.Join(dir, "backup.snap")}
			}
			args = append([]string{"-http-addr=" + addr}, args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", args, stdout)
			}
			if tc.wantHelp {
				if !strings.HasPrefix(stderr, tc.wantPrefix+"\n") || !strings.Contains(stderr, c.Help()) {
					t.Errorf("Run(%q) stderr = %q, want %q then the help", args, stderr, tc.wantPrefix)
				}
			} else {
				checkOneLineError(t, stderr, tc.wantPrefix)
			}
			// Neither FILE nor FILE.tmp is left behind.
			checkOnlyFiles(t, dir)
		})
	}
}
