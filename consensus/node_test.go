package consensus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/conclavehq/conclave/test/testutil"
)

// waitTimeout bounds every wait on the cluster: elections take a few
// hundred milliseconds at multiplier 1, so this is generous even under -race
// on a busy machine.
const waitTimeout = 15 * time.Second

// testMaxValueSize is the value size limit of the test nodes: Consul's
// default kv_max_value_size, as the agent passes it.
const testMaxValueSize = 512 << 10

// newTestNode starts a node on a loopback TCP stream with BoltDB under a
// fresh t.TempDir(). cb may change the config before New; the node is shut
// down when the test ends.
func newTestNode(t *testing.T, id string, cb func(*Config)) *Node {
	t.Helper()
	stream, err := NewTCPStream("127.0.0.1:0", "127.0.0.1")
	if err != nil {
		t.Fatalf("NewTCPStream: %v", err)
	}
	cfg := Config{
		ID:      id,
		Name:    id,
		Stream:  stream,
		DataDir: t.TempDir(),
		Logger:  testutil.Logger(t),
		// raft-wal preallocates each segment; 64 MiB per test is too much.
		LogStore:     LogStoreConfig{WALSegmentSize: testSegmentSize},
		MaxValueSize: testMaxValueSize,
	}
	if cb != nil {
		cb(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		stream.Close()
		t.Fatalf("New(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", id, err)
		}
	})
	return n
}

func inMemory(c *Config) { c.InMemory = true }

func self(n *Node) Server { return Server{ID: n.ID(), Address: n.RaftAddr(), Voter: true} }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitForLeader waits until exactly one of nodes is leader and every node
// names it as such, and returns it.
func waitForLeader(t *testing.T, nodes ...*Node) *Node {
	t.Helper()
	var leader *Node
	testutil.WaitFor(t, waitTimeout, func() error {
		leader = nil
		for _, n := range nodes {
			if !n.IsLeader() {
				continue
			}
			if leader != nil {
				return fmt.Errorf("both %s and %s are leader", leader.ID(), n.ID())
			}
			leader = n
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range nodes {
			addr, id := n.Leader()
			if id != leader.ID() || addr != leader.RaftAddr() {
				return fmt.Errorf("%s sees leader %q at %q, want %q at %q", n.ID(), id, addr, leader.ID(), leader.RaftAddr())
			}
		}
		return nil
	})
	return leader
}

func waitForValue(t *testing.T, n *Node, key, want string) {
	t.Helper()
	testutil.WaitFor(t, waitTimeout, func() error {
		if e, ok := n.Get(key); !ok || string(e.Value) != want {
			return fmt.Errorf("%s: Get(%q) = %q, %v; want %q", n.ID(), key, e.Value, ok, want)
		}
		return nil
	})
}

func waitForLeaderCh(t *testing.T, n *Node) {
	t.Helper()
	select {
	case v := <-n.LeaderCh():
		if !v {
			t.Fatalf("%s: LeaderCh() delivered false, want true", n.ID())
		}
	case <-time.After(waitTimeout):
		t.Fatalf("%s: LeaderCh() delivered nothing within %s", n.ID(), waitTimeout)
	}
}

func set(key, value string) Command { return Command{Op: OpSet, Key: key, Value: []byte(value)} }

func sortedServers(s []Server) []Server {
	out := append([]Server(nil), s...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func checkConfiguration(t *testing.T, n *Node, want []Server) uint64 {
	t.Helper()
	got, index, err := n.Configuration()
	if err != nil {
		t.Fatalf("%s: Configuration: %v", n.ID(), err)
	}
	if diff := cmp.Diff(sortedServers(got), sortedServers(want)); diff != "" {
		t.Fatalf("%s: Configuration() mismatch (-got +want):\n%s", n.ID(), diff)
	}
	return index
}

func TestNewValidation(t *testing.T) {
	stream, err := NewTCPStream("127.0.0.1:0", "127.0.0.1")
	if err != nil {
		t.Fatalf("NewTCPStream: %v", err)
	}
	t.Cleanup(func() { stream.Close() })
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		cfg  Config
	}{
		{"missing ID", Config{Stream: stream, DataDir: t.TempDir()}},
		{"missing stream", Config{ID: "node-1", DataDir: t.TempDir()}},
		{"data dir is a file", Config{ID: "node-1", Stream: stream, DataDir: file, MaxValueSize: 1}},
		{"missing max value size", Config{ID: "node-1", Stream: stream, DataDir: t.TempDir()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg)
			if err == nil {
				n.Shutdown()
				t.Fatalf("New(%s) = nil error, want an error", tc.name)
			}
		})
	}
}

func TestNewTCPStream(t *testing.T) {
	s, err := NewTCPStream("127.0.0.1:0", "127.0.0.1")
	if err != nil {
		t.Fatalf("NewTCPStream: %v", err)
	}
	defer s.Close()
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok || addr.Port == 0 || !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("Addr() = %v, want 127.0.0.1 with the bound port", s.Addr())
	}

	for _, ip := range []string{"", "0.0.0.0", "::", "not-an-ip"} {
		if s, err := NewTCPStream("127.0.0.1:0", ip); err == nil {
			s.Close()
			t.Errorf("NewTCPStream(advertise %q) = nil error, want an error", ip)
		}
	}
	if _, err := NewTCPStream("127.0.0.1:-1", "127.0.0.1"); err == nil {
		t.Error("NewTCPStream(bad bind) = nil error, want an error")
	}
}

func TestNewCreatesDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	newTestNode(t, "node-1", func(c *Config) { c.DataDir = dir })

	if fi, err := os.Stat(filepath.Join(dir, "raft", "wal")); err != nil || !fi.IsDir() {
		t.Errorf("data_dir/raft/wal: %v, want a directory (wal is the default for a new data_dir)", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "raft", "snapshots")); err != nil || !fi.IsDir() {
		t.Errorf("data_dir/raft/snapshots: %v, want a directory", err)
	}
}

func TestTimingFor(t *testing.T) {
	cases := []struct {
		m    int
		want Timing
	}{
		{-3, Timing{200 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond}},
		{0, Timing{200 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond}},
		{1, Timing{200 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond}},
		{2, Timing{400 * time.Millisecond, 400 * time.Millisecond, 200 * time.Millisecond}},
		{10, Timing{2 * time.Second, 2 * time.Second, time.Second}},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.m), func(t *testing.T) {
			got := TimingFor(tc.m)
			if got != tc.want {
				t.Errorf("TimingFor(%d) = %+v, want %+v", tc.m, got, tc.want)
			}
			// Raft must accept what New builds from it.
			rc := raft.DefaultConfig()
			rc.LocalID = "node-1"
			rc.HeartbeatTimeout = got.HeartbeatTimeout
			rc.ElectionTimeout = got.ElectionTimeout
			rc.LeaderLeaseTimeout = got.LeaderLease
			rc.CommitTimeout = baseCommitTimeout
			if err := raft.ValidateConfig(rc); err != nil {
				t.Errorf("raft.ValidateConfig(TimingFor(%d)): %v", tc.m, err)
			}
		})
	}
}

// TestSingleNodeLifecycle runs one server on BoltDB through bootstrap,
// restart and a second restart attempt at bootstrap.
func TestSingleNodeLifecycle(t *testing.T) {
	dir := t.TempDir()
	n := newTestNode(t, "node-1", func(c *Config) { c.DataDir = dir })
	if n.HasState() {
		t.Fatal("HasState() on an empty data_dir = true, want false")
	}
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if !n.HasState() {
		t.Error("HasState() right after Bootstrap = false, want true")
	}
	waitForLeader(t, n)
	waitForLeaderCh(t, n)
	if err := n.Bootstrap([]Server{self(n)}); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Errorf("second Bootstrap = %v, want ErrAlreadyBootstrapped", err)
	}
	checkConfiguration(t, n, []Server{self(n)})

	ctx := ctxFor(t)
	if err := n.VerifyLeader(ctx); err != nil {
		t.Errorf("VerifyLeader on the leader: %v", err)
	}
	if _, err := n.Apply(ctx, set("k", "v1")); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if e, ok := n.Get("k"); !ok || string(e.Value) != "v1" {
		t.Errorf("Get(k) right after Apply = %q, %v; want \"v1\", true", e.Value, ok)
	}
	if _, err := n.Apply(ctx, Command{Op: 42, Key: "k"}); err == nil {
		t.Error("Apply(unknown op) = nil, want an error")
	}

	if err := n.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := n.Shutdown(); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}
	if got := n.State(); got != StateShutdown {
		t.Errorf("State() after Shutdown = %s, want %s", got, StateShutdown)
	}

	// Reopen the same data_dir: the state is there before any election.
	n2 := newTestNode(t, "node-1", func(c *Config) { c.DataDir = dir })
	if !n2.HasState() {
		t.Fatal("HasState() after reopening = false, want true")
	}
	if err := n2.Bootstrap([]Server{self(n2)}); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Errorf("Bootstrap after reopening = %v, want ErrAlreadyBootstrapped", err)
	}
	waitForLeader(t, n2)
	waitForLeaderCh(t, n2)
	waitForValue(t, n2, "k", "v1")
	if _, err := n2.Apply(ctx, set("k", "v3")); err != nil {
		t.Fatalf("Apply after reopening: %v", err)
	}
	if err := n2.Shutdown(); err != nil {
		t.Fatalf("Shutdown after reopening: %v", err)
	}
	if err := n2.Shutdown(); err != nil {
		t.Errorf("second Shutdown after reopening = %v, want nil", err)
	}
}

