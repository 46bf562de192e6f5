package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/testutil"
)

// TestRecoverLostMajorityWithPeersJSON loses two of three servers for
// good (kill -9, data_dirs wiped), recovers the survivor with the
// peers.json that `operator raft recover-plan -exclude` printed, and
// rejoins a wiped server as a new one.
func TestRecoverLostMajorityWithPeersJSON(t *testing.T) {
	nodes := NewServersIn(t, t.TempDir(), "r", 3, 3)
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 30*time.Second, nodes...)
	kv := NewKVClient(5*time.Second, 1)
	defer kv.Close()
	leader := LeaderNode(nodes...)
	const keys = 20
	for i := range keys {
		if ok, err := kv.Put(leader, fmt.Sprintf("k%02d", i), []byte(fmt.Sprintf("v%02d", i)), ""); err != nil || !ok {
			t.Fatalf("PUT k%02d = %v, %v", i, ok, err)
		}
	}

	survivor, lost := nodes[0], nodes[1:]
	var exclude []string
	for _, n := range lost {
		exclude = append(exclude, "-exclude="+nodeID(t, n))
		n.Kill()
		if err := os.RemoveAll(n.Dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(n.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		if l := survivor.Leader(); l != "" {
			return fmt.Errorf("survivor still reports leader %q", l)
		}
		return nil
	})

	stdout, stderr, code := survivor.CLI(append([]string{"operator", "raft", "recover-plan"}, exclude...)...)
	if code != 0 {
		t.Fatalf("recover-plan = %d, stderr:\n%s", code, stderr)
	}
	i := strings.Index(stdout, "\n[")
	if i < 0 {
		t.Fatalf("recover-plan printed no JSON array:\n%s", stdout)
	}
	plan := stdout[i+1:]
	if !strings.Contains(plan, nodeID(t, survivor)) || strings.Count(plan, `"id"`) != 1 {
		t.Fatalf("recover-plan = %s, want only the survivor %s", plan, nodeID(t, survivor))
	}

	survivor.Stop()
	peers := filepath.Join(survivor.Dir, "raft", "peers.json")
	// Consul's old format, a list of addresses, stops the start and says why.
	if err := os.WriteFile(peers, []byte(`["`+survivor.RaftAddr()+`"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	survivor.Start()
	var exit *exec.ExitError
	if err := survivor.WaitExit(30 * time.Second); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("server with an old-format peers.json: exit %v, want exit code 1", err)
	}
	if logs := survivor.Logs(); !strings.Contains(logs, peers) || !strings.Contains(logs, "old format") {
		t.Errorf("output does not name %s and the old format:\n%s", peers, logs)
	}
	if err := os.WriteFile(peers, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	survivor.Start()
	testutil.WaitFor(t, 20*time.Second, func() error {
		if l := survivor.Leader(); l != survivor.RaftAddr() {
			return fmt.Errorf("survivor reports leader %q, want itself %s", l, survivor.RaftAddr())
		}
		return nil
	})
	for i := range keys {
		p, _, err := kv.Get(survivor, fmt.Sprintf("k%02d", i), "consistent")
		if err != nil || p == nil || string(p.Value) != fmt.Sprintf("v%02d", i) {
			t.Fatalf("GET k%02d?consistent after recovery = %+v, %v; want v%02d", i, p, err, i)
		}
	}
	if ok, err := kv.Put(survivor, "after-recovery", []byte("yes"), ""); err != nil || !ok {
		t.Fatalf("PUT after recovery = %v, %v", ok, err)
	}
	if _, err := os.Stat(peers); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(peers.json) after recovery = %v, want it removed", err)
	}
	if logs := survivor.Logs(); !strings.Contains(logs, "found peers.json") || !strings.Contains(logs, "cluster recovered from peers.json") {
		t.Errorf("survivor did not log the recovery:\n%s", logs)
	}

	// A wiped server comes back as a new server and joins the recovered
	// cluster; bootstrap_expect does not make it start another one.
	back := lost[0]
	back.Start()
	WaitForCluster(t, 60*time.Second, survivor, back)
	testutil.WaitFor(t, 10*time.Second, func() error {
		p, _, err := kv.Get(back, "after-recovery", "stale")
		if err != nil || p == nil || string(p.Value) != "yes" {
			return fmt.Errorf("GET after-recovery?stale on %s = %+v, %v; want yes", back.Name, p, err)
		}
		return nil
	})
}
