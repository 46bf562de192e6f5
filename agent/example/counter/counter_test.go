//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/testutil"
)

// bin is the counter binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "counter-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "counter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build counter: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one counter process.
type proc struct {
	name, ip       string
	http, serf, rp int
	cmd            *exec.Cmd
	log            string
	killed         bool
}

func (p *proc) url(path string) string { return fmt.Sprintf("http://%s:%d%s", p.ip, p.http, path) }
func (p *proc) raftAddr() string       { return fmt.Sprintf("%s:%d", p.ip, p.rp) }

// startCluster starts n counter servers with bootstrap_expect = n, each
// joining all the others. Every process is in a group of its own, killed
// when the test ends (and by the kernel if the test binary dies); a
// failed test prints their logs.
func startCluster(t *testing.T, n int) []*proc {
	t.Helper()
	ps := make([]*proc, n)
	for i := range ps {
		ip := testutil.IP(t)
		ports := testutil.PortsOn(t, ip, 3)
		ps[i] = &proc{name: fmt.Sprintf("counter-%d", i), ip: ip, http: ports[0], serf: ports[1], rp: ports[2]}
	}
	for _, p := range ps {
		var join []string
		for _, o := range ps {
			if o != p {
				join = append(join, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", o.ip, o.serf)))
			}
		}
		dir := t.TempDir()
		hcl := fmt.Sprintf(`node_name = %q
data_dir = %q
server = true
bootstrap_expect = %d
bind_addr = %q
advertise_addr = %q
client_addr = %q
ports {
  http = %d
  serf_lan = %d
  server = %d
}
retry_join = [%s]
retry_interval = "200ms"
performance {
  raft_multiplier = 1
}
log_level = "debug"
`, p.name, filepath.Join(dir, "data"), n, p.ip, p.ip, p.ip, p.http, p.serf, p.rp, strings.Join(join, ", "))
		cfgPath := filepath.Join(dir, "server.hcl")
		if err := os.WriteFile(cfgPath, []byte(hcl), 0o600); err != nil {
			t.Fatal(err)
		}
		p.log = filepath.Join(dir, "log")
		logf, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, "-config-file", cfgPath)
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := p.cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start %s: %v", p.name, err)
		}
		logf.Close()
		t.Cleanup(func() {
			p.kill()
			if t.Failed() {
				b, _ := os.ReadFile(p.log)
				t.Logf("log of %s:\n%s", p.name, b)
			}
		})
	}
	return ps
}

// kill sends SIGKILL to p's process group and reaps it.
func (p *proc) kill() {
	if p.killed {
		return
	}
	p.killed = true
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
}

var client = &http.Client{Timeout: 5 * time.Second}

// call sends a request and decodes a 200's JSON body into v.
func call(method, url string, v any) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

// waitLeader waits until every live process names the same leader and
// returns it.
func waitLeader(t *testing.T, ps []*proc) *proc {
	t.Helper()
	var leader *proc
	testutil.WaitFor(t, 30*time.Second, func() error {
		var addr string
		for _, p := range ps {
			if p.killed {
				continue
			}
			var got string
			if err := call("GET", p.url("/v1/status/leader"), &got); err != nil {
				return err
			}
			if got == "" || (addr != "" && got != addr) {
				return fmt.Errorf("%s names leader %q, others %q", p.name, got, addr)
			}
			addr = got
		}
		for _, p := range ps {
			if !p.killed && p.raftAddr() == addr {
				leader = p
				return nil
			}
		}
		return fmt.Errorf("leader %s is not a live process", addr)
	})
	return leader
}

// TestCounterSurvivesLeaderKill forms a three-server cluster of counter
// processes, increments through a follower (forwarded to the leader) and
// on the leader while the leader is killed with SIGKILL, and checks that every
// surviving server ends at exactly the sum of the acknowledged
// increments. Each increment carries a request ID and is retried with it
// until acknowledged: a retry of one whose outcome was unknown is applied
// at most once, so the sum is exact — no acknowledged write lost, none
// applied twice.
func TestCounterSurvivesLeaderKill(t *testing.T) {
	ps := startCluster(t, 3)
	leader := waitLeader(t, ps)
	var via *proc // a follower, which survives
	for _, p := range ps {
		if p != leader {
			via = p
			break
		}
	}

	// Two writers: one through the follower, one to the leader itself,
	// which is killed under it with requests in flight. After an error a
	// writer sends the same request (same ID) again through the follower.
	var acked, sum, retries atomic.Int64
	done := make(chan error, 2)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopWriter := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(stopWriter) // also when a wait below fails
	writer := func(name string, first *proc) {
		for i := 1; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			path := fmt.Sprintf("/counter/incr?by=%d&id=%s-%d", i, name, i)
			deadline := time.Now().Add(30 * time.Second)
			for to := first; ; to = via {
				var out struct{ Value int64 }
				err := call("POST", to.url(path), &out)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					done <- fmt.Errorf("increment %s-%d never acknowledged: %w", name, i, err)
					return
				}
				retries.Add(1) // outcome unknown: send it again
				time.Sleep(50 * time.Millisecond)
			}
			sum.Add(int64(i))
			acked.Add(1)
		}
	}
	go writer("follower", via)
	go writer("leader", leader)
	waitAcked := func(n int64) {
		t.Helper()
		testutil.WaitFor(t, 60*time.Second, func() error {
			if got := acked.Load(); got < n {
				return fmt.Errorf("%d increments acknowledged, want %d", got, n)
			}
			return nil
		})
	}

	waitAcked(40)
	t.Logf("killing leader %s after %d increments", leader.name, acked.Load())
	leader.kill()
	newLeader := waitLeader(t, ps)
	t.Logf("new leader %s", newLeader.name)
	waitAcked(acked.Load() + 40)
	stopWriter()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a writer did not stop")
		}
	}
	t.Logf("%d increments acknowledged after %d retries", acked.Load(), retries.Load())

	want := sum.Load()
	for _, p := range ps {
		if p.killed {
			continue
		}
		testutil.WaitFor(t, 30*time.Second, func() error {
			var out struct{ Value int64 }
			if err := call("GET", p.url("/counter?stale"), &out); err != nil {
				return err
			}
			if out.Value != want {
				return fmt.Errorf("%s counts %d, want %d (the sum of %d acknowledged increments)", p.name, out.Value, want, acked.Load())
			}
			return nil
		})
	}
	var out struct{ Value int64 }
	if err := call("GET", via.url("/counter"), &out); err != nil || out.Value != want {
		t.Errorf("GET /counter through %s = %d, %v; want %d", via.name, out.Value, err, want)
	}
	if err := call("PUT", via.url("/v1/kv/k"), nil); err == nil || !strings.Contains(err.Error(), ": 404 ") {
		t.Errorf("PUT /v1/kv/k on the counter = %v, want 404: the key/value API is not served", err)
	}
}
