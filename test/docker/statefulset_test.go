package docker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/fakek8s"
	"github.com/conclavehq/conclave/test/testutil"
)

const (
	// kubeconfigPath is where each server container finds the kubeconfig
	// of the fake Kubernetes API.
	kubeconfigPath = "/conclave/kube/config"

	// kubeletPeriod is how often the test's kubelet updates the pods, and
	// kubeletLifetime bounds its loop whatever happens to the test.
	kubeletPeriod   = 250 * time.Millisecond
	kubeletLifetime = 15 * time.Minute

	// stopTimeout is docker stop's grace period: the agent's graceful
	// shutdown takes up to 15s, as a pod's terminationGracePeriodSeconds
	// must allow.
	stopTimeout = "20"
)

// statefulSet runs Conclave servers the way a Kubernetes StatefulSet runs
// them, on a Docker network the test creates: each server is a container
// named <prefix><n>-conclave-<i> with the node name conclave-<i>, a volume of
// its own for its data_dir, and a fixed IP that changes whenever the
// container is replaced. The servers find each other only through
// go-discover's k8s provider, pointed at a fake Kubernetes API (fakek8s)
// on the network's gateway. The test plays the kubelet: a loop reports
// each pod Running while its container runs, Ready while its GET
// /v1/status/ready answers 200, and its IP.
type statefulSet struct {
	t          *testing.T
	prefix     string // the run's prefix and a number of its own
	image      string
	network    string
	subnet     string // the first three octets of the /24, with a final "."
	gateway    string
	k8s        *fakek8s.Server
	kubeconfig string // on the host
	namespace  string
	pods       []*pod

	mu      sync.Mutex
	nextIP  int                    // last octet of the next IP to hand out
	logs    []string               // logs of replaced containers, shown if the test fails
	clients map[string]*api.Client // by IP, so that connections are reused
}

// pod is one server of a statefulSet.
type pod struct {
	name      string // pod and node name, conclave-<i>
	container string // the set's prefix + name
	volume    string // data_dir volume, kept across replacements

	// Set by the statefulSet under its mu.
	ip      string // IP of the current container, "" while there is none
	running bool   // the kubelet saw the container running
	ready   bool   // the kubelet saw GET /v1/status/ready answer 200
}

// sets counts the statefulSets of this run, to name each one's resources
// apart.
var sets atomic.Int32

