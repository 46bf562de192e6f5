package bench

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/e2e"
)

const (
	// formationRuns is how many fresh clusters each formation benchmark forms.
	formationRuns = 7
	// failoverRuns is how many times the failover benchmark kills the leader.
	failoverRuns = 7
	// measurePoll is the polling interval of the timed measurements.
	measurePoll = 10 * time.Millisecond
	// measureTimeout bounds each timed measurement; a run that takes longer
	// fails the benchmark.
	measureTimeout = 30 * time.Second
	// idleWait is how long a formed cluster idles before its memory is read.
	idleWait = 10 * time.Second
	// loadDuration is how long the stability benchmark keeps the cores
	// busy; -short makes it loadDurationShort.
	loadDuration      = 60 * time.Second
	loadDurationShort = 10 * time.Second
	// loadPoll is the stability benchmark's polling interval.
	loadPoll = 100 * time.Millisecond
)

func BenchmarkFormation3(b *testing.B) { benchFormation(b, 3) }
func BenchmarkFormation5(b *testing.B) { benchFormation(b, 5) }

// benchFormation starts n servers with bootstrap_expect = n, each joining
// all the others, back to back, and measures from the moment the last one
// was started until every server reports the same leader and a Raft
// configuration of all n servers as voters. Each run uses fresh servers.
func benchFormation(b *testing.B, n int) {
	var times []time.Duration
	for run := 1; run <= formationRuns; run++ {
		servers := newServers(b, runRoot(b, fmt.Sprintf("run%d", run)), "s", n, oneLogStore(b), "")
		first := time.Now()
		startAll(servers)
		last := time.Now()
		d, err := pollUntil(last, measureTimeout, measurePoll, func() error {
			return e2e.ClusterFormed(servers...)
		})
		if err != nil {
			b.Fatalf("run %d: %d servers did not form a cluster: %v", run, n, err)
		}
		b.Logf("run %d: formed in %.0f ms (the %d starts took %.1f ms); raft log store: %s", run, ms(d), n, ms(last.Sub(first)), logStoreInUse(b, servers, oneLogStore(b)))
		times = append(times, d)
		killAll(servers)
	}
	report(b, fmt.Sprintf("formation of %d servers", n), times)
}

// BenchmarkFailover kills the leader of a 3-server cluster with SIGKILL and
// measures until both survivors report the same new leader. Between runs
// the killed server is restarted and the cluster is whole again (untimed).
func BenchmarkFailover(b *testing.B) {
	servers := newServers(b, runRoot(b, "cluster"), "f", 3, oneLogStore(b), "")
	startAll(servers)
	waitFormed(b, servers)
	b.Logf("raft log store: %s", logStoreInUse(b, servers, oneLogStore(b)))
	var times []time.Duration
	for run := 1; run <= failoverRuns; run++ {
		start := time.Now()
		old, leader, d, err := killLeader(servers, measureTimeout)
		if err != nil {
			b.Fatalf("run %d: %v", run, err)
		}
		b.Logf("run %d: killed leader %s at %s, new leader %s after %.0f ms",
			run, old.Name, start.UTC().Format("15:04:05.000"), leader, ms(d))
		times = append(times, d)
		old.Start()
		waitFormed(b, servers)
	}
	report(b, "failover of a 3-server cluster", times)
	killAll(servers)
}

// errNoLeader is returned by killLeader when there is no leader to kill.
var errNoLeader = errors.New("no leader to kill")

// killLeader kills the servers' leader with SIGKILL and measures until both
// survivors report the same new leader. It returns the killed server, the
// new leader's Raft address and the time; it does not restart the server.
func killLeader(servers []*e2e.Node, timeout time.Duration) (*e2e.Node, string, time.Duration, error) {
	old := e2e.LeaderNode(servers...)
	if old == nil {
		return nil, "", 0, errNoLeader
	}
	var survivors []*e2e.Node
	valid := map[string]bool{}
	for _, s := range servers {
		if s != old {
			survivors = append(survivors, s)
			valid[s.RaftAddr()] = true
		}
	}
	start := time.Now()
	old.Kill()
	d, err := pollUntil(start, timeout, measurePoll, func() error {
		l0, l1 := survivors[0].Leader(), survivors[1].Leader()
		switch {
		case !valid[l0]:
			return fmt.Errorf("%s reports leader %q", survivors[0].Name, l0)
		case l1 != l0:
			return fmt.Errorf("%s reports leader %q, %s reports %q", survivors[0].Name, l0, survivors[1].Name, l1)
		}
		return nil
	})
	if err != nil {
		return old, "", d, fmt.Errorf("no new leader after killing %s: %w", old.Name, err)
	}
	return old, survivors[0].Leader(), d, nil
}