// TestRestartFromSnapshot checks that a node's state survives a restart
// when part of it lives in a snapshot and the rest in the log.
func TestRestartFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	n := newTestNode(t, "node-1", func(c *Config) { c.DataDir = dir })
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n)
	ctx := ctxFor(t)
	for i := range 50 {
		if _, err := n.Apply(ctx, set(fmt.Sprintf("key-%02d", i), strconv.Itoa(i))); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if _, err := n.Apply(ctx, set("after-snapshot", "yes")); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if _, err := n.Apply(ctx, Command{Op: OpDelete, Key: "key-00"}); err != nil {
		t.Fatalf("Apply delete: %v", err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	snaps, err := os.ReadDir(filepath.Join(dir, "raft", "snapshots"))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("data_dir/raft/snapshots holds %d entries (%v), want 1", len(snaps), err)
	}

	n2 := newTestNode(t, "node-1", func(c *Config) { c.DataDir = dir })
	waitForLeader(t, n2)
	waitForValue(t, n2, "after-snapshot", "yes")
	for i := 1; i < 50; i++ {
		waitForValue(t, n2, fmt.Sprintf("key-%02d", i), strconv.Itoa(i))
	}
	if e, ok := n2.Get("key-00"); ok {
		t.Errorf("Get(key-00) after restart = %+v, true; want it deleted", e)
	}
}

// TestThreeNodeCluster runs three servers on BoltDB and real loopback TCP,
// bootstraps one with all three, and exercises the leader-only operations.
func TestThreeNodeCluster(t *testing.T) {
	nodes := []*Node{
		newTestNode(t, "node-1", nil),
		newTestNode(t, "node-2", nil),
		newTestNode(t, "node-3", nil),
	}
	var servers []Server
	for _, n := range nodes {
		if n.HasState() {
			t.Fatalf("%s: HasState() before bootstrap = true, want false", n.ID())
		}
		servers = append(servers, self(n))
	}
	if err := nodes[0].Bootstrap(servers); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	leader := waitForLeader(t, nodes...)
	waitForLeaderCh(t, leader)
	var followers []*Node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}

	ctx := ctxFor(t)
	if _, err := leader.Apply(ctx, set("greeting", "hello")); err != nil {
		t.Fatalf("Apply on the leader: %v", err)
	}
	for _, n := range nodes {
		waitForValue(t, n, "greeting", "hello")
		if !n.HasState() {
			t.Errorf("%s: HasState() in a running cluster = false, want true", n.ID())
		}
	}

	f := followers[0]
	if _, err := f.Apply(ctx, set("greeting", "from a follower")); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Apply on follower %s = %v, want ErrNotLeader", f.ID(), err)
	}
	if err := f.AddVoter(ctx, "node-x", "127.0.0.1:1"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("AddVoter on follower %s = %v, want ErrNotLeader", f.ID(), err)
	}
	if err := f.RemoveServer(ctx, leader.ID()); !errors.Is(err, ErrNotLeader) {
		t.Errorf("RemoveServer on follower %s = %v, want ErrNotLeader", f.ID(), err)
	}
	if err := leader.VerifyLeader(ctx); err != nil {
		t.Errorf("VerifyLeader on the leader: %v", err)
	}
	if err := f.VerifyLeader(ctx); !errors.Is(err, ErrNotLeader) {
		t.Errorf("VerifyLeader on follower %s = %v, want ErrNotLeader", f.ID(), err)
	}
	if !f.LastContact().After(time.Now().Add(-waitTimeout)) {
		t.Errorf("LastContact() on follower %s = %v, want recent", f.ID(), f.LastContact())
	}
	if e, ok := f.Get("greeting"); !ok || string(e.Value) != "hello" {
		t.Errorf("Get on follower after its rejected Apply = %q, %v; want \"hello\"", e.Value, ok)
	}

	for _, n := range nodes {
		checkConfiguration(t, n, servers)
	}

	// A fourth server joins through AddVoter and catches up on the log.
	n4 := newTestNode(t, "node-4", nil)
	if err := leader.AddVoter(ctx, n4.ID(), n4.RaftAddr()); err != nil {
		t.Fatalf("AddVoter(node-4): %v", err)
	}
	checkConfiguration(t, leader, append(servers, self(n4)))
	waitForValue(t, n4, "greeting", "hello")
	testutil.WaitFor(t, waitTimeout, func() error {
		if _, id := n4.Leader(); id != leader.ID() {
			return fmt.Errorf("node-4 sees leader %q, want %q", id, leader.ID())
		}
		return nil
	})

	if err := leader.RemoveServer(ctx, n4.ID()); err != nil {
		t.Fatalf("RemoveServer(node-4): %v", err)
	}
	checkConfiguration(t, leader, servers)

	if _, err := leader.Apply(ctx, Command{Op: OpDelete, Key: "greeting"}); err != nil {
		t.Fatalf("Apply delete: %v", err)
	}
	for _, n := range nodes {
		testutil.WaitFor(t, waitTimeout, func() error {
			if e, ok := n.Get("greeting"); ok {
				return fmt.Errorf("%s: Get(greeting) = %+v after delete, want not found", n.ID(), e)
			}
			return nil
		})
	}
	if e, ok := n4.Get("greeting"); !ok || string(e.Value) != "hello" {
		// node-4 was removed before the delete, so it must not see it.
		t.Errorf("removed node-4: Get(greeting) = %q, %v; want the value from before its removal", e.Value, ok)
	}
}

