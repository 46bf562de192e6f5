// Package e2e runs the real conclave binary as separate processes on
// loopback and checks what operators see: the CLI's output and the HTTP
// API. Nothing outside test/ imports it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

// Binary is the path of the conclave binary under test; TestMain sets it
// with Build.
var Binary string

// Build compiles the conclave binary into dir and returns its path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "conclave")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/conclavehq/conclave")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Node is one conclave agent process.
type Node struct {
	tb       testing.TB
	Name     string
	IP       string // the node's own loopback address
	Dir      string // data_dir
	HTTPPort int
	SerfPort int
	RaftPort int
	Expect   int
	Client   bool     // run as a client (server = false)
	Join     []string // retry_join entries
	Extra    string   // extra HCL appended to the config
	// VerifyInterval, when set, turns on raft_logstore.verification with
	// this interval (the raft_logstore block is written by the helper, so
	// Extra cannot hold one).
	VerifyInterval time.Duration
	// HTTPS serves the API over TLS on HTTPPort with plain HTTP off
	// (ports.http = -1); Extra must then hold the tls block. The helpers
	// that speak plain HTTP (Get, Leader, CLI, ...) do not work on it.
	HTTPS bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	exitErr error
	starts  int
}

// NewNode prepares a server named name with fresh ports and data_dir in a
// temp dir of the test's. It does not start it.
func NewNode(tb testing.TB, name string, expect int) *Node {
	tb.Helper()
	return NewNodeIn(tb, tb.TempDir(), name, expect)
}

// NewNodeIn is NewNode with the node's files under parent: the data_dir
// parent/name, the configuration parent/name.hcl and a log per run,
// parent/name.<run>.log. The node is killed when the test ends, and its
// logs are written to the test's output if it failed.
func NewNodeIn(tb testing.TB, parent, name string, expect int) *Node {
	tb.Helper()
	ip := testutil.IP(tb)
	p := testutil.PortsOn(tb, ip, 3)
	n := &Node{tb: tb, Name: name, IP: ip, Dir: filepath.Join(parent, name), HTTPPort: p[0], SerfPort: p[1], RaftPort: p[2], Expect: expect}
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		tb.Fatalf("create data dir: %v", err)
	}
	tb.Cleanup(func() {
		n.Kill()
		if tb.Failed() {
			n.dumpLogs()
		}
	})
	return n
}

// NewServersIn prepares n servers named prefix1..prefixN under parent (see
// NewNodeIn) with bootstrap_expect = expect, each joining all the others.
// It does not start them.
func NewServersIn(tb testing.TB, parent, prefix string, n, expect int) []*Node {
	tb.Helper()
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = NewNodeIn(tb, parent, fmt.Sprintf("%s%d", prefix, i+1), expect)
	}
	for _, n := range nodes {
		for _, o := range nodes {
			if o != n {
				n.Join = append(n.Join, o.SerfAddr())
			}
		}
	}
	return nodes
}

// SerfAddr is the node's gossip address, for retry_join.
func (n *Node) SerfAddr() string { return fmt.Sprintf("%s:%d", n.IP, n.SerfPort) }

// HTTPAddr is the node's HTTP API address.
func (n *Node) HTTPAddr() string { return fmt.Sprintf("%s:%d", n.IP, n.HTTPPort) }

// RaftAddr is the node's Raft address.
func (n *Node) RaftAddr() string { return fmt.Sprintf("%s:%d", n.IP, n.RaftPort) }