// BenchmarkIdleMemory forms a 3-server cluster, lets it idle, and reads
// each server's resident set size (VmRSS) and peak (VmHWM).
func BenchmarkIdleMemory(b *testing.B) {
	servers := newServers(b, runRoot(b, "cluster"), "m", 3, oneLogStore(b), "")
	startAll(servers)
	waitFormed(b, servers)
	b.Logf("raft log store: %s", logStoreInUse(b, servers, oneLogStore(b)))
	time.Sleep(idleWait) // the idle period is what is measured, not a wait for a condition
	var rss, hwm, anons []float64
	for _, s := range servers {
		pid := s.PID()
		r, err := procStatusKB(pid, "VmRSS")
		if err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		h, err := procStatusKB(pid, "VmHWM")
		if err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		// Split the resident set: anonymous pages (Go heap, stacks,
		// runtime) versus file pages (the binary's text and data, mapped
		// BoltDB pages), which are shared and can be reclaimed.
		anon, err := procStatusKB(pid, "RssAnon")
		if err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		file, err := procStatusKB(pid, "RssFile")
		if err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		b.Logf("%s (pid %d): VmRSS %.1f MiB (anonymous %.1f, file-backed %.1f), VmHWM %.1f MiB",
			s.Name, pid, float64(r)/1024, float64(anon)/1024, float64(file)/1024, float64(h)/1024)
		anons = append(anons, float64(anon)/1024)
		rss = append(rss, float64(r)/1024)
		hwm = append(hwm, float64(h)/1024)
	}
	slices.Sort(rss)
	slices.Sort(hwm)
	slices.Sort(anons)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rss[len(rss)/2], "median-rss-MiB")
	b.ReportMetric(rss[len(rss)-1], "max-rss-MiB")
	b.ReportMetric(hwm[len(hwm)-1], "max-peak-MiB")
	b.ReportMetric(anons[len(anons)-1], "max-anon-MiB")
	b.Logf("idle resident memory after %s: median %.1f MiB, max %.1f MiB (peak VmHWM max %.1f MiB)",
		idleWait, rss[len(rss)/2], rss[len(rss)-1], hwm[len(hwm)-1])
	killAll(servers)
}

// stabilityObserver tracks what the servers report during the stability
// benchmark.
type stabilityObserver struct {
	lastLeader     map[string]string // per server, last non-empty leader seen
	leaders        map[string]bool   // every non-empty leader seen
	leaderChanges  map[string]int    // per server, changes between non-empty leaders
	startTerm      map[string]uint64
	maxTerm        uint64
	leaderless     int // polls in which a server reported no leader
	failed         int // polls in which a server did not answer
	maxLastContact time.Duration
	maxPoll        time.Duration
	polls          int
}

func (o *stabilityObserver) observe(b *testing.B, s *e2e.Node) {
	t0 := time.Now()
	var self api.Self
	selfErr := s.Get("/v1/agent/self", &self)
	leader := s.Leader()
	if d := time.Since(t0); d > o.maxPoll {
		o.maxPoll = d
	}
	if selfErr != nil {
		o.failed++
		return
	}
	raft := self.Stats["raft"]
	if term, err := strconv.ParseUint(raft["term"], 10, 64); err == nil {
		if _, ok := o.startTerm[s.Name]; !ok {
			o.startTerm[s.Name] = term
		}
		o.maxTerm = max(o.maxTerm, term)
	}
	if raft["state"] == "Follower" {
		if lc, ok := parseLastContact(raft["last_contact"]); ok && lc > o.maxLastContact {
			o.maxLastContact = lc
		}
	}
	if leader == "" {
		o.leaderless++
		b.Logf("%s reports no leader at %s (state %s, term %s)", s.Name, time.Now().UTC().Format("15:04:05.000"), raft["state"], raft["term"])
		return
	}
	o.leaders[leader] = true
	if prev := o.lastLeader[s.Name]; prev != "" && prev != leader {
		o.leaderChanges[s.Name]++
		b.Logf("%s: leader changed from %s to %s (term %s)", s.Name, prev, leader, raft["term"])
	}
	o.lastLeader[s.Name] = leader
}

