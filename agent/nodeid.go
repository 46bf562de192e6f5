package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// nodeIDFile is the file in data_dir that holds the permanent node ID.
const nodeIDFile = "node-id"

// loadOrCreateNodeID returns the node ID stored in dataDir, creating and
// persisting a new UUID on first start. The ID is the Raft server ID for the
// life of the data_dir, so it is written with fsync before use.
func loadOrCreateNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, nodeIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("node ID in %s is not a UUID: %q", path, id)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read node ID: %w", err)
	}
	id := uuid.NewString()
	if err := writeFileOnce(path, id+"\n"); err != nil {
		return "", fmt.Errorf("write node ID %w", err)
	}
	return id, nil
}

// newDevID returns a fresh node ID for dev mode, which keeps nothing on disk.
func newDevID() (string, error) { return uuid.NewString(), nil }
