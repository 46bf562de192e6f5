//go:build unix

package nomadjob

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	hargs "github.com/hashicorp/nomad/helper/args"
)

// buildConclave builds the conclave binary from the root of the repository
// into a temp dir of the test's and returns its path. The main module is
// built apart from this one, with its own go.mod.
func buildConclave(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "conclave")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build conclave in %s: %v\n%s", root, err, out)
	}
	return bin
}

// host is a Nomad client node that declares the host volume: a loopback
// address of its own, the group's ports on it, and the volume's directory.
type host struct {
	name   string         // node.unique.name
	ip     string         // the address of the host network
	ports  map[string]int // port label → port
	volume string         // host path of the host volume
}

// newHost prepares a host named name under dir with a fresh loopback
// address and a free port for each of the group's port labels. Nomad would
// give every host the job's static ports; separate loopback addresses
// would allow that too, but another process bound to 0.0.0.0 on one of
// those ports would break the test, so the ports are picked free.
func newHost(t *testing.T, dir, name string, tg *api.TaskGroup) *host {
	t.Helper()
	h := &host{name: name, ip: loopbackIP(), ports: map[string]int{}, volume: filepath.Join(dir, name, "volume")}
	if err := os.MkdirAll(h.volume, 0o700); err != nil {
		t.Fatalf("create host volume: %v", err)
	}
	used := map[int]bool{}
	for _, p := range tg.Networks[0].ReservedPorts {
		port := freePort(t, h.ip)
		for used[port] {
			port = freePort(t, h.ip)
		}
		used[port] = true
		h.ports[p.Label] = port
	}
	return h
}

// allocation is one run of the job's task on a host, as a Nomad client
// runs it: services registered first, then the template, then the process.
type allocation struct {
	t       *testing.T
	bin     string
	tg      *api.TaskGroup
	task    *api.Task
	host    *host
	id      string // NOMAD_ALLOC_ID
	taskDir string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	logPath string
}

// newAllocation prepares an allocation of the task on h with a new ID and
// task dir. The process is killed when the test ends, and its log is
// written to the test output if the test failed.
func newAllocation(t *testing.T, bin string, tg *api.TaskGroup, task *api.Task, h *host) *allocation {
	t.Helper()
	id := fmt.Sprintf("%08x-0000-4000-8000-%012x", rand.Uint32(), rand.Uint64()&0xffffffffffff)
	a := &allocation{t: t, bin: bin, tg: tg, task: task, host: h, id: id,
		taskDir: filepath.Join(filepath.Dir(h.volume), "alloc-"+id[:8])}
	if err := os.MkdirAll(filepath.Join(a.taskDir, "local"), 0o755); err != nil {
		t.Fatalf("create task dir: %v", err)
	}
	a.logPath = filepath.Join(a.taskDir, "conclave.log")
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			b, _ := os.ReadFile(a.logPath)
			if len(b) > 40000 {
				b = b[len(b)-40000:]
			}
			t.Logf("==== %s, allocation %s (%s) ====\n%s", h.name, id[:8], a.logPath, b)
		}
	})
	return a
}

// env is the task's environment as Nomad builds it for interpolation and
// for templates: the allocation ID, the task dir, and the address and
// port of each port label on the host network. The task dir is the path on
// this machine, as with the exec and raw_exec drivers; in a container it
// is /local.
func (a *allocation) env() map[string]string {
	env := map[string]string{
		"NOMAD_ALLOC_ID":   a.id,
		"NOMAD_TASK_DIR":   filepath.Join(a.taskDir, "local"),
		"NOMAD_TASK_NAME":  a.task.Name,
		"NOMAD_GROUP_NAME": deref(a.tg.Name),
		"NOMAD_JOB_NAME":   "conclave",
	}
	for label, port := range a.host.ports {
		p := strconv.Itoa(port)
		env["NOMAD_IP_"+label] = a.host.ip
		env["NOMAD_HOST_IP_"+label] = a.host.ip
		env["NOMAD_PORT_"+label] = p
		env["NOMAD_HOST_PORT_"+label] = p
		env["NOMAD_ADDR_"+label] = net.JoinHostPort(a.host.ip, p)
		env["NOMAD_HOST_ADDR_"+label] = net.JoinHostPort(a.host.ip, p)
	}
	return env
}

// nodeAttrs are the node attributes Nomad interpolates next to the
// environment.
func (a *allocation) nodeAttrs() map[string]string {
	return map[string]string{"node.unique.name": a.host.name}
}

// interpolate replaces ${...} in s as the Nomad client does
// (taskenv.ReplaceEnv, through helper/args.ReplaceEnv), then maps the
// volume mount's destination to the host volume's directory, as the mount
// would inside the task.
func (a *allocation) interpolate(s string) string {
	s = hargs.ReplaceEnv(s, a.env(), a.nodeAttrs())
	for _, m := range a.task.VolumeMounts {
		if dest := deref(m.Destination); dest != "" && strings.Contains(s, dest) {
			s = strings.ReplaceAll(s, dest, a.host.volume)
		}
	}
	return s
}

