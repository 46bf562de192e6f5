package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadClusterIDRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	if id, err := ReadClusterID(dir); id != "" || err != nil {
		t.Errorf("ReadClusterID of an empty data_dir = %q, %v; want \"\", nil", id, err)
	}
	path := filepath.Join(dir, ClusterIDFile)
	if err := os.WriteFile(path, []byte("not-a-uuid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadClusterID(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadClusterID of garbage = %v, want an error naming %s", err, path)
	}
}
