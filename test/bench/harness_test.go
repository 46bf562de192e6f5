package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/e2e"
)

func startAll(servers []*e2e.Node) {
	for _, s := range servers {
		s.Start()
	}
}

func killAll(servers []*e2e.Node) {
	for _, s := range servers {
		s.Kill()
	}
}

// waitFormed waits (untimed, for setup) until the servers agree on one
// leader and each has all of them as voters.
func waitFormed(tb testing.TB, servers []*e2e.Node) {
	tb.Helper()
	e2e.WaitForCluster(tb, 30*time.Second, servers...)
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

// burner is a neighbour process that loads the machine: a CPU burner that
// keeps one core busy, or a disk neighbour. It runs under timeout(1) so it
// ends on its own even if the benchmark binary dies without cleaning up,
// in a process group of its own that stop kills.
type burner struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startBurner(tb testing.TB, limit time.Duration) *burner {
	tb.Helper()
	return startNeighbour(tb, "CPU burner", limit, "while :; do :; done")
}

// startDiskNeighbour starts a process that rewrites an 8 MiB file in dir
// and fsyncs it, over and over, for at most limit: a disk-heavy neighbour
// on the servers' filesystem.
func startDiskNeighbour(tb testing.TB, dir string, limit time.Duration) *burner {
	tb.Helper()
	return startNeighbour(tb, "disk neighbour", limit,
		`while :; do dd if=/dev/zero of="$1/neighbour.dat" bs=1M count=8 conv=fsync status=none || exit 1; done`, dir)
}

// startNeighbour runs the sh script with args for at most limit.
func startNeighbour(tb testing.TB, what string, limit time.Duration, script string, args ...string) *burner {
	tb.Helper()
	secs := strconv.Itoa(int(limit.Seconds()) + 1)
	cmd := exec.Command("timeout", append([]string{"-s", "KILL", secs, "sh", "-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", what, err)
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

// electionLines returns up to max lines of the server's latest log,
// logged at or after since, that mention elections, leadership or failure
// detection.
func electionLines(s *e2e.Node, since time.Time, max int) []string {
	var out []string
	for _, l := range strings.Split(s.Logs(), "\n") {
		// hclog lines start with an RFC 3339 timestamp in milliseconds.
		ts, _, _ := strings.Cut(l, " ")
		if t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", ts); err != nil || t.Before(since.Truncate(time.Millisecond)) {
			continue
		}
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

// logStoreBackends returns the backends -logstore names, in order, or one
// empty string (the binary's default) when it is unset.
func logStoreBackends(tb testing.TB) []string {
	tb.Helper()
	if *logStore == "" {
		return []string{""}
	}
	var out []string
	for _, be := range strings.Split(*logStore, ",") {
		be = strings.TrimSpace(be)
		if be != "wal" && be != "boltdb" {
			tb.Fatalf("-logstore %q: %q is not wal or boltdb", *logStore, be)
		}
		out = append(out, be)
	}
	return out
}

// oneLogStore is the single backend -logstore names ("" when unset), for
// the benchmarks that run one kind of cluster.
func oneLogStore(tb testing.TB) string {
	tb.Helper()
	be := logStoreBackends(tb)
	if len(be) != 1 {
		tb.Fatalf("-logstore %q: this benchmark takes one backend; only BenchmarkSideBySide takes a list", *logStore)
	}
	return be[0]
}

// benchWALSegmentMB is the product's default raft-wal segment size, set
// through test/e2e's WALSegmentEnv: the e2e harness's 1 MiB would make the
// log roll over during a write benchmark.
const benchWALSegmentMB = "64"

// newServers prepares n servers as e2e.NewServersIn does (bootstrap_expect
// = n), with extra appended to each configuration, and selects the
// raft_logstore backend of the servers started from now on, unless it is
// empty (then the binary's default, or $CONCLAVE_E2E_LOGSTORE, holds).
func newServers(tb testing.TB, parent, prefix string, n int, backend, extra string) []*e2e.Node {
	tb.Helper()
	if backend != "" {
		if err := os.Setenv(e2e.LogStoreEnv, backend); err != nil {
			tb.Fatalf("set %s: %v", e2e.LogStoreEnv, err)
		}
	}
	servers := e2e.NewServersIn(tb, parent, prefix, n, n)
	for _, s := range servers {
		s.Extra += extra
	}
	return servers
}

// storeOf names the Raft log store in a server's data_dir by its files, as
// the server itself recognises it: raft/wal/ is wal, raft/raft.db boltdb.
func storeOf(n *e2e.Node) string {
	if fi, err := os.Stat(filepath.Join(n.Dir, "raft", "wal")); err == nil && fi.IsDir() {
		return "wal"
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "raft", "raft.db")); err == nil {
		return "boltdb"
	}
	return "unknown"
}

// logStoreInUse returns the log store the started servers use, and stops
// the benchmark if they differ or if want is set and they do not use it.
func logStoreInUse(tb testing.TB, servers []*e2e.Node, want string) string {
	tb.Helper()
	got := storeOf(servers[0])
	for _, s := range servers[1:] {
		if st := storeOf(s); st != got {
			tb.Fatalf("%s uses log store %s, %s uses %s", servers[0].Name, got, s.Name, st)
		}
	}
	if want != "" && got != want {
		tb.Fatalf("-logstore %s: the servers use %s (found in %s/raft); this tree's test/e2e does not pass %s to the servers' raft_logstore block yet",
			want, got, servers[0].Dir, e2e.LogStoreEnv)
	}
	return got
}

// stabilityWindow is how long the stability benchmarks watch the cluster:
// -stability-time, or loadDuration (loadDurationShort with -short).
func stabilityWindow() time.Duration {
	switch {
	case *stabilityTime > 0:
		return *stabilityTime
	case testing.Short():
		return loadDurationShort
	}
	return loadDuration
}

// parseInts parses a comma-separated list of integers in [lo, hi].
func parseInts(tb testing.TB, flagName, list string, lo, hi int) []int {
	tb.Helper()
	var out []int
	for _, f := range strings.Split(list, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < lo || v > hi {
			tb.Fatalf("-%s %q: %q is not an integer from %d to %d", flagName, list, f, lo, hi)
		}
		out = append(out, v)
	}
	return out
}
