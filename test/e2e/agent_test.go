package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

// TestClientIsAGossipMemberOnly: a client joins the pool, shows up in
// members as a client, and never enters the Raft configuration. Its HTTP
// API still serves the cluster's: it sends server requests (KV, status) to
// a server, and answers 503 once it knows no alive server.
func TestClientIsAGossipMemberOnly(t *testing.T) {
	s := NewNode(t, "srv", 0)
	s.Extra = "bootstrap = true\n"
	s.Start()
	WaitForCluster(t, 15*time.Second, s)

	c := NewNode(t, "cli", 0)
	c.Client = true
	c.Join = []string{s.SerfAddr()}
	c.Start()
	testutil.WaitFor(t, 15*time.Second, func() error {
		out, _, code := s.CLI("members")
		if code != 0 || !regexp.MustCompile(`(?m)^cli\s+\S+\s+alive\s+client\s`).MatchString(out) {
			return fmt.Errorf("members (exit %d):\n%s", code, out)
		}
		return nil
	})
	// Give the reconciler a member event to act on, then check Raft.
	WaitForCluster(t, 5*time.Second, s)
	st, err := c.Bootstrap()
	if err != nil || st.State != api.BootstrapDisabled {
		t.Errorf("client bootstrap status = %+v (%v), want disabled", st, err)
	}
	var leader string
	if err := c.Get("/v1/status/leader", &leader); err != nil || leader != s.RaftAddr() {
		t.Errorf("client /v1/status/leader = %q (%v), want the server's %q", leader, err, s.RaftAddr())
	}

	kv := NewKVClient(10*time.Second, 1)
	defer kv.Close()
	if ok, err := kv.Put(c, "through/client", []byte("v1"), ""); err != nil || !ok {
		t.Fatalf("PUT through the client = %v, %v; want true", ok, err)
	}
	pair, resp, err := kv.Get(s, "through/client", "")
	if err != nil || pair == nil || string(pair.Value) != "v1" {
		t.Fatalf("GET on the server = %+v, %v; want v1", pair, err)
	}
	pair, resp2, err := kv.Get(c, "through/client", "consistent")
	if err != nil || pair == nil || string(pair.Value) != "v1" || resp2.Index != resp.Index {
		t.Fatalf("GET through the client = %+v, %v; want v1 at the server's index %d", pair, err, resp.Index)
	}

	s.Kill()
	testutil.WaitFor(t, 20*time.Second, func() error {
		_, _, err := kv.Get(c, "through/client", "stale")
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 503 || !strings.Contains(se.Body, "No known Conclave servers") {
			return fmt.Errorf("GET through the client with its server dead: %v; want 503 No known Conclave servers", err)
		}
		return nil
	})
}

// TestRetryMaxExitsWithAClearError: an agent that cannot join anyone gives
// up after retry_max attempts and exits non-zero, saying why.
func TestRetryMaxExitsWithAClearError(t *testing.T) {
	n := NewNode(t, "lonely", 3)
	dead := testutil.PortsOn(t, n.IP, 1)[0]
	n.Join = []string{net.JoinHostPort(n.IP, strconv.Itoa(dead))}
	n.Extra = "retry_max = 2\n"
	n.Start()
	err := n.WaitExit(20 * time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("agent exit = %v, want exit status 1", err)
	}
	if logs := n.Logs(); !strings.Contains(logs, "retry_join: 2 attempts failed") {
		t.Fatalf("logs do not say why the agent stopped:\n%s", logs)
	}
}

// TestBadConfigurationStopsBeforeStarting: errors carry file:line:column
// and the agent exits 1 before opening anything.
func TestBadConfigurationStopsBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.hcl")
	os.WriteFile(path, []byte("server = true\ndata_dir = \""+dir+"\"\nbootstrap_expec = 3\n"), 0o600)
	n := &Node{tb: t}
	_, errOut, code := n.CLI("agent", "-config-file", path)
	if code != 1 {
		t.Fatalf("agent with a bad config exit code = %d, want 1", code)
	}
	want := path + `:3:1: Unsupported argument; An argument named "bootstrap_expec" is not expected here. Did you mean "bootstrap_expect"?`
	if !strings.Contains(errOut, want) {
		t.Fatalf("agent error output =\n%s\nwant it to contain\n%s", errOut, want)
	}
	if _, errOut, code := n.CLI("validate", path); code != 1 || !strings.Contains(errOut, "bootstrap_expec") {
		t.Fatalf("validate exit %d, stderr %q; want 1 and the error", code, errOut)
	}
	good := filepath.Join(dir, "good.hcl")
	os.WriteFile(good, []byte("server = true\ndata_dir = \""+dir+"\"\nbootstrap_expect = 2\n"), 0o600)
	out, errOut, code := n.CLI("validate", good)
	if code != 0 || !strings.Contains(out, "Configuration is valid!") || !strings.Contains(errOut+out, "even") {
		t.Fatalf("validate of an even bootstrap_expect: exit %d, stdout %q, stderr %q; want valid with a warning", code, out, errOut)
	}
}

// TestSignals: by default SIGTERM stops a server without leaving (it stays a
// voter and comes back); with leave_on_terminate it leaves the cluster.
func TestSignals(t *testing.T) {
	nodes := startServers(t, "g", 3, 3)
	nodes[2].Extra = "leave_on_terminate = true\n"
	for _, n := range nodes {
		n.Start()
	}
	WaitForCluster(t, 20*time.Second, nodes...)

	syscall.Kill(-pid(t, nodes[1]), syscall.SIGTERM)
	if err := nodes[1].WaitExit(20 * time.Second); err != nil {
		t.Fatalf("SIGTERM: agent exit = %v, want 0", err)
	}
	c, _ := nodes[0].Configuration()
	if len(c.Servers) != 3 {
		t.Fatalf("after SIGTERM without leave: %d servers, want 3", len(c.Servers))
	}
	nodes[1].Start()
	WaitForCluster(t, 20*time.Second, nodes...)

	syscall.Kill(-pid(t, nodes[2]), syscall.SIGTERM)
	if err := nodes[2].WaitExit(20 * time.Second); err != nil {
		t.Fatalf("SIGTERM with leave_on_terminate: agent exit = %v, want 0", err)
	}
	WaitForCluster(t, 20*time.Second, nodes[:2]...)
}

// TestRetryJoinSkipsItsOwnAddress: a retry_join list that holds the agent's
// own address (as a headless Service's DNS name does) must not count
// joining itself as success. Server a lists itself and b, and starts long
// before b; b lists only itself. Were a's self-join a success, a would stop
// retrying and the two would never meet.
func TestRetryJoinSkipsItsOwnAddress(t *testing.T) {
	a := NewNode(t, "a", 2)
	b := NewNode(t, "b", 2)
	a.Join = []string{a.SerfAddr(), b.SerfAddr()}
	b.Join = []string{b.SerfAddr()}
	a.Start()
	testutil.WaitFor(t, 15*time.Second, func() error {
		if n := strings.Count(a.Logs(), "retry_join attempt failed"); n < 3 {
			return fmt.Errorf("a has failed %d retry_join attempts, want 3 before b starts", n)
		}
		return nil
	})
	b.Start()
	WaitForCluster(t, 20*time.Second, a, b)
}