// start does what a Nomad client does with a new allocation of the group:
// it registers the group's services in c (alloc runner prerun, before any
// task), renders the task's templates into the task dir, and starts the
// task with its interpolated args and env. It returns the rendered
// retry_join list.
func (a *allocation) start(c catalog) []string {
	a.t.Helper()
	for _, s := range a.tg.Services {
		c.register(s.Name, a.id, a.host.ip, a.host.ports[s.PortLabel])
	}

	env := a.env()
	var rendered string
	for _, tmpl := range a.task.Templates {
		out := renderTemplate(a.t, tmpl, env, c)
		dest := filepath.Join(a.taskDir, deref(tmpl.DestPath))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			a.t.Fatalf("create template dir: %v", err)
		}
		if err := os.WriteFile(dest, []byte(out), 0o644); err != nil {
			a.t.Fatalf("write template: %v", err)
		}
		if deref(tmpl.DestPath) == retryJoinDest {
			rendered = out
		}
	}

	args := taskArgs(a.t, a.task)
	for i := range args {
		args[i] = a.interpolate(args[i])
	}
	procEnv := os.Environ()
	for k, v := range env {
		procEnv = append(procEnv, k+"="+v)
	}
	for k, v := range a.task.Env {
		procEnv = append(procEnv, k+"="+a.interpolate(v))
	}

	logf, err := os.Create(a.logPath)
	if err != nil {
		a.t.Fatalf("create log: %v", err)
	}
	cmd := exec.Command(a.bin, args...)
	cmd.Env = procEnv
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		a.t.Fatalf("start %s: %v", a.host.name, err)
	}
	exited := make(chan struct{})
	a.mu.Lock()
	a.cmd, a.exited = cmd, exited
	a.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		a.mu.Lock()
		a.exitErr = err
		a.mu.Unlock()
		close(exited)
	}()
	a.t.Logf("%s: allocation %s started: conclave %s", a.host.name, a.id[:8], strings.Join(args, " "))
	return retryJoinOf(a.t, rendered)
}

// stop stops the task as Nomad does: the job's kill_signal, then SIGKILL
// once kill_timeout has passed. It fails the test if the agent did not
// exit cleanly within kill_timeout. Nomad then deregisters the
// allocation's services; so does stop, from c.
func (a *allocation) stop(c catalog) {
	a.t.Helper()
	sig := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}[a.task.KillSignal]
	if sig == 0 {
		a.t.Fatalf("kill_signal %q: this test knows SIGTERM and SIGINT", a.task.KillSignal)
	}
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	if cmd == nil {
		a.t.Fatalf("stop %s: not running", a.host.name)
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	timeout := deref(a.task.KillTimeout)
	select {
	case <-exited:
	case <-time.After(timeout):
		a.kill()
		a.t.Fatalf("%s: the agent did not exit within kill_timeout %s of %s", a.host.name, timeout, a.task.KillSignal)
	}
	a.mu.Lock()
	err := a.exitErr
	a.cmd = nil
	a.mu.Unlock()
	if err != nil {
		a.t.Errorf("%s: agent exit after %s: %v, want a clean exit", a.host.name, a.task.KillSignal, err)
	}
	c.deregister(a.id)
}

// kill kills the process group and waits for the process to exit.
func (a *allocation) kill() {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// running reports whether the agent process has not exited.
func (a *allocation) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return false
	}
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// check runs the group service check named name against the allocation
// as Nomad's own checker does for the nomad provider: GET the check's
// path, resolved against the service's address, with the check's timeout.
// It returns the status code and the body (what Nomad keeps of it, 3 KiB)
// on one line.
func (a *allocation) check(name string) (int, string, error) {
	for _, s := range a.tg.Services {
		for _, c := range s.Checks {
			if c.Name != name {
				continue
			}
			rel, err := url.Parse(c.Path)
			if err != nil {
				return 0, "", fmt.Errorf("check %s path %q: %w", name, c.Path, err)
			}
			base := url.URL{Scheme: "http", Host: net.JoinHostPort(a.host.ip, strconv.Itoa(a.host.ports[s.PortLabel]))}
			client := &http.Client{Timeout: c.Timeout}
			resp, err := client.Get(base.ResolveReference(rel).String())
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 3<<10))
			return resp.StatusCode, strings.Join(strings.Fields(string(b)), " "), nil
		}
	}
	return 0, "", fmt.Errorf("the job has no check named %q", name)
}

// wantCheck returns nil when the check named name answers status, and an
// error saying what it answered otherwise.
func (a *allocation) wantCheck(name string, status int) error {
	if !a.running() {
		return fmt.Errorf("%s: the agent exited", a.host.name)
	}
	code, body, err := a.check(name)
	if err != nil {
		return fmt.Errorf("%s: check %s: %w", a.host.name, name, err)
	}
	if code != status {
		return fmt.Errorf("%s: check %s answered %d %q, want %d", a.host.name, name, code, body, status)
	}
	return nil
}

// waitFor calls cond every 100ms until it returns nil, and fails the test
// with cond's last error if that does not happen within timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allChecks returns nil when every allocation's check name answers status.
func allChecks(name string, status int, allocs ...*allocation) error {
	var errs []error
	for _, a := range allocs {
		if err := a.wantCheck(name, status); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var (
	ipMu   sync.Mutex
	ipNext uint32
)

// loopbackIP returns a loopback address of its own, 127.A.B.C with A from
// 200 to 249: picked at random per process, then counted up. The main
// module's test/testutil hands out 127.100-199.x.x, so the two never meet.
func loopbackIP() string {
	ipMu.Lock()
	defer ipMu.Unlock()
	if ipNext == 0 {
		ipNext = uint32(200+rand.IntN(50))<<16 | uint32(rand.IntN(256))<<8
	}
	ipNext++
	if ipNext&0xff == 0 || ipNext&0xff == 255 {
		ipNext += 2
	}
	return fmt.Sprintf("127.%d.%d.%d", ipNext>>16&0xff, ipNext>>8&0xff, ipNext&0xff)
}

// freePort returns a port that was free for TCP and UDP on ip a moment ago
// (gossip uses both).
func freePort(t *testing.T, ip string) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("find a free port on %s: %v", ip, err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(p)))
		l.Close()
		if uerr == nil {
			u.Close()
			return p
		}
	}
	t.Fatalf("no port free for both TCP and UDP on %s after 100 tries", ip)
	return 0
}
