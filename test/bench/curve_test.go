package bench

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/e2e"
)

// maxFailoverRetries bounds the retries of one row's failovers when the
// leader goes away before it is killed.
const maxFailoverRetries = 3

// curveRow is one row of the stability curve: one oversubscription level
// and one raft_multiplier.
type curveRow struct {
	level, multiplier int
	burners           int
	changes           int
	termIncrease      uint64
	leaderless        int
	maxLastContact    time.Duration
	failovers         []time.Duration
	failedFailovers   int
}

func (r curveRow) failoverCell() string {
	if len(r.failovers) == 0 {
		return "none measured"
	}
	s := summarize(r.failovers)
	return fmt.Sprintf("%.0f (%.0f–%.0f, %d)", ms(s.median), ms(s.min), ms(s.max), len(r.failovers))
}

// BenchmarkStabilityCurve (with -curve; make bench-stability) measures,
// for each oversubscription level in -levels and each raft_multiplier in
// -multipliers, a fresh 3-server cluster under that load: level × cores
// CPU burner processes plus a disk neighbour that rewrites and fsyncs a
// file on the servers' filesystem (level 0: no load). For the stability
// window (-stability-time; 60 s, -short 10 s) it counts leader changes,
// the term increase and leaderless polls; then, with the load still
// running, it kills the leader with SIGKILL -failovers times and times
// each failover. One sub-benchmark, and one table row, per (level,
// multiplier).
func BenchmarkStabilityCurve(b *testing.B) {
	if !*curve {
		b.Skip("BenchmarkStabilityCurve runs with -curve (make bench-stability)")
	}
	lv := parseInts(b, "levels", *levels, 0, 64)
	mults := parseInts(b, "multipliers", *multipliers, 1, 10)
	if *failovers < 0 {
		b.Fatalf("-failovers %d: want 0 or more", *failovers)
	}
	backend := oneLogStore(b)
	window := stabilityWindow()
	rows := map[string]curveRow{}
	var order []string
	for _, level := range lv {
		for _, m := range mults {
			name := fmt.Sprintf("load=%dx/multiplier=%d", level, m)
			order = append(order, name)
			b.Run(name, func(b *testing.B) {
				rows[name] = curveRun(b, backend, level, m, window)
			})
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "stability curve, %s windows, %d cores, log store %s:\n", window, runtime.NumCPU(), orDefault(backend))
	sb.WriteString("| load | raft_multiplier | CPU burners + disk | leader changes | term increase | leaderless polls | max follower last_contact ms | failover median ms (min–max, n) | failed failovers |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range order {
		r, ok := rows[name]
		if !ok {
			fmt.Fprintf(&sb, "| %s | (failed, see its output) |\n", name)
			continue
		}
		disk := "+ 1"
		if r.level == 0 {
			disk = ""
		}
		fmt.Fprintf(&sb, "| %dx | %d | %d %s | %d | %d | %d | %.0f | %s | %d |\n",
			r.level, r.multiplier, r.burners, disk, r.changes, r.termIncrease, r.leaderless, ms(r.maxLastContact), r.failoverCell(), r.failedFailovers)
	}
	// A parent benchmark's log is shown only with -v, which make
	// bench-stability passes; each row's metrics are on its own line anyway.
	b.Log(sb.String())
}

func orDefault(backend string) string {
	if backend == "" {
		return "the binary's default"
	}
	return backend
}

// curveRun measures one row of the stability curve.
func curveRun(b *testing.B, backend string, level, multiplier int, window time.Duration) curveRow {
	root := runRoot(b, "cluster")
	servers := newServers(b, root, "c", 3, backend, fmt.Sprintf("performance {\n  raft_multiplier = %d\n}\n", multiplier))
	startAll(servers)
	waitFormed(b, servers)
	b.Logf("raft log store: %s", logStoreInUse(b, servers, backend))

	r := curveRow{level: level, multiplier: multiplier, burners: level * runtime.NumCPU()}
	// The load must outlast the window and every failover with its
	// re-formation; it is stopped as soon as they are done, and timeout(1)
	// ends it even if this process dies.
	limit := window + time.Duration(*failovers)*2*measureTimeout + 30*time.Second
	var running []*burner
	for range r.burners {
		running = append(running, startBurner(b, limit))
	}
	if level > 0 {
		running = append(running, startDiskNeighbour(b, root, limit))
	}
	defer func() {
		for _, bu := range running {
			bu.stop()
		}
	}()

	o := newStabilityObserver()
	for _, s := range servers {
		o.observe(b, s)
	}
	loadStart := time.Now()
	o.watch(b, servers, window)
	r.changes, r.termIncrease, r.leaderless, r.maxLastContact = o.changes(), o.termIncrease(), o.leaderless, o.maxLastContact
	if !o.stable() {
		logElections(b, servers, loadStart)
	}

	// A leader that goes away between finding it and killing it costs a
	// retry, a bounded number of times.
	retries := 0
failover:
	for run := 1; run <= *failovers; run++ {
		// Under load a flap can leave no leader to kill; wait for one.
		if _, err := pollUntil(time.Now(), measureTimeout, measurePoll, func() error {
			if e2e.LeaderNode(servers...) == nil {
				return errNoLeader
			}
			return nil
		}); err != nil {
			b.Logf("failover %d: %v; no more failovers in this row", run, err)
			r.failedFailovers += *failovers - run + 1
			break
		}
		old, leader, d, err := killLeader(servers, measureTimeout)
		switch {
		case errors.Is(err, errNoLeader) && retries < maxFailoverRetries:
			b.Logf("failover %d: the leader went away before the kill; trying again", run)
			retries++
			run--
			continue
		case errors.Is(err, errNoLeader):
			b.Logf("failover %d: no leader to kill after %d retries; no more failovers in this row", run, retries)
			r.failedFailovers += *failovers - run + 1
			break failover
		case err != nil:
			b.Logf("failover %d: %v", run, err)
			r.failedFailovers++
		default:
			b.Logf("failover %d: killed leader %s, new leader %s after %.0f ms", run, old.Name, leader, ms(d))
			r.failovers = append(r.failovers, d)
		}
		old.Start()
		if _, err := pollUntil(time.Now(), measureTimeout, measurePoll, func() error { return e2e.ClusterFormed(servers...) }); err != nil {
			b.Logf("failover %d: the cluster did not re-form after %s restarted: %v; no more failovers in this row", run, old.Name, err)
			r.failedFailovers += *failovers - run
			break
		}
	}

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(r.changes), "leader-changes")
	b.ReportMetric(float64(r.termIncrease), "term-increases")
	b.ReportMetric(float64(r.leaderless), "leaderless-polls")
	b.ReportMetric(ms(r.maxLastContact), "max-last-contact-ms")
	if len(r.failovers) > 0 {
		b.ReportMetric(ms(summarize(r.failovers).median), "failover-median-ms")
	}
	b.ReportMetric(float64(r.failedFailovers), "failed-failovers")
	disk := ""
	if level > 0 {
		disk = " + a disk neighbour"
	}
	b.Logf("%dx load (%d CPU burners%s), raft_multiplier %d, %s: %d leader change(s), term +%d, %d leaderless polls, follower last_contact max %.0f ms; failover ms %s, %d failed",
		level, r.burners, disk, multiplier, window,
		r.changes, r.termIncrease, r.leaderless, ms(r.maxLastContact), r.failoverCell(), r.failedFailovers)
	killAll(servers)
	return r
}