// newStatefulSet prepares n servers: the network, the fake API, the
// kubeconfig and the volumes, and starts the kubelet loop. It starts no
// container; see startOrdered and start. Everything is removed when the
// test ends.
func newStatefulSet(t *testing.T, n int) *statefulSet {
	t.Helper()
	s := &statefulSet{
		t:         t,
		prefix:    fmt.Sprintf("%s%d-", prefix, sets.Add(1)),
		image:     testImage(t),
		namespace: "conclave-test",
		nextIP:    10,
		clients:   map[string]*api.Client{},
	}
	s.createNetwork()
	s.k8s = fakek8s.Start(t, s.gateway+":0")
	s.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := fakek8s.WriteKubeconfig(s.kubeconfig, s.k8s.URL()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("conclave-%d", i)
		p := &pod{name: name, container: s.prefix + name, volume: s.prefix + name + "-data"}
		mustDocker(t, "volume", "create", "--label", runLabel+"="+prefix, p.volume)
		t.Cleanup(func() { cleanupDocker(t, "volume", "rm", "--force", p.volume) })
		s.pods = append(s.pods, p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), kubeletLifetime)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.kubelet(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// Registered last, so run first: the containers go before their
	// network and volumes.
	t.Cleanup(func() {
		for _, p := range s.pods {
			if t.Failed() {
				s.saveLogs(p)
			}
			cleanupDocker(t, "container", "rm", "--force", p.container)
		}
		if t.Failed() {
			s.mu.Lock()
			for _, l := range s.logs {
				t.Log(l)
			}
			s.mu.Unlock()
		}
	})
	return s
}

// createNetwork creates a bridge network on a free /24 of 10.0.0.0/8, a
// private range, so that the agents' default advertise address (the
// host's private IP) is the container's.
func (s *statefulSet) createNetwork() {
	t := s.t
	t.Helper()
	s.network = s.prefix + "net"
	var lastErr error
	for range 20 {
		s.subnet = fmt.Sprintf("10.%d.%d.", 200+rand.IntN(50), rand.IntN(256))
		s.gateway = s.subnet + "1"
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		_, err := docker(ctx, "network", "create", "--driver", "bridge", "--label", runLabel+"="+prefix,
			"--subnet", s.subnet+"0/24", "--gateway", s.gateway, s.network)
		cancel()
		if err == nil {
			t.Cleanup(func() { cleanupDocker(t, "network", "rm", s.network) })
			// The bridge's gateway address is on this host unless the
			// engine runs elsewhere (a remote DOCKER_HOST, a desktop VM),
			// where neither it nor the containers can be reached.
			l, err := net.Listen("tcp", s.gateway+":0")
			if err != nil {
				t.Skipf("skipping: the Docker engine's networks are not reachable from this host: %v", err)
			}
			l.Close()
			return
		}
		if !strings.Contains(err.Error(), "overlap") {
			t.Fatal(err)
		}
		lastErr = err
	}
	t.Fatalf("no free subnet for the test network: %v", lastErr)
}

// start runs p's container with a new IP.
func (s *statefulSet) start(p *pod) {
	s.t.Helper()
	s.mu.Lock()
	ip := fmt.Sprintf("%s%d", s.subnet, s.nextIP)
	s.nextIP++
	s.mu.Unlock()
	join := fmt.Sprintf(`provider=k8s kubeconfig=%s namespace=%s label_selector="app=conclave"`, kubeconfigPath, s.namespace)
	mustDocker(s.t, "run", "--detach", "--name", p.container, "--hostname", p.name,
		"--label", runLabel+"="+prefix,
		"--network", s.network, "--ip", ip,
		"--volume", p.volume+":/conclave/data",
		"--volume", s.kubeconfig+":"+kubeconfigPath+":ro",
		s.image, "agent",
		"-server", "-node="+p.name, "-bootstrap-expect=3",
		"-data-dir=/conclave/data", "-client=0.0.0.0",
		"-retry-join="+join, "-retry-interval=1s",
		"-log-level=debug")
	s.mu.Lock()
	p.ip = ip
	s.mu.Unlock()
}

// stop stops p's container with SIGTERM (docker stop, as the kubelet
// deletes a pod) and removes it; its volume stays. It returns how long the
// agent took to exit. It may run in a goroutine of its own: it fails the
// test with Errorf, and returns the error that makes the test stop.
func (s *statefulSet) stop(p *pod) (time.Duration, error) {
	s.mu.Lock()
	p.ip = ""
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	start := time.Now()
	if _, err := docker(ctx, "container", "stop", "--time", stopTimeout, p.container); err != nil {
		return 0, err
	}
	took := time.Since(start)
	code, err := docker(ctx, "container", "inspect", "--format", "{{.State.ExitCode}}", p.container)
	if err != nil {
		return took, err
	}
	if code != "0" {
		s.t.Errorf("%s exited with code %s after SIGTERM, want 0 (a graceful shutdown)", p.name, code)
	}
	s.saveLogs(p)
	_, err = docker(ctx, "container", "rm", p.container)
	return took, err
}

// saveLogs keeps the tail of p's container logs for a failure report.
func (s *statefulSet) saveLogs(p *pod) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "container", "logs", "--tail", "300", p.container).CombinedOutput()
	if err != nil {
		out = fmt.Appendf(out, "\ndocker logs: %v", err)
	}
	s.mu.Lock()
	s.logs = append(s.logs, fmt.Sprintf("=== logs of %s (%s)\n%s", p.container, time.Now().Format(time.TimeOnly), bytes.TrimSpace(out)))
	s.mu.Unlock()
}

// startOrdered starts the pods one at a time, each once the previous one
// is Ready, as a StatefulSet with podManagementPolicy OrderedReady does.
// It works only because readiness needs no leader: conclave-0 must be
// Ready while it is alone.
func (s *statefulSet) startOrdered(timeout time.Duration) {
	s.t.Helper()
	for _, p := range s.pods {
		s.start(p)
		testutil.WaitFor(s.t, timeout, func() error {
			if !s.state(p).ready {
				return fmt.Errorf("pod %s is not Ready", p.name)
			}
			return nil
		})
	}
}

// state returns a copy of p as the kubelet last saw it.
func (s *statefulSet) state(p *pod) pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *p
}

