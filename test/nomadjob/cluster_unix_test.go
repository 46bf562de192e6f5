//go:build unix

package nomadjob

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Deadlines for the agents. They are generous: the machine running the
// tests may be shared and busy.
const (
	formTimeout  = 2 * time.Minute
	checkTimeout = time.Minute
)

// TestJobFormsCluster runs the job without Nomad: three allocations of the
// server group on three "hosts" (loopback addresses of their own, each
// with a host volume directory), started one after the other as a Nomad
// client would start them, with the job's own args, env, template and
// checks. Then a rolling update replaces the first allocation.
//
// It shows that the rendered retry_join lets the servers find each other
// whatever order they start in, that discovery does not wait for the
// rollout gate, that the gate opens only once the cluster has formed and
// closes while a server is being replaced, and that a replaced server
// keeps its identity through the host volume.
func TestJobFormsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three conclave agents; skipped with -short")
	}
	_, tg, task := mustParseJob(t)
	bin := buildConclave(t)
	dir := t.TempDir()
	hosts := make([]*host, deref(tg.Count))
	for i := range hosts {
		hosts[i] = newHost(t, dir, fmt.Sprintf("host-%d", i+1), tg)
	}
	serfAddr := func(h *host) string { return net.JoinHostPort(h.ip, strconv.Itoa(h.ports["serf"])) }
	c := catalog{}

	// The first server finds only itself in the catalog, so its retry_join
	// is empty: it waits to be joined.
	a1 := newAllocation(t, bin, tg, task, hosts[0])
	if got := a1.start(c); len(got) != 0 {
		t.Fatalf("first server's retry_join = %q, want empty", got)
	}
	waitFor(t, checkTimeout, func() error { return allChecks("alive", http.StatusOK, a1) })
	waitFor(t, checkTimeout, func() error { return allChecks("ready", http.StatusOK, a1) })
	// The rollout gate cannot pass before the cluster bootstraps. This is
	// why discovery must not depend on it.
	if err := a1.wantCheck("voter", http.StatusServiceUnavailable); err != nil {
		t.Fatalf("before bootstrap: %v", err)
	}
	a1.logCheck("voter")

	// Each later server finds all the earlier ones.
	a2 := newAllocation(t, bin, tg, task, hosts[1])
	if d := cmp.Diff([]string{serfAddr(hosts[0])}, a2.start(c)); d != "" {
		t.Fatalf("second server's retry_join (-want +got):\n%s", d)
	}
	a3 := newAllocation(t, bin, tg, task, hosts[2])
	if d := cmp.Diff([]string{serfAddr(hosts[0]), serfAddr(hosts[1])}, a3.start(c)); d != "" {
		t.Fatalf("third server's retry_join (-want +got):\n%s", d)
	}

	// The deployment becomes healthy: every check that counts passes.
	allocs := []*allocation{a1, a2, a3}
	waitFor(t, formTimeout, func() error { return allChecks("voter", http.StatusOK, allocs...) })
	if err := allChecks("alive", http.StatusOK, allocs...); err != nil {
		t.Fatal(err)
	}
	a1.logCheck("voter")
	ids := raftVoters(t, a2, hosts)

	// The CLI inside an allocation (nomad alloc exec) reaches the agent
	// through the job's CONCLAVE_HTTP_ADDR.
	out := a3.cli("members")
	for _, h := range hosts {
		if !strings.Contains(out, h.name) {
			t.Errorf("conclave members in %s lacks %s:\n%s", a3.host.name, h.name, out)
		}
	}
	if n := strings.Count(out, "alive"); n != len(hosts) {
		t.Errorf("conclave members shows %d alive members, want %d:\n%s", n, len(hosts), out)
	}

	// A rolling update replaces host-1's allocation. Nomad stops the old
	// one with the job's kill_signal and deregisters its services.
	a1.stop(c)
	// While it is away the cluster tolerates no failure, so the gate is
	// closed on the servers that are up: Nomad would not stop another one.
	waitFor(t, checkTimeout, func() error { return allChecks("voter", http.StatusServiceUnavailable, a2, a3) })
	a2.logCheck("voter")

	// The new allocation lands on the same host, the only one left with
	// the volume and without a server. Its catalog lists the other two.
	a1b := newAllocation(t, bin, tg, task, hosts[0])
	if d := cmp.Diff([]string{serfAddr(hosts[1]), serfAddr(hosts[2])}, a1b.start(c)); d != "" {
		t.Fatalf("replacement's retry_join (-want +got):\n%s", d)
	}
	allocs = []*allocation{a1b, a2, a3}
	waitFor(t, formTimeout, func() error { return allChecks("voter", http.StatusOK, allocs...) })

	// It came back as the same server: same node name, same node ID from
	// data_dir, so Raft still has three voters and no stale entry.
	if d := cmp.Diff(ids, raftVoters(t, a1b, hosts)); d != "" {
		t.Errorf("Raft voters after the update (-before +after):\n%s", d)
	}
}

// logCheck logs what the check named name answers now.
func (a *allocation) logCheck(name string) {
	a.t.Helper()
	code, body, err := a.check(name)
	if err != nil {
		a.t.Logf("%s: check %s: %v", a.host.name, name, err)
		return
	}
	a.t.Logf("%s: check %s: %d %s", a.host.name, name, code, body)
}

// raftVoters waits until a's Raft configuration has exactly one voter per
// host, named after the host, and returns node name → node ID.
func raftVoters(t *testing.T, a *allocation, hosts []*host) map[string]string {
	t.Helper()
	var want []string
	for _, h := range hosts {
		want = append(want, h.name)
	}
	var ids map[string]string
	waitFor(t, checkTimeout, func() error {
		var cfg struct {
			Servers []struct {
				ID, Node string
				Voter    bool
			}
		}
		if err := a.getJSON("/v1/operator/raft/configuration?stale", &cfg); err != nil {
			return err
		}
		ids = map[string]string{}
		var got []string
		for _, s := range cfg.Servers {
			if s.Voter {
				got = append(got, s.Node)
				ids[s.Node] = s.ID
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) || len(cfg.Servers) != len(want) {
			return fmt.Errorf("raft configuration has %d servers, voters %q; want voters %q only", len(cfg.Servers), got, want)
		}
		return nil
	})
	return ids
}

// getJSON decodes GET path from the allocation's HTTP API into v.
func (a *allocation) getJSON(path string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(a.host.ip, strconv.Itoa(a.host.ports["http"])) + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// cli runs the conclave binary with args and the task's env, as
// `nomad alloc exec <alloc> conclave ...` would, and returns its stdout. A
// non-zero exit fails the test.
func (a *allocation) cli(args ...string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = os.Environ()
	for k, v := range a.task.Env {
		cmd.Env = append(cmd.Env, k+"="+a.interpolate(v))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		a.t.Fatalf("conclave %s in %s: %v\n%s", strings.Join(args, " "), a.host.name, err, stderr.String())
	}
	return stdout.String()
}
