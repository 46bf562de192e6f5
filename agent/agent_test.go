package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/serverport"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

// testVersion is the version test agents report.
const testVersion = "0.1.0"

// testAgent starts an agent on a loopback address of its own with free ports and a fresh
// data_dir (unless cb sets one), after nomad's TestServer(t, cb).
func testAgent(t *testing.T, name string, cb func(c *config.Config)) *Agent {
	t.Helper()
	return testAgentWith(t, name, Options{}, cb)
}

// testAgentWith is testAgent with opts' FSM and Routes.
func testAgentWith(t *testing.T, name string, opts Options, cb func(c *config.Config)) *Agent {
	t.Helper()
	ip := testutil.IP(t)
	ports := testutil.PortsOn(t, ip, 3)
	c := &config.Config{
		NodeName:      name,
		Datacenter:    "dc1",
		DataDir:       t.TempDir(),
		Server:        true,
		BindAddr:      ip,
		AdvertiseAddr: ip,
		ClientAddr:    ip,
		Ports:         config.Ports{HTTP: ports[0], SerfLAN: ports[1], Server: ports[2]},
		RetryInterval: 100 * time.Millisecond,
		LogLevel:      "debug",
		Performance:   config.Performance{RaftMultiplier: 1},
		RaftLogStore:  config.RaftLogStore{WAL: config.WALStore{SegmentSizeMB: 1}}, // wal preallocates its segments
	}
	if cb != nil {
		cb(c)
	}
	opts.Config, opts.Logger, opts.Version = c, testutil.Logger(t).Named(name), testVersion
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	a.Start(context.Background())
	t.Cleanup(func() { a.Shutdown() })
	return a
}

func getJSON(t *testing.T, a *Agent, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: decode %q: %v", path, b, err)
		}
	}
	return resp.StatusCode
}

// waitCluster waits until every agent reports the same leader and a Raft
// configuration of exactly want voters.
func waitCluster(t *testing.T, agents []*Agent, want int) {
	t.Helper()
	testutil.WaitFor(t, 15*time.Second, func() error {
		leaders := map[string]bool{}
		for _, a := range agents {
			l, _ := a.node.Leader()
			if l == "" {
				return fmt.Errorf("%s has no leader", a.cfg.NodeName)
			}
			leaders[l] = true
			servers, _, err := a.node.Configuration()
			if err != nil {
				return err
			}
			if len(servers) != want {
				return fmt.Errorf("%s has %d servers in its configuration, want %d", a.cfg.NodeName, len(servers), want)
			}
		}
		if len(leaders) != 1 {
			return fmt.Errorf("agents disagree on the leader: %v", leaders)
		}
		return nil
	})
}