// ip returns the IP of p's current container, "" when it has none.
func (s *statefulSet) ip(p *pod) string { return s.state(p).ip }

// client returns an API client for p's current container.
func (s *statefulSet) client(p *pod) *api.Client {
	s.t.Helper()
	ip := s.ip(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[ip]; ok {
		return c
	}
	c, err := api.NewClient(ip + ":8500")
	if err != nil {
		s.t.Fatal(err)
	}
	s.clients[ip] = c
	return c
}

// kubelet updates the pods of the fake API every kubeletPeriod until ctx
// ends.
func (s *statefulSet) kubelet(ctx context.Context) {
	probe := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(kubeletPeriod)
	defer tick.Stop()
	for {
		s.kubeletOnce(ctx, probe)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *statefulSet) kubeletOnce(ctx context.Context, probe *http.Client) {
	names := make([]string, len(s.pods))
	for i, p := range s.pods {
		names[i] = p.container
	}
	// docker inspect prints the containers that exist, and fails for the
	// others (between a stop and the next start).
	out, _ := docker(ctx, append([]string{"container", "inspect", "--format",
		"{{.Name}} {{.State.Running}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"}, names...)...)
	seen := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			seen[strings.TrimPrefix(f[0], "/")] = f[1:]
		}
	}
	pods := make([]fakek8s.Pod, len(s.pods))
	for i, p := range s.pods {
		var running bool
		var ip string
		if f := seen[p.container]; len(f) == 2 && f[0] == "true" {
			running, ip = true, f[1]
		}
		ready := running && readyz(ctx, probe, ip)
		s.mu.Lock()
		p.running, p.ready = running, ready
		s.mu.Unlock()
		pods[i] = fakek8s.Pod{
			Name: p.name, Namespace: s.namespace,
			Labels: map[string]string{"app": "conclave"},
			Phase:  "Pending", HostIP: s.gateway, Ready: &ready,
		}
		if running {
			pods[i].Phase, pods[i].PodIP = "Running", ip
		}
	}
	s.k8s.SetPods(pods)
}

// readyz is the readiness probe: GET /v1/status/ready answers 200.
func readyz(ctx context.Context, probe *http.Client, ip string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ip+":8500/v1/status/ready", nil)
	if err != nil {
		return false
	}
	resp, err := probe.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// clusterView is what the servers report once they agree on one cluster.
type clusterView struct {
	leader string            // the leader's Raft address
	ids    map[string]string // node name -> node ID
	config *api.RaftConfiguration
}

// waitForCluster waits until every pod's server reports the same leader,
// and the leader's Raft configuration holds exactly the pods, as voters,
// at their current addresses, with exactly one leader.
func (s *statefulSet) waitForCluster(timeout time.Duration) clusterView {
	s.t.Helper()
	var view clusterView
	poll(s.t, timeout, func() error {
		view = clusterView{ids: map[string]string{}}
		for _, p := range s.pods {
			if s.ip(p) == "" {
				return fmt.Errorf("%s has no container", p.name)
			}
			c := s.client(p)
			leader, err := c.Leader()
			if err != nil {
				return fmt.Errorf("%s: leader: %w", p.name, err)
			}
			if leader == "" || (view.leader != "" && leader != view.leader) {
				return fmt.Errorf("%s reports leader %q, another reports %q", p.name, leader, view.leader)
			}
			view.leader = leader
			self, err := c.Self()
			if err != nil {
				return fmt.Errorf("%s: self: %w", p.name, err)
			}
			view.ids[p.name] = self.Config.NodeID
		}
		cfg, err := s.client(s.pods[0]).RaftConfiguration()
		if err != nil {
			return fmt.Errorf("raft configuration: %w", err)
		}
		if err := s.checkConfig(cfg, view); err != nil {
			return err
		}
		view.config = cfg
		return nil
	})
	return view
}

// checkConfig returns nil when cfg holds exactly the pods, as voters at
// their current addresses with the IDs in view, and exactly one leader,
// the one in view.
func (s *statefulSet) checkConfig(cfg *api.RaftConfiguration, view clusterView) error {
	var got, want []string
	leaders := 0
	for _, srv := range cfg.Servers {
		got = append(got, fmt.Sprintf("%s %s %s voter=%t", srv.Node, srv.ID, srv.Address, srv.Voter))
		if srv.Leader {
			leaders++
			if srv.Address != view.leader {
				return fmt.Errorf("raft configuration names leader %s, the servers report %s", srv.Address, view.leader)
			}
		}
	}
	for _, p := range s.pods {
		want = append(want, fmt.Sprintf("%s %s %s:8300 voter=true", p.name, view.ids[p.name], s.ip(p)))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("raft configuration is %q, want %q", got, want)
	}
	if leaders != 1 {
		return fmt.Errorf("raft configuration has %d leaders, want 1", leaders)
	}
	return nil
}

