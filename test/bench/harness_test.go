package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/e2e"
	"github.com/conclavehq/conclave/test/testutil"
)

// server is one conclave agent process. e2e.Node cannot be used for the
// process itself because NewNode takes a *testing.T and a benchmark has a
// *testing.B; it also keeps the process unexported, and the memory
// benchmark needs the PID. So server runs the process, with the same
// configuration e2e.Node writes, and keeps an e2e.Node only as its view of
// the HTTP API (Get, Leader, Configuration and e2e.ClusterFormed use
// nothing but the exported ports and name).
type server struct {
	tb      testing.TB
	api     *e2e.Node
	root    string // holds <name>/ (data_dir), <name>.hcl and <name>.<n>.log
	cfgPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// newServers prepares n servers named prefix1..prefixN under root, with
// bootstrap_expect = n, each joining all the others (as e2e's startServers
// does). Their configurations are written at once so that starting them
// later costs only the fork and exec.
func newServers(tb testing.TB, root, prefix string, n int) []*server {
	tb.Helper()
	out := make([]*server, n)
	for i := range out {
		name := fmt.Sprintf("%s%d", prefix, i+1)
		p := testutil.Ports(tb, 3)
		s := &server{
			tb:   tb,
			root: root,
			api: &e2e.Node{
				Name: name, Dir: filepath.Join(root, name),
				HTTPPort: p[0], SerfPort: p[1], RaftPort: p[2], Expect: n,
			},
			cfgPath: filepath.Join(root, name+".hcl"),
		}
		if err := os.MkdirAll(s.api.Dir, 0o700); err != nil {
			tb.Fatalf("create data dir: %v", err)
		}
		tb.Cleanup(func() {
			s.Kill()
			if tb.Failed() {
				s.dumpLogs()
			}
		})
		out[i] = s
	}
	for _, s := range out {
		for _, o := range out {
			if o != s {
				s.api.Join = append(s.api.Join, o.api.SerfAddr())
			}
		}
		if err := os.WriteFile(s.cfgPath, []byte(s.config()), 0o600); err != nil {
			tb.Fatalf("write config: %v", err)
		}
	}
	return out
}

// config is the configuration e2e.Node writes (test/e2e/cluster.go); keep
// the two the same so the benchmarks measure what the e2e tests run.
func (s *server) config() string {
	n := s.api
	var b strings.Builder
	fmt.Fprintf(&b, "node_name = %q\ndata_dir = %q\nserver = true\n", n.Name, n.Dir)
	if n.Expect > 0 {
		fmt.Fprintf(&b, "bootstrap_expect = %d\n", n.Expect)
	}
	fmt.Fprintf(&b, "bind_addr = \"127.0.0.1\"\nadvertise_addr = \"127.0.0.1\"\nclient_addr = \"127.0.0.1\"\n")
	fmt.Fprintf(&b, "ports {\n  http = %d\n  serf_lan = %d\n  server = %d\n}\n", n.HTTPPort, n.SerfPort, n.RaftPort)
	if len(n.Join) > 0 {
		q, _ := json.Marshal(n.Join)
		fmt.Fprintf(&b, "retry_join = %s\nretry_interval = \"200ms\"\n", q)
	}
	fmt.Fprintf(&b, "log_level = \"debug\"\n%s", n.Extra)
	return b.String()
}

func (s *server) Name() string     { return s.api.Name }
func (s *server) RaftAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.api.RaftPort) }

func (s *server) logPath(run int) string {
	return filepath.Join(s.root, fmt.Sprintf("%s.%d.log", s.api.Name, run))
}