func TestThreeServersFormOneCluster(t *testing.T) {
	var agents []*Agent
	var join []string
	for _, name := range []string{"s3", "s1", "s2"} {
		a := testAgent(t, name, func(c *config.Config) {
			c.BootstrapExpect = 3
			c.RetryJoin = append([]string(nil), join...)
		})
		join = append(join, a.serfAddr())
		agents = append(agents, a)
	}
	// The first agent started with nothing to join; let it join the last.
	if _, err := agents[0].pool.Join([]string{agents[2].serfAddr()}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	waitCluster(t, agents, 3)

	// Exactly one server bootstrapped: the lowest-named one. The others
	// notice their new Raft state within a bootstrap re-check.
	testutil.WaitFor(t, 5*time.Second, func() error {
		for _, a := range agents {
			if st := a.boot.Status(); st.State != api.BootstrapBootstrapped || st.By != "s1" {
				return fmt.Errorf("%s bootstrap status = %+v, want bootstrapped by s1", a.cfg.NodeName, st)
			}
		}
		return nil
	})
	if !strings.Contains(agents[1].boot.Status().Reason, "this server bootstrapped") {
		t.Errorf("s1 status reason = %q, want it to say it bootstrapped", agents[1].boot.Status().Reason)
	}

	// The HTTP API answers in Consul's shapes.
	var leader string
	getJSON(t, agents[0], "/v1/status/leader", &leader)
	var peers []string
	getJSON(t, agents[0], "/v1/status/peers", &peers)
	if len(peers) != 3 || leader == "" {
		t.Errorf("leader %q peers %v, want a leader and 3 peers", leader, peers)
	}
	var conf api.RaftConfiguration
	getJSON(t, agents[1], "/v1/operator/raft/configuration", &conf)
	var nodes []string
	leaders := 0
	for _, s := range conf.Servers {
		nodes = append(nodes, s.Node)
		if s.Leader {
			leaders++
		}
	}
	sort.Strings(nodes)
	if strings.Join(nodes, ",") != "s1,s2,s3" || leaders != 1 {
		t.Errorf("raft configuration nodes %v with %d leaders, want s1,s2,s3 with one leader", nodes, leaders)
	}
	var members []api.Member
	getJSON(t, agents[2], "/v1/agent/members", &members)
	if len(members) != 3 || members[0].Status != api.MemberStatusAlive {
		t.Errorf("members = %+v, want 3 alive", members)
	}
}

func TestRemovePeerIsForwardedToTheLeader(t *testing.T) {
	a1 := testAgent(t, "a1", func(c *config.Config) { c.BootstrapExpect = 3 })
	a2 := testAgent(t, "a2", func(c *config.Config) { c.BootstrapExpect = 3; c.RetryJoin = []string{a1.serfAddr()} })
	a3 := testAgent(t, "a3", func(c *config.Config) { c.BootstrapExpect = 3; c.RetryJoin = []string{a1.serfAddr()} })
	agents := []*Agent{a1, a2, a3}
	waitCluster(t, agents, 3)
	var follower, victim *Agent
	for _, a := range agents {
		if !a.node.IsLeader() {
			if follower == nil {
				follower = a
			} else {
				victim = a
			}
		}
	}
	// Stop the victim first so the reconciler does not add it back.
	victim.Shutdown()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+follower.HTTPAddr()+"/v1/operator/raft/peer?id="+victim.NodeID(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE peer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE peer via follower = %d %q, want 200", resp.StatusCode, body)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		servers, _, err := follower.node.Configuration()
		if err != nil {
			return err
		}
		if len(servers) != 2 {
			return fmt.Errorf("follower sees %d servers, want 2", len(servers))
		}
		return nil
	})

	// Errors are one line with a 4xx status.
	req, _ = http.NewRequest(http.MethodDelete, "http://"+follower.HTTPAddr()+"/v1/operator/raft/peer?id=nope", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || string(body) != "id \"nope\" was not found in the Raft configuration\n" {
		t.Errorf("DELETE unknown peer = %d %q", resp.StatusCode, body)
	}
}

func TestDuplicateNodeNameIsRefused(t *testing.T) {
	a1 := testAgent(t, "dup", func(c *config.Config) { c.Bootstrap = true })
	a2 := testAgent(t, "dup", func(c *config.Config) { c.Server = false; c.RetryJoin = []string{a1.serfAddr()}; c.RetryMax = 1 })
	select {
	case <-a2.ShutdownCh():
	case <-time.After(10 * time.Second):
		t.Fatal("agent with a duplicate name is still running")
	}
	if err := a2.Err(); err == nil || !errors.Is(err, gossip.ErrDuplicateName) && !strings.Contains(err.Error(), "node name already in use") {
		t.Fatalf("Err() = %v, want a duplicate name error", err)
	}
}

func TestBootstrapStatusStates(t *testing.T) {
	client := testAgent(t, "client", func(c *config.Config) { c.Server = false })
	var st api.BootstrapStatus
	getJSON(t, client, "/v1/operator/bootstrap", &st)
	if st.State != api.BootstrapDisabled {
		t.Errorf("client bootstrap state = %q, want disabled", st.State)
	}

	dir := t.TempDir()
	single := testAgent(t, "single", func(c *config.Config) { c.Bootstrap = true; c.DataDir = dir })
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !single.node.IsLeader() {
			return errors.New("single server is not leader yet")
		}
		return nil
	})
	getJSON(t, single, "/v1/operator/bootstrap", &st)
	if st.State != api.BootstrapBootstrapped || st.By != "single" {
		t.Errorf("single bootstrap status = %+v, want bootstrapped by single", st)
	}
	single.Shutdown()

	// Restarted on the same data_dir: existing state, never bootstraps again.
	again := testAgent(t, "single", func(c *config.Config) { c.Bootstrap = true; c.DataDir = dir })
	getJSON(t, again, "/v1/operator/bootstrap", &st)
	if st.State != api.BootstrapExistingState {
		t.Errorf("restarted bootstrap state = %q, want existing-state", st.State)
	}
	if again.NodeID() != single.NodeID() {
		t.Errorf("node ID after restart = %s, want %s", again.NodeID(), single.NodeID())
	}

	waiting := testAgent(t, "w1", func(c *config.Config) { c.BootstrapExpect = 3 })
	testutil.WaitFor(t, 5*time.Second, func() error {
		getJSON(t, waiting, "/v1/operator/bootstrap", &st)
		if st.State != api.BootstrapWaiting || st.Reason != "waiting for 3 servers, 1 seen" || len(st.Seen) != 1 {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})
}