// addrMap is an AddressProvider over a fixed map, counting lookups.
type addrMap struct {
	mu    sync.Mutex
	addrs map[string]string
	calls map[string]int
}

func (m *addrMap) ServerAddr(id string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[id]++
	if a, ok := m.addrs[id]; ok {
		return a, nil
	}
	return "", fmt.Errorf("unknown server %q", id)
}

func (m *addrMap) set(id, addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addrs[id] = addr
}

func (m *addrMap) callsFor(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[id]
}

// TestAddressProvider bootstraps two servers with a wrong address for the
// second one. Two voters need each other for a quorum, so the cluster can
// elect a leader and replicate only if the transport dials the address the
// provider returns instead of the one in the configuration.
func TestAddressProvider(t *testing.T) {
	provider := &addrMap{addrs: map[string]string{}, calls: map[string]int{}}
	withProvider := func(c *Config) {
		c.InMemory = true
		c.AddressProvider = provider
	}
	n1 := newTestNode(t, "node-1", withProvider)
	n2 := newTestNode(t, "node-2", withProvider)
	provider.set(n1.ID(), n1.RaftAddr())
	provider.set(n2.ID(), n2.RaftAddr())

	// Nothing listens on the stale address.
	stale := "127.0.0.1:" + strconv.Itoa(testutil.Ports(t, 1)[0])
	servers := []Server{self(n1), {ID: n2.ID(), Address: stale, Voter: true}}
	if err := n1.Bootstrap(servers); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	leader := waitForLeader(t, n1, n2)
	ctx := ctxFor(t)
	if _, err := leader.Apply(ctx, set("k", "v")); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	waitForValue(t, n1, "k", "v")
	waitForValue(t, n2, "k", "v")

	// The configuration still holds the stale address; only the dial used
	// the provider's.
	checkConfiguration(t, leader, servers)
	if provider.callsFor(n2.ID()) == 0 && provider.callsFor(n1.ID()) == 0 {
		t.Error("the address provider was never consulted")
	}
}

