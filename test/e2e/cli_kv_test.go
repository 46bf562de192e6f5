package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/testutil"
)

// TestCLIKeyValue uses the conclave CLI as an operator would against a real
// cluster: kv put through a follower, kv get from every server, and a
// snapshot saved (and verified by the CLI against the server's real
// stream format) and restored.
func TestCLIKeyValue(t *testing.T) {
	nodes := startServers(t, "cli", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)
	var follower *Node
	for _, n := range nodes {
		if n != LeaderNode(nodes...) {
			follower = n
			break
		}
	}
	cli := func(n *Node, args ...string) string {
		t.Helper()
		out, errOut, code := n.CLI(args...)
		if code != 0 {
			t.Fatalf("conclave %s on %s: exit %d: %s", strings.Join(args, " "), n.Name, code, errOut)
		}
		return out
	}
	if out := cli(follower, "kv", "put", "app/mode", "blue"); !strings.Contains(out, "Success! Data written to: app/mode") {
		t.Fatalf("kv put output = %q", out)
	}
	for _, n := range nodes {
		if out := cli(n, "kv", "get", "app/mode"); out != "blue\n" {
			t.Errorf("kv get on %s = %q, want blue", n.Name, out)
		}
	}

	file := filepath.Join(t.TempDir(), "backup.snap")
	if out := cli(follower, "snapshot", "save", file); !strings.Contains(out, "Saved and verified snapshot to index") {
		t.Fatalf("snapshot save output = %q, want a verified snapshot", out)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("snapshot file: %v", err)
	}
	cli(nodes[0], "kv", "put", "app/mode", "green")
	if out := cli(nodes[2], "snapshot", "restore", file); !strings.Contains(out, "Restored snapshot") {
		t.Fatalf("snapshot restore output = %q", out)
	}
	for _, n := range nodes {
		// Restore goes through Raft; followers apply it right after.
		testutil.WaitFor(t, 10*time.Second, func() error {
			if out, _, _ := n.CLI("kv", "get", "-stale", "app/mode"); out != "blue\n" {
				return fmt.Errorf("kv get -stale on %s after restore = %q, want blue", n.Name, out)
			}
			return nil
		})
	}
	if _, errOut, code := follower.CLI("kv", "get", "app/none"); code != 1 || !strings.Contains(errOut, "No key exists at: app/none") {
		t.Errorf("kv get of a missing key: exit %d, stderr %q", code, errOut)
	}
}
