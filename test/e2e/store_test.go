package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedStoreExitsNamingTheFile damages a stopped server's Raft log
// and starts it again: it must exit with code 1 and a message that names
// the damaged file and says what to do, never start on the damaged data
// and never panic. With wal (the default) one changed byte inside a stored
// value is enough, since every entry carries a checksum; boltdb keeps none,
// so for it the file is truncated instead. Run with CONCLAVE_E2E_LOGSTORE
// to pick the backend.
func TestDamagedStoreExitsNamingTheFile(t *testing.T) {
	n := NewNode(t, "s1", 1)
	n.Start()
	WaitForCluster(t, 20*time.Second, n)
	kv := NewKVClient(5*time.Second, 1)
	defer kv.Close()
	const marker = "value-MARKER-e2e-"
	for i := range 20 {
		v := fmt.Sprintf("%s%02d-xxxxxxxx", marker, i)
		if ok, err := kv.Put(n, fmt.Sprintf("k%02d", i), []byte(v), ""); err != nil || !ok {
			t.Fatalf("PUT k%02d = %v, %v", i, ok, err)
		}
	}
	n.Stop()

	var path string
	switch backend := LogStoreBackend(); backend {
	case "boltdb":
		path = filepath.Join(n.Dir, "raft", "raft.db")
		// Three pages: the two meta pages and one more. BoltDB grows its
		// file ahead of use, so cutting off a free tail would be harmless;
		// this cuts into the pages in use.
		if err := os.Truncate(path, 3*int64(os.Getpagesize())); err != nil {
			t.Fatal(err)
		}
	default:
		segments, _ := filepath.Glob(filepath.Join(n.Dir, "raft", "wal", "*.wal"))
		target := []byte(marker + "07-")
		for _, p := range segments {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if i := bytes.Index(b, target); i >= 0 {
				b[i+len(target)] ^= 0x01
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				path = p
			}
		}
		if path == "" {
			t.Fatalf("value of k07 not found in the wal segments %v", segments)
		}
	}

	n.Start()
	err := n.WaitExit(30 * time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("server on a damaged store: exit %v, want exit code 1", err)
	}
	logs := n.Logs()
	for _, want := range []string{"raft store is damaged", path, "wipe its data_dir", "restore the cluster from a snapshot"} {
		if !strings.Contains(logs, want) {
			t.Errorf("output does not mention %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "panic:") || strings.Contains(logs, "goroutine ") {
		t.Errorf("output has a panic:\n%s", logs)
	}
}