func (n *Node) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node_name = %q\ndata_dir = %q\nserver = %t\n", n.Name, n.Dir, !n.Client)
	if n.Expect > 0 {
		fmt.Fprintf(&b, "bootstrap_expect = %d\n", n.Expect)
	}
	fmt.Fprintf(&b, "bind_addr = %q\nadvertise_addr = %q\nclient_addr = %q\n", n.IP, n.IP, n.IP)
	if n.HTTPS {
		fmt.Fprintf(&b, "ports {\n  http = -1\n  https = %d\n  serf_lan = %d\n  server = %d\n}\n", n.HTTPPort, n.SerfPort, n.RaftPort)
	} else {
		fmt.Fprintf(&b, "ports {\n  http = %d\n  serf_lan = %d\n  server = %d\n}\n", n.HTTPPort, n.SerfPort, n.RaftPort)
	}
	if len(n.Join) > 0 {
		q, _ := json.Marshal(n.Join)
		fmt.Fprintf(&b, "retry_join = %s\nretry_interval = \"200ms\"\n", q)
	}
	b.WriteString(logStoreBlock(n.VerifyInterval))
	fmt.Fprintf(&b, "log_level = \"debug\"\n%s", n.Extra)
	return b.String()
}

// LogStoreEnv names the environment variable that selects the Raft log
// store of every node: "wal" or "boltdb" (raft_logstore.backend); unset
// or empty leaves the default (wal). `make e2e-boltdb` sets it.
const LogStoreEnv = "CONCLAVE_E2E_LOGSTORE"

// LogStoreBackend is the backend the nodes run with: $CONCLAVE_E2E_LOGSTORE,
// or "wal".
func LogStoreBackend() string {
	if b := os.Getenv(LogStoreEnv); b != "" {
		return b
	}
	return "wal"
}

// WALSegmentEnv names the environment variable that sets every node's
// raft_logstore.wal.segment_size_mb; unset or empty means 1. raft-wal
// preallocates each segment, and the default 64 MiB per server is too much
// for tests; benchmarks of the write path should set 64. "none" writes no
// segment size (the binary's default) and, with no backend and no
// verification asked for, no raft_logstore block at all: how a benchmark
// runs a release from before raft_logstore existed.
const WALSegmentEnv = "CONCLAVE_E2E_WAL_SEGMENT_MB"

// logStoreBlock is the raft_logstore block of every node: the backend when
// $CONCLAVE_E2E_LOGSTORE sets one, verification when verify is positive,
// and the wal segment size.
func logStoreBlock(verify time.Duration) string {
	backend := ""
	if b := os.Getenv(LogStoreEnv); b != "" {
		backend = fmt.Sprintf("  backend = %q\n", b)
	}
	if verify > 0 {
		backend += fmt.Sprintf("  verification {\n    enabled = true\n    interval = %q\n  }\n", verify)
	}
	size := os.Getenv(WALSegmentEnv)
	switch size {
	case "":
		size = "1"
	case "none":
		if backend == "" {
			return ""
		}
		return "raft_logstore {\n" + backend + "}\n"
	}
	return "raft_logstore {\n" + backend + "  wal {\n    segment_size_mb = " + size + "\n  }\n}\n"
}

// ConfigPath is where Start writes the node's configuration file.
func (n *Node) ConfigPath() string { return filepath.Join(filepath.Dir(n.Dir), n.Name+".hcl") }

// Start writes the configuration and starts the agent process in its own
// process group, logging to a new file next to its data_dir.
func (n *Node) Start() {
	n.tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	cfgPath := n.ConfigPath()
	if err := os.WriteFile(cfgPath, []byte(n.config()), 0o600); err != nil {
		n.tb.Fatalf("write config: %v", err)
	}
	n.starts++
	n.logPath = filepath.Join(filepath.Dir(n.Dir), fmt.Sprintf("%s.%d.log", n.Name, n.starts))
	logf, err := os.Create(n.logPath)
	if err != nil {
		n.tb.Fatalf("create log: %v", err)
	}
	cmd := exec.Command(Binary, "agent", "-config-file", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.tb.Fatalf("start %s: %v", n.Name, err)
	}
	n.cmd = cmd
	exited := make(chan struct{})
	n.exited = exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(exited)
	}()
}

// Running reports whether the process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the node's process group and waits for it to exit.
func (n *Node) Kill() { n.signal(syscall.SIGKILL) }