// TestNewFailsCleanlyWhenAPortIsTaken: a start-up error is an error, not a
// panic, and leaves nothing listening.
func TestNewFailsCleanlyWhenAPortIsTaken(t *testing.T) {
	ip := testutil.IP(t)
	taken, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	ports := testutil.PortsOn(t, ip, 2)
	c := &config.Config{
		NodeName: "busy", Datacenter: "dc1", DataDir: t.TempDir(), Server: true,
		BindAddr: ip, AdvertiseAddr: ip, ClientAddr: ip,
		Ports:       config.Ports{HTTP: ports[0], SerfLAN: ports[1], Server: busy},
		Performance: config.Performance{RaftMultiplier: 1},
	}
	a, err := New(Options{Config: c, Logger: testutil.Logger(t), Version: testVersion})
	if err == nil {
		a.Shutdown()
		t.Fatal("New with a taken server port = nil error, want one")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("New error = %q, want it to say the address is in use", err)
	}
	// The HTTP port New had opened before failing is free again.
	l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(ports[0])))
	if err != nil {
		t.Fatalf("HTTP port still taken after the failed New: %v", err)
	}
	l.Close()
}

// TestServerPortServesOnlyForwardedRoutes: the server port answers the
// bootstrap claim and the leader's routes, but not the rest of the API, so
// a loopback client_addr keeps leave and join local.
func TestServerPortServesOnlyForwardedRoutes(t *testing.T) {
	a := testAgent(t, "solo", func(c *config.Config) { c.Bootstrap = true })
	client := serverport.NewClient()
	do := func(method, path string) int {
		req, _ := http.NewRequest(method, "http://"+a.RaftAddr()+path, nil)
		resp, err := client.Send(req)
		if err != nil {
			t.Fatalf("%s %s over the server port: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range []struct{ method, path string }{
		{http.MethodPut, "/v1/agent/leave"},
		{http.MethodPut, "/v1/agent/join/127.0.0.1"},
		{http.MethodGet, "/v1/agent/members"},
	} {
		if code := do(p.method, p.path); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s over the server port = %d, want 404 or 405", p.method, p.path, code)
		}
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if code := do(http.MethodGet, "/v1/operator/raft/configuration?stale"); code != http.StatusOK {
			return fmt.Errorf("raft configuration over the server port = %d", code)
		}
		return nil
	})
	select {
	case <-a.ShutdownCh():
		t.Fatal("agent shut down: leave was served over the server port")
	default:
	}
}