// Start starts the agent in its own process group with its output in a
// log file next to its data dir.
func (s *server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts++
	logf, err := os.Create(s.logPath(s.starts))
	if err != nil {
		s.tb.Fatalf("create log: %v", err)
	}
	cmd := exec.Command(e2e.Binary, "agent", "-config-file", s.cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the benchmark binary dies (a -timeout panic skips
	// cleanups), the agents die with it instead of lingering.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.tb.Fatalf("start %s: %v", s.api.Name, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
}

// Running reports whether the process is alive.
func (s *server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// PID returns the agent's process ID, or 0 if it is not running.
func (s *server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill sends SIGKILL to the agent's process group and waits for the agent
// to exit. It does nothing if the agent is not running.
func (s *server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		s.tb.Errorf("%s did not exit within 20s of SIGKILL", s.api.Name)
	}
}

func (s *server) dumpLogs() {
	for i := 1; i <= s.starts; i++ {
		b, _ := os.ReadFile(s.logPath(i))
		if len(b) > 30000 {
			b = b[len(b)-30000:]
		}
		s.tb.Logf("==== %s run %d log (%s) ====\n%s", s.api.Name, i, s.logPath(i), b)
	}
}

func apis(servers []*server) []*e2e.Node {
	out := make([]*e2e.Node, len(servers))
	for i, s := range servers {
		out[i] = s.api
	}
	return out
}

func startAll(servers []*server) {
	for _, s := range servers {
		s.Start()
	}
}

func killAll(servers []*server) {
	for _, s := range servers {
		s.Kill()
	}
}

// waitFormed waits (untimed, for setup) until the servers agree on one
// leader and each has all of them as voters.
func waitFormed(tb testing.TB, servers []*server) {
	tb.Helper()
	testutil.WaitFor(tb, 30*time.Second, func() error { return e2e.ClusterFormed(apis(servers)...) })
}

// leaderOf returns the running server that the servers agree is the leader.
func leaderOf(servers []*server) *server {
	for _, s := range servers {
		if s.Running() && s.api.Leader() == s.RaftAddr() {
			return s
		}
	}
	return nil
}

// errPollTimeout is returned by pollUntil when cond is still failing at
// the deadline.
var errPollTimeout = errors.New("condition not met before the deadline")

// pollUntil calls cond every interval until it returns nil and returns the
// time from start to the end of that successful call; the true moment lies
// at most one interval plus one call earlier.
func pollUntil(start time.Time, timeout, interval time.Duration, cond func() error) (time.Duration, error) {
	deadline := start.Add(timeout)
	for {
		err := cond()
		now := time.Now()
		if err == nil {
			return now.Sub(start), nil
		}
		if now.After(deadline) {
			return now.Sub(start), fmt.Errorf("%w (%s): %v", errPollTimeout, timeout, err)
		}
		time.Sleep(interval) // the polling interval of the measurement
	}
}

// runRoot returns the directory for one run's servers: a fresh temp dir,
// or a named directory under -logdir that is kept.
func runRoot(tb testing.TB, run string) string {
	tb.Helper()
	if *logDir == "" {
		return tb.TempDir()
	}
	dir := filepath.Join(*logDir, strings.ReplaceAll(tb.Name(), "/", "_"), run)
	if err := os.RemoveAll(dir); err != nil {
		tb.Fatalf("clear %s: %v", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatalf("create %s: %v", dir, err)
	}
	return dir
}

// summary is the median, minimum and maximum of a set of durations.
type summary struct{ median, min, max time.Duration }

func summarize(ds []time.Duration) summary {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return summary{median: med, min: s[0], max: s[n-1]}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// report records a duration summary as the benchmark's metrics and drops
// the meaningless ns/op (one op is a whole benchmark of many runs).
func report(b *testing.B, what string, ds []time.Duration) summary {
	b.Helper()
	s := summarize(ds)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(s.median), "median-ms")
	b.ReportMetric(ms(s.min), "min-ms")
	b.ReportMetric(ms(s.max), "max-ms")
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.0f", ms(d))
	}
	b.Logf("%s over %d runs: median %.0f ms, min %.0f ms, max %.0f ms (runs: %s ms)",
		what, len(ds), ms(s.median), ms(s.min), ms(s.max), strings.Join(parts, " "))
	return s
}

// procStatusKB returns the named field (VmRSS, VmHWM, …) of
// /proc/<pid>/status in KiB.
func procStatusKB(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		if err != nil {
			return 0, fmt.Errorf("parse %s %q: %w", field, v, err)
		}
		return kb, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// burner is a process that keeps one core busy. It runs under timeout(1)
// so it ends on its own even if the benchmark binary dies without
// cleaning up.
type burner struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startBurner(tb testing.TB, limit time.Duration) *burner {
	tb.Helper()
	secs := strconv.Itoa(int(limit.Seconds()) + 1)
	cmd := exec.Command("timeout", "-s", "KILL", secs, "sh", "-c", "while :; do :; done")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start CPU burner: %v", err)
	}
	bu := &burner{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(bu.exited)
	}()
	tb.Cleanup(bu.stop)
	return bu
}

func (bu *burner) stop() {
	select {
	case <-bu.exited:
		return
	default:
	}
	syscall.Kill(-bu.cmd.Process.Pid, syscall.SIGKILL)
	<-bu.exited
}

// lastContactRe matches raft's last_contact stat when it is a duration
// (it is "0" on the leader and "never" before any contact).
var lastContactRe = regexp.MustCompile(`^[0-9.]+(ns|µs|us|ms|s|m|h)`)

func parseLastContact(v string) (time.Duration, bool) {
	if !lastContactRe.MatchString(v) {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// electionMarkers select the log lines that tell why a leader was lost.
var electionMarkers = []string{
	"heartbeat timeout reached", "entering candidate state", "election won",
	"entering leader state", "failed to contact", "stepping down", "pre-vote",
	"lost leadership", "rejecting", "memberlist: Suspect", "memberlist: Marking",
}

// electionLines returns up to max lines of the server's latest log that
// mention elections, leadership or failure detection.
func electionLines(s *server, max int) []string {
	s.mu.Lock()
	run := s.starts
	s.mu.Unlock()
	b, err := os.ReadFile(s.logPath(run))
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, m := range electionMarkers {
			if strings.Contains(l, m) {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}