// Stop sends SIGINT and waits for a clean exit (SIGKILL after 20s).
func (n *Node) Stop() { n.signal(syscall.SIGINT) }

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	n.mu.Lock()
	n.cmd = nil
	n.mu.Unlock()
}

// WaitExit waits up to d for the process to exit on its own and returns
// its exit error.
func (n *Node) WaitExit(d time.Duration) error {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited:
		n.mu.Lock()
		defer n.mu.Unlock()
		n.cmd = nil
		return n.exitErr
	case <-time.After(d):
		return errors.New("still running")
	}
}

// Logs returns everything the node logged in its latest run.
func (n *Node) Logs() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

func (n *Node) dumpLogs() {
	for i := 1; i <= n.starts; i++ {
		p := filepath.Join(filepath.Dir(n.Dir), fmt.Sprintf("%s.%d.log", n.Name, i))
		b, _ := os.ReadFile(p)
		if len(b) > 60000 {
			b = b[len(b)-60000:]
		}
		n.tb.Logf("==== %s run %d log (%s) ====\n%s", n.Name, i, p, b)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// Get decodes GET path from the node's HTTP API into v.
func (n *Node) Get(path string, v any) error {
	code, body := n.Check(path)
	switch {
	case code == 0:
		return errors.New(body)
	case code != http.StatusOK:
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return json.Unmarshal([]byte(body), v)
}

// CLI runs the conclave binary with args against this node's HTTP API and
// returns its stdout, stderr and exit code.
func (n *Node) CLI(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary, args...)
	cmd.Env = append(os.Environ(), "CONCLAVE_HTTP_ADDR="+n.HTTPAddr())
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return o.String(), e.String(), code
}

// Leader returns the leader address this node reports.
func (n *Node) Leader() string {
	var l string
	if err := n.Get("/v1/status/leader", &l); err != nil {
		return ""
	}
	return l
}

// Bootstrap returns the node's bootstrap status.
func (n *Node) Bootstrap() (api.BootstrapStatus, error) {
	var st api.BootstrapStatus
	err := n.Get("/v1/operator/bootstrap", &st)
	return st, err
}

// Configuration returns the Raft configuration as this node sees it.
func (n *Node) Configuration() (api.RaftConfiguration, error) {
	var c api.RaftConfiguration
	err := n.Get("/v1/operator/raft/configuration?stale", &c)
	return c, err
}

// WaitForCluster waits until every node in nodes agrees on one leader and
// has a Raft configuration of exactly the voters named in nodes.
func WaitForCluster(tb testing.TB, timeout time.Duration, nodes ...*Node) {
	tb.Helper()
	testutil.WaitFor(tb, timeout, func() error { return ClusterFormed(nodes...) })
}

// ClusterFormed checks that the nodes agree on one leader and that each
// has exactly the nodes as voters.
func ClusterFormed(nodes ...*Node) error {
	var want []string
	for _, n := range nodes {
		want = append(want, n.Name)
	}
	sort.Strings(want)
	leaders := map[string]bool{}
	for _, n := range nodes {
		l := n.Leader()
		if l == "" {
			return fmt.Errorf("%s reports no leader", n.Name)
		}
		leaders[l] = true
		c, err := n.Configuration()
		if err != nil {
			return fmt.Errorf("%s: %v", n.Name, err)
		}
		var got []string
		for _, s := range c.Servers {
			if !s.Voter {
				return fmt.Errorf("%s: %s is not a voter", n.Name, s.Node)
			}
			got = append(got, s.Node)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("%s sees voters [%s], want [%s]", n.Name, strings.Join(got, ","), strings.Join(want, ","))
		}
	}
	if len(leaders) != 1 {
		return fmt.Errorf("nodes disagree on the leader: %v", leaders)
	}
	return nil
}

// LeaderNode returns the node whose Raft address is the leader's.
func LeaderNode(nodes ...*Node) *Node {
	for _, n := range nodes {
		if n.Running() && n.Leader() == n.RaftAddr() {
			return n
		}
	}
	return nil
}

// PID returns the process ID of the running agent, or 0.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}