// put writes key=value through p's server, which forwards to the leader,
// and returns the entry as a consistent read then reports it.
func (s *statefulSet) put(p *pod, key, value string) *api.KVPair {
	s.t.Helper()
	c := s.client(p)
	if err := c.KVPut(&api.KVPair{Key: key, Value: []byte(value)}); err != nil {
		s.t.Fatalf("put %s through %s: %v", key, p.name, err)
	}
	kv, _, err := c.KVGet(key, &api.QueryOptions{Consistent: true})
	if err != nil || kv == nil {
		s.t.Fatalf("get %s through %s = %v, %v; want the value just written", key, p.name, kv, err)
	}
	return kv
}

// TestStatefulSetRollout runs three servers as a StatefulSet does, then
// replaces all three at once, with the same names and volumes but new IPs,
// and checks that the cluster that comes back is the same one: the same
// node IDs, the same data and Raft history, one leader, three voters at
// the new addresses, and no second bootstrap.
func TestStatefulSetRollout(t *testing.T) {
	s := newStatefulSet(t, 3)
	start := time.Now()
	s.startOrdered(60 * time.Second)
	before := s.waitForCluster(90 * time.Second)
	t.Logf("cluster formed in %s: leader %s", time.Since(start).Round(time.Millisecond), before.leader)

	written := map[string]*api.KVPair{}
	var lastIndex uint64
	for i := range 9 {
		key := fmt.Sprintf("rollout/%d", i)
		kv := s.put(s.pods[i%3], key, fmt.Sprintf("value-%d", i))
		written[key] = kv
		lastIndex = max(lastIndex, kv.ModifyIndex)
	}
	oldIPs := map[string]string{}
	for _, p := range s.pods {
		oldIPs[p.name] = s.ip(p)
	}

	// Delete every pod at once, as `kubectl rollout restart` with
	// maxUnavailable = 3 or a node drain does, then create them again.
	start = time.Now()
	errs := make([]error, len(s.pods))
	var wg sync.WaitGroup
	for i, p := range s.pods {
		wg.Go(func() { _, errs[i] = s.stop(p) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("stopped all three in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	for _, p := range s.pods {
		s.start(p)
	}
	after := s.waitForCluster(120 * time.Second)
	t.Logf("cluster back in %s: leader %s", time.Since(start).Round(time.Millisecond), after.leader)

	for _, p := range s.pods {
		if s.ip(p) == oldIPs[p.name] {
			t.Fatalf("%s kept IP %s; the test must give it a new one", p.name, oldIPs[p.name])
		}
		if after.ids[p.name] != before.ids[p.name] {
			t.Errorf("%s: node ID after the rollout = %s, want %s (from its volume)", p.name, after.ids[p.name], before.ids[p.name])
		}
		// No second bootstrap: every server restarted from its Raft state.
		st, err := s.client(p).Bootstrap()
		if err != nil {
			t.Fatalf("%s: bootstrap status: %v", p.name, err)
		}
		if st.State != api.BootstrapExistingState {
			t.Errorf("%s: bootstrap state = %q (%s), want %q", p.name, st.State, st.Reason, api.BootstrapExistingState)
		}
	}

	// The data, and the Raft history it was written in: every entry keeps
	// its indexes, and a new write comes after all of them.
	for key, want := range written {
		got, _, err := s.client(s.pods[1]).KVGet(key, &api.QueryOptions{Consistent: true})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		if got == nil || string(got.Value) != string(want.Value) || got.CreateIndex != want.CreateIndex || got.ModifyIndex != want.ModifyIndex {
			t.Errorf("after the rollout, %s = %+v, want %+v", key, got, want)
		}
	}
	kv := s.put(s.pods[2], "rollout/after", "after")
	if kv.CreateIndex <= lastIndex {
		t.Errorf("a write after the rollout got index %d, want more than %d, the last index before it", kv.CreateIndex, lastIndex)
	}
}