// TestConfigurationIndex checks that Configuration reports a Raft index at
// which the configuration is current (the applied index), which
// /v1/operator/raft/configuration passes on: never 0 once the cluster
// exists, and larger after a configuration change.
func TestConfigurationIndex(t *testing.T) {
	n1 := newTestNode(t, "node-1", inMemory)
	n2 := newTestNode(t, "node-2", inMemory)
	if err := n1.Bootstrap([]Server{self(n1)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n1)
	before := checkConfiguration(t, n1, []Server{self(n1)})
	if before == 0 {
		t.Errorf("Configuration() index after bootstrap = 0, want the index the configuration is current at")
	}
	if err := n1.AddVoter(ctxFor(t), n2.ID(), n2.RaftAddr()); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, func() error {
		if got := checkConfiguration(t, n1, []Server{self(n1), self(n2)}); got <= before {
			return fmt.Errorf("Configuration() index after AddVoter = %d, want more than %d", got, before)
		}
		return nil
	})
	// A follower reports the configuration it has applied, too.
	testutil.WaitFor(t, waitTimeout, func() error {
		got, index, err := n2.Configuration()
		if err != nil {
			return err
		}
		if len(got) != 2 || index <= before {
			return fmt.Errorf("node-2: Configuration() = %v at index %d, want both servers at more than %d", got, index, before)
		}
		return nil
	})
}

// TestOperationsAfterShutdown checks that calls on a shut-down node fail
// with ErrShutdown at once instead of waiting for their context. Each call
// is tried several times because Raft picks at random between its shutdown
// channel and a buffered request channel.
func TestOperationsAfterShutdown(t *testing.T) {
	n := newTestNode(t, "node-1", inMemory)
	if err := n.Bootstrap([]Server{self(n)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n)
	if err := n.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	ops := []struct {
		name string
		call func(context.Context) error
	}{
		{"Apply", func(ctx context.Context) error { _, err := n.Apply(ctx, set("k", "v")); return err }},
		{"VerifyLeader", n.VerifyLeader},
		{"AddVoter", func(ctx context.Context) error { return n.AddVoter(ctx, "node-2", "127.0.0.1:1") }},
		{"RemoveServer", func(ctx context.Context) error { return n.RemoveServer(ctx, "node-2") }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			hung := 0
			var last error
			for range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				err := op.call(ctx)
				cancel()
				if !errors.Is(err, ErrShutdown) {
					hung++
					last = err
				}
			}
			if hung > 0 {
				t.Errorf("%s after Shutdown: %d of 20 calls returned %v, want ErrShutdown (with no deadline they would block forever)", op.name, hung, last)
			}
		})
	}
}

// TestLateServerCatchesUpFromSnapshot: a server added after the log was
// compacted past its start gets the state machine from a snapshot plus the
// log tail, with the same entries and indexes as the leader.
func TestLateServerCatchesUpFromSnapshot(t *testing.T) {
	n1 := newTestNode(t, "node-1", func(c *Config) { c.TrailingLogs = 5 })
	if err := n1.Bootstrap([]Server{self(n1)}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	waitForLeader(t, n1)
	ctx := ctxFor(t)
	for i := range 200 {
		if _, err := n1.Apply(ctx, set(fmt.Sprintf("key-%03d", i), strconv.Itoa(i))); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	if _, err := n1.Apply(ctx, Command{Op: OpDelete, Key: "key-000"}); err != nil {
		t.Fatalf("Apply delete: %v", err)
	}
	if err := n1.raft.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	for i := range 10 { // the tail after the snapshot
		if _, err := n1.Apply(ctx, set(fmt.Sprintf("tail-%d", i), "t")); err != nil {
			t.Fatalf("Apply tail %d: %v", i, err)
		}
	}
	if first, _ := n1.raft.Stats()["last_snapshot_index"]; first == "0" {
		t.Fatalf("leader has no snapshot")
	}

	n2 := newTestNode(t, "node-2", nil)
	if err := n1.AddVoter(ctx, n2.ID(), n2.RaftAddr()); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, func() error {
		if got, want := n2.AppliedIndex(), n1.AppliedIndex(); got < want {
			return fmt.Errorf("node-2 applied %d, leader %d", got, want)
		}
		return nil
	})
	if n2.raft.Stats()["last_snapshot_index"] == "0" {
		t.Errorf("node-2 did not install a snapshot; it replayed the whole log")
	}
	if diff := cmp.Diff(n1.List(""), n2.List("")); diff != "" {
		t.Errorf("node-2 state differs from the leader's (-leader +node-2):\n%s", diff)
	}
	if e, ok := n2.Get("key-000"); ok {
		t.Errorf("node-2 has deleted key-000: %+v", e)
	}
}