// newStabilityObserver returns an observer that has seen nothing yet.
func newStabilityObserver() *stabilityObserver {
	return &stabilityObserver{
		lastLeader: map[string]string{}, leaders: map[string]bool{},
		leaderChanges: map[string]int{}, startTerm: map[string]uint64{},
	}
}

// watch polls every server every loadPoll for dur.
func (o *stabilityObserver) watch(b *testing.B, servers []*e2e.Node, dur time.Duration) {
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		for _, s := range servers {
			o.observe(b, s)
		}
		o.polls++
		time.Sleep(loadPoll) // the polling interval of the measurement
	}
}

// changes is the largest number of leader changes one server saw.
func (o *stabilityObserver) changes() int {
	changes := 0
	for _, c := range o.leaderChanges {
		changes = max(changes, c)
	}
	return changes
}

// termIncrease is the highest term seen less the lowest first term.
func (o *stabilityObserver) termIncrease() uint64 {
	var minStart uint64
	for _, t := range o.startTerm {
		if minStart == 0 || t < minStart {
			minStart = t
		}
	}
	return o.maxTerm - minStart
}

// stable reports whether the cluster kept its leader and term throughout.
func (o *stabilityObserver) stable() bool {
	return o.changes() == 0 && o.termIncrease() == 0 && o.leaderless == 0
}

// logElections shows what Raft said about elections since start, so that
// a missed target explains itself.
func logElections(b *testing.B, servers []*e2e.Node, since time.Time) {
	for _, s := range servers {
		for _, l := range electionLines(s, since, 20) {
			b.Logf("%s: %s", s.Name, l)
		}
	}
}

// BenchmarkStabilityUnderLoad forms a 3-server cluster, then keeps every
// core busy with CPU burner processes for the stability window (60 s,
// -short 10 s, or -stability-time) while polling each server's leader and
// Raft term every loadPoll. The target is no leader change and no term
// increase.
func BenchmarkStabilityUnderLoad(b *testing.B) {
	dur := stabilityWindow()
	servers := newServers(b, runRoot(b, "cluster"), "l", 3, oneLogStore(b), "")
	startAll(servers)
	waitFormed(b, servers)
	b.Logf("raft log store: %s", logStoreInUse(b, servers, oneLogStore(b)))

	o := newStabilityObserver()
	for _, s := range servers {
		o.observe(b, s)
	}
	var running []*burner
	for range *burners {
		running = append(running, startBurner(b, dur+10*time.Second))
	}
	loadStart := time.Now()
	o.watch(b, servers, dur)
	for _, bu := range running {
		bu.stop()
	}

	changes, termIncrease := o.changes(), o.termIncrease()
	if !o.stable() {
		logElections(b, servers, loadStart)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(changes), "leader-changes")
	b.ReportMetric(float64(termIncrease), "term-increases")
	b.ReportMetric(float64(o.leaderless), "leaderless-polls")
	b.ReportMetric(ms(o.maxLastContact), "max-last-contact-ms")
	b.Logf("%s with %d CPU burners, %d polls of 3 servers: %d leader change(s), %d distinct leader(s), term +%d, %d leaderless and %d failed answers, follower last_contact max %.0f ms, slowest poll %.0f ms",
		dur, *burners, o.polls, changes, len(o.leaders), termIncrease, o.leaderless, o.failed, ms(o.maxLastContact), ms(o.maxPoll))
	killAll(servers)
}
