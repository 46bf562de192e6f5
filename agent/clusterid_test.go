package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

// TestClusterIDIsWrittenLearnedAndChecked: the first leader writes a
// cluster ID into the state store; every server records it in
// data_dir/cluster-id, carries it in its cluster_id tag and reports it in
// /v1/agent/self, /v1/operator/bootstrap and on its server port. A fresh
// server joins and learns it. A data_dir whose file names another cluster
// than its state store stops the server with an error naming both IDs and
// the file.
func TestClusterIDIsWrittenLearnedAndChecked(t *testing.T) {
	dir := t.TempDir()
	s1 := testAgent(t, "s1", func(c *config.Config) { c.Bootstrap = true; c.DataDir = dir })
	var id string
	testutil.WaitFor(t, 10*time.Second, func() error {
		meta, ok := s1.node.View().ClusterMeta()
		if !ok {
			return fmt.Errorf("no cluster ID in the state store yet")
		}
		id = meta.ClusterID
		b, err := os.ReadFile(filepath.Join(dir, clusterIDFile))
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(b)); got != id {
			return fmt.Errorf("%s = %q, want %q", clusterIDFile, got, id)
		}
		if got := s1.pool.LocalMember().Tags[gossip.TagClusterID]; got != id {
			return fmt.Errorf("cluster_id tag = %q, want %q", got, id)
		}
		return nil
	})
	if _, err := uuid.Parse(id); err != nil {
		t.Errorf("cluster ID %q is not a UUID: %v", id, err)
	}
	var self api.Self
	getJSON(t, s1, "/v1/agent/self", &self)
	if self.Config.ClusterID != id {
		t.Errorf("agent/self ClusterID = %q, want %q", self.Config.ClusterID, id)
	}
	var st api.BootstrapStatus
	getJSON(t, s1, "/v1/operator/bootstrap", &st)
	if st.ClusterID != id {
		t.Errorf("operator/bootstrap ClusterID = %q, want %q", st.ClusterID, id)
	}
	var who cluster.Identity
	if err := s1.peers.Get(context.Background(), s1.RaftAddr(), cluster.IdentityPath, &who); err != nil {
		t.Fatalf("GET %s: %v", cluster.IdentityPath, err)
	}
	if want := (cluster.Identity{NodeID: s1.NodeID(), ClusterID: id, Datacenter: "dc1", HasState: true}); who != want {
		t.Errorf("GET %s = %+v, want %+v", cluster.IdentityPath, who, want)
	}

	s1.Shutdown()

	// Restarted alone, s1 replays its log at once: a single voter commits
	// on its own.
	other := uuid.NewString()
	if err := os.WriteFile(filepath.Join(dir, clusterIDFile), []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	again := testAgent(t, "s1", func(c *config.Config) { c.Bootstrap = true; c.DataDir = dir })
	select {
	case <-again.ShutdownCh():
	case <-time.After(20 * time.Second):
		t.Fatal("a server whose cluster-id file names another cluster is still running")
	}
	err := again.Err()
	for _, want := range []string{id, other, filepath.Join(dir, clusterIDFile)} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %v, want it to name %s", err, want)
		}
	}
}

// TestFreshServerLearnsTheClusterID: a server with an empty data_dir is
// added by the leader, learns the cluster ID from its replicated state
// store, and records it in its own data_dir.
func TestFreshServerLearnsTheClusterID(t *testing.T) {
	l := testAgent(t, "l", func(c *config.Config) { c.Bootstrap = true })
	var id string
	testutil.WaitFor(t, 10*time.Second, func() error {
		if id = l.ClusterID(); id == "" {
			return fmt.Errorf("the leader has no cluster ID yet")
		}
		return nil
	})
	dir2 := t.TempDir()
	s2 := testAgent(t, "s2", func(c *config.Config) { c.DataDir = dir2; c.RetryJoin = []string{l.serfAddr()} })
	waitCluster(t, []*Agent{l, s2}, 2)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got := s2.ClusterID(); got != id {
			return fmt.Errorf("s2's cluster ID = %q, want %q", got, id)
		}
		b, err := os.ReadFile(filepath.Join(dir2, clusterIDFile))
		if err != nil || strings.TrimSpace(string(b)) != id {
			return fmt.Errorf("s2's %s = %q, %v; want %q", clusterIDFile, b, err, id)
		}
		return nil
	})

}

func TestReadClusterIDRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	if id, err := readClusterID(dir); id != "" || err != nil {
		t.Errorf("readClusterID of an empty data_dir = %q, %v; want \"\", nil", id, err)
	}
	path := filepath.Join(dir, clusterIDFile)
	if err := os.WriteFile(path, []byte("not-a-uuid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readClusterID(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("readClusterID of garbage = %v, want an error naming %s", err, path)
	}
}

// TestRestoreWithoutClusterIDKeepsTheID: a snapshot of an earlier version
// holds no cluster ID; after restoring it, the leader writes back the ID
// the cluster had, and the server keeps running.
func TestRestoreWithoutClusterIDKeepsTheID(t *testing.T) {
	s := testAgent(t, "s1", func(c *config.Config) { c.Bootstrap = true })
	var id string
	testutil.WaitFor(t, 10*time.Second, func() error {
		meta, ok := s.node.View().ClusterMeta()
		if !ok {
			return fmt.Errorf("no cluster ID in the state store yet")
		}
		id = meta.ClusterID
		return nil
	})
	snap, err := os.ReadFile(filepath.Join("..", "consensus", "testdata", "snapshot-v1.snap"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, "http://"+s.HTTPAddr()+"/v1/snapshot", bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT /v1/snapshot: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/snapshot = %d %s, want 200", resp.StatusCode, body)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		meta, ok := s.node.View().ClusterMeta()
		switch {
		case !ok:
			return fmt.Errorf("no cluster ID in the state store after the restore yet")
		case meta.ClusterID != id:
			return fmt.Errorf("cluster ID after the restore = %s, want %s", meta.ClusterID, id)
		}
		return nil
	})
	if err := s.Err(); err != nil {
		t.Errorf("Err() after the restore = %v, want nil", err)
	}
}
