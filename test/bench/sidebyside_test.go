package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/e2e"
	"github.com/conclavehq/conclave/test/testutil"
)

const (
	// sbsSeqWritesShort, sbsOpsShort and sbsMaxTimeShort are the sizes of
	// BenchmarkSideBySide's trials with -short (a smoke run); without it
	// they are kvSeqWrites, kvOps and kvMaxTime, as in BenchmarkKVWrite….
	sbsSeqWritesShort = 300
	sbsOpsShort       = 3000
	sbsMaxTimeShort   = 3 * time.Second
	// probeOps is how many fsyncs and loopback round trips each floor
	// probe times; probeSize is the bytes written or sent in each.
	probeOps  = 1000
	probeSize = 100
	// probePrealloc is the size of the fsync probe's preallocated file.
	probePrealloc = 1 << 20
)

// trial is what one system measured in one round.
type trial struct {
	seq, w32         throughput
	rssAnon, rssFile int // KiB, of the leader after the concurrent load
}

// throughput summarises one timed load.
type throughput struct {
	n        int
	rate     float64 // operations per second
	p50, p99 time.Duration
}

func summarizeLoad(lat []time.Duration, elapsed time.Duration) throughput {
	s := slices.Clone(lat)
	slices.Sort(s)
	return throughput{n: len(s), rate: float64(len(s)) / elapsed.Seconds(), p50: percentile(s, 0.50), p99: percentile(s, 0.99)}
}

func (t throughput) String() string {
	return fmt.Sprintf("%d ops, %.0f ops/s, p50 %.3f ms, p99 %.3f ms", t.n, t.rate, ms(t.p50), ms(t.p99))
}

// sbsSizes are the sizes of one round's trials.
type sbsSizes struct {
	seqWrites, ops int
	maxTime        time.Duration
}

// BenchmarkSideBySide (with -etcd; make bench-etcd) measures Conclave and
// a 3-member etcd cluster from the same machine in one run, in interleaved
// rounds: in each round, for each -logstore backend, a fresh Conclave
// cluster; then a fresh etcd cluster written through etcd's gRPC client;
// then a fresh etcd cluster written through its HTTP gateway; then the
// floor probes (fsync and loopback round trip). Every trial is the same
// workload: sequential PUTs to the leader, then kvConcurrency writers,
// kvValueSize-byte values, keep-alive connections. It reports the median
// over the rounds of each figure, and how many rounds each Conclave
// variant won against etcd's gRPC.
func BenchmarkSideBySide(b *testing.B) {
	if !*withEtcd {
		b.Skip("BenchmarkSideBySide runs with -etcd (make bench-etcd)")
	}
	etcd, err := exec.LookPath(*etcdBin)
	if err != nil {
		b.Fatalf("find the etcd binary %q: %v; %s", *etcdBin, err, etcdInstallHint)
	}
	version, err := exec.Command(etcd, "--version").Output()
	if err != nil {
		b.Fatalf("%s --version: %v", etcd, err)
	}
	loadBin, err := buildEtcdLoad()
	if err != nil {
		b.Fatal(err)
	}
	if *rounds < 1 {
		b.Fatalf("-rounds %d: want at least 1", *rounds)
	}
	sz := sbsSizes{seqWrites: kvSeqWrites, ops: kvOps, maxTime: kvMaxTime}
	if testing.Short() {
		sz = sbsSizes{seqWrites: sbsSeqWritesShort, ops: sbsOpsShort, maxTime: sbsMaxTimeShort}
	}
	var systems []string
	backendOf := map[string]string{}
	for _, be := range logStoreBackends(b) {
		name := "conclave"
		if be != "" {
			name += "-" + be
		}
		systems = append(systems, name)
		backendOf[name] = be
	}
	systems = append(systems, "etcd-grpc", "etcd-http")
	b.Logf("%s: %s; %d rounds of %s; %d sequential writes, then %d writers for %d ops or %s; %d-byte values",
		etcd, firstLine(version), *rounds, strings.Join(systems, ", "), sz.seqWrites, kvConcurrency, sz.ops, sz.maxTime, kvValueSize)

	results := map[string][]trial{}
	var fsyncs, appends, rtts []time.Duration
	for round := 1; round <= *rounds; round++ {
		for _, name := range systems {
			root := runRoot(b, fmt.Sprintf("round%d-%s", round, name))
			var t trial
			switch name {
			case "etcd-grpc", "etcd-http":
				t = etcdTrial(b, etcd, loadBin, root, name == "etcd-grpc", sz)
			default:
				t = conclaveTrial(b, root, backendOf[name], sz)
			}
			b.Logf("round %d %s: sequential %s; %d writers %s; leader RSS %.1f MiB (anonymous %.1f, file-backed %.1f)",
				round, name, t.seq, kvConcurrency, t.w32, float64(t.rssAnon+t.rssFile)/1024, float64(t.rssAnon)/1024, float64(t.rssFile)/1024)
			results[name] = append(results[name], t)
			dropRunRoot(b, root)
		}
		probeDir := runRoot(b, fmt.Sprintf("round%d-probe", round))
		f, err := fsyncProbe(probeDir, true)
		if err != nil {
			b.Fatalf("fsync probe in %s: %v", probeDir, err)
		}
		fa, err := fsyncProbe(probeDir, false)
		if err != nil {
			b.Fatalf("fsync probe in %s: %v", probeDir, err)
		}
		r, err := rttProbe(b)
		if err != nil {
			b.Fatalf("loopback round-trip probe: %v", err)
		}
		fs := fsType(probeDir)
		dropRunRoot(b, probeDir)
		b.Logf("round %d floor probes: write %d B + fdatasync p50 %.3f ms into a preallocated file, %.3f ms appending (%s); loopback TCP round trip p50 %.3f ms",
			round, probeSize, ms(f), ms(fa), fs, ms(r))
		fsyncs, appends, rtts = append(fsyncs, f), append(appends, fa), append(rtts, r)
	}
	reportSideBySide(b, systems, results, fsyncs, rtts)
	b.Logf("for comparison, write + fdatasync appending to a growing file (no preallocation, so each sync also commits the new size): median p50 %.3f ms",
		ms(summarize(appends).median))
}

// conclaveTrial forms a fresh Conclave cluster under root and measures it.
func conclaveTrial(b *testing.B, root, backend string, sz sbsSizes) trial {
	b.Helper()
	kb := newKVBenchIn(b, root, backend)
	defer kb.close()
	put := func(c, i int) error { return kb.put(kb.leader, c, i) }
	var t trial
	t.seq = summarizeLoad(load(b, 1, sz.seqWrites, kvMaxTime*4, nil, put))
	t.w32 = summarizeLoad(load(b, kvConcurrency, sz.ops, sz.maxTime, nil, put))
	// The leader may have changed under the load; read the one that is.
	leader := kb.leader
	if l := e2e.LeaderNode(kb.servers...); l != nil {
		leader = l
	}
	t.rssAnon, t.rssFile = rssSplit(b, "conclave leader "+leader.Name, leader.PID())
	return t
}

// etcdTrial forms a fresh etcd cluster under root and measures it through
// the gRPC load generator or through the HTTP gateway.
func etcdTrial(b *testing.B, etcd, loadBin, root string, grpc bool, sz sbsSizes) trial {
	b.Helper()
	ec := startEtcd(b, etcd, root, 3)
	defer ec.kill()
	leader, err := ec.leader()
	if err != nil {
		b.Fatal(err)
	}
	var t trial
	if grpc {
		t.seq = summarizeLoad(grpcLoad(b, loadBin, leader, 1, sz.seqWrites, kvMaxTime*4))
		t.w32 = summarizeLoad(grpcLoad(b, loadBin, leader, kvConcurrency, sz.ops, sz.maxTime))
	} else {
		tr := newKVTransport()
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		value := []byte(strings.Repeat("v", kvValueSize))
		put := func(cl, i int) error { return httpPut(c, leader, kvKey(cl, i), value) }
		t.seq = summarizeLoad(load(b, 1, sz.seqWrites, kvMaxTime*4, nil, put))
		t.w32 = summarizeLoad(load(b, kvConcurrency, sz.ops, sz.maxTime, nil, put))
	}
	// The leader may have changed under the load; read the one that is.
	if l, err := ec.leader(); err == nil {
		leader = l
	}
	t.rssAnon, t.rssFile = rssSplit(b, "etcd leader "+leader.name, leader.pid())
	return t
}

// rssSplit returns the process's anonymous and file-backed resident
// memory in KiB.
func rssSplit(b *testing.B, what string, pid int) (anon, file int) {
	b.Helper()
	anon, err := procStatusKB(pid, "RssAnon")
	if err != nil {
		b.Fatalf("%s: %v", what, err)
	}
	file, err = procStatusKB(pid, "RssFile")
	if err != nil {
		b.Fatalf("%s: %v", what, err)
	}
	return anon, file
}

// dropRunRoot removes a finished trial's data (etcd and raft-wal
// preallocate 64 MiB per log segment), unless -logdir keeps it.
func dropRunRoot(b *testing.B, dir string) {
	b.Helper()
	if *logDir != "" {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatalf("remove %s: %v", dir, err)
	}
}

// reportSideBySide logs the table of medians over the rounds, the floor,
// the targets, and records the main figures as metrics.
func reportSideBySide(b *testing.B, systems []string, results map[string][]trial, fsyncs, rtts []time.Duration) {
	b.Helper()
	med := func(name string, f func(trial) float64) float64 {
		var vs []float64
		for _, t := range results[name] {
			vs = append(vs, f(t))
		}
		return medianFloat(vs)
	}
	rows := []struct {
		label string
		cell  func(name string) string
	}{
		{"sequential PUT/s", func(n string) string { return fmt.Sprintf("%.0f", med(n, func(t trial) float64 { return t.seq.rate })) }},
		{"sequential p50 / p99 ms", func(n string) string {
			return fmt.Sprintf("%.2f / %.2f", med(n, func(t trial) float64 { return ms(t.seq.p50) }), med(n, func(t trial) float64 { return ms(t.seq.p99) }))
		}},
		{fmt.Sprintf("%d writers PUT/s", kvConcurrency), func(n string) string { return fmt.Sprintf("%.0f", med(n, func(t trial) float64 { return t.w32.rate })) }},
		{fmt.Sprintf("%d writers p50 / p99 ms", kvConcurrency), func(n string) string {
			return fmt.Sprintf("%.1f / %.1f", med(n, func(t trial) float64 { return ms(t.w32.p50) }), med(n, func(t trial) float64 { return ms(t.w32.p99) }))
		}},
		{"leader RSS MiB (anon + file)", func(n string) string {
			a, f := med(n, func(t trial) float64 { return float64(t.rssAnon) / 1024 }), med(n, func(t trial) float64 { return float64(t.rssFile) / 1024 })
			return fmt.Sprintf("%.0f (%.0f + %.0f)", med(n, func(t trial) float64 { return float64(t.rssAnon+t.rssFile) / 1024 }), a, f)
		}},
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "medians over %d rounds:\n| |", len(fsyncs))
	for _, n := range systems {
		fmt.Fprintf(&sb, " %s |", n)
	}
	sb.WriteString("\n|---|" + strings.Repeat("---|", len(systems)) + "\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s |", r.label)
		for _, n := range systems {
			fmt.Fprintf(&sb, " %s |", r.cell(n))
		}
		sb.WriteString("\n")
	}
	b.Log(sb.String())

	fsync, rtt := summarize(fsyncs).median, summarize(rtts).median
	floor := 2*fsync + 2*rtt
	b.Logf("floor = leader fsync + follower fsync + two loopback round trips = 2 × %.3f + 2 × %.3f = %.3f ms (medians of the per-round p50s)",
		ms(fsync), ms(rtt), ms(floor))

	egrpc := results["etcd-grpc"]
	eSeqP50 := med("etcd-grpc", func(t trial) float64 { return ms(t.seq.p50) })
	eSeqP99 := med("etcd-grpc", func(t trial) float64 { return ms(t.seq.p99) })
	eW32P99 := med("etcd-grpc", func(t trial) float64 { return ms(t.w32.p99) })
	eSeqRate := med("etcd-grpc", func(t trial) float64 { return t.seq.rate })
	eW32Rate := med("etcd-grpc", func(t trial) float64 { return t.w32.rate })
	eRSS := med("etcd-grpc", func(t trial) float64 { return float64(t.rssAnon+t.rssFile) / 1024 })
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(floor), "floor-ms")
	b.ReportMetric(ms(fsync), "fsync-p50-ms")
	b.ReportMetric(eSeqRate, "etcd-grpc-seq-ops/s")
	b.ReportMetric(eW32Rate, "etcd-grpc-w32-ops/s")
	for _, n := range systems {
		if !strings.HasPrefix(n, "conclave") {
			continue
		}
		seqP50 := med(n, func(t trial) float64 { return ms(t.seq.p50) })
		seqRate := med(n, func(t trial) float64 { return t.seq.rate })
		w32Rate := med(n, func(t trial) float64 { return t.w32.rate })
		b.ReportMetric(seqRate, n+"-seq-ops/s")
		b.ReportMetric(seqP50, n+"-seq-p50-ms")
		b.ReportMetric(w32Rate, n+"-w32-ops/s")
		var seqWins, w32Wins int
		for i, t := range results[n] {
			if t.seq.rate > egrpc[i].seq.rate {
				seqWins++
			}
			if t.w32.rate > egrpc[i].w32.rate {
				w32Wins++
			}
		}
		b.Logf("%s: sequential p50 %.3f ms is %.2f× the floor (%.3f ms above it); faster than etcd-grpc in %d of %d rounds sequential, %d of %d at %d writers",
			n, seqP50, seqP50/ms(floor), seqP50-ms(floor), seqWins, len(egrpc), w32Wins, len(egrpc), kvConcurrency)
		rss := med(n, func(t trial) float64 { return float64(t.rssAnon+t.rssFile) / 1024 })
		b.Logf("%s targets against etcd-grpc: sequential p50 ≤ 0.8× (%.3f ≤ %.3f ms) %s; sequential ops/s ≥ 1.25× (%.0f ≥ %.0f) %s; %d writers ops/s ≥ 1.5× (%.0f ≥ %.0f) %s; p99 no worse (sequential %.2f ≤ %.2f ms %s, %d writers %.1f ≤ %.1f ms %s); leader RSS ≤ etcd's (%.0f ≤ %.0f MiB) %s",
			n, seqP50, 0.8*eSeqP50, metOrMissed(seqP50 <= 0.8*eSeqP50),
			seqRate, 1.25*eSeqRate, metOrMissed(seqRate >= 1.25*eSeqRate),
			kvConcurrency, w32Rate, 1.5*eW32Rate, metOrMissed(w32Rate >= 1.5*eW32Rate),
			med(n, func(t trial) float64 { return ms(t.seq.p99) }), eSeqP99, metOrMissed(med(n, func(t trial) float64 { return ms(t.seq.p99) }) <= eSeqP99),
			kvConcurrency, med(n, func(t trial) float64 { return ms(t.w32.p99) }), eW32P99, metOrMissed(med(n, func(t trial) float64 { return ms(t.w32.p99) }) <= eW32P99),
			rss, eRSS, metOrMissed(rss <= eRSS))
	}
}

func medianFloat(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

func firstLine(out []byte) string {
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

// fsyncProbe writes probeSize bytes and calls fdatasync probeOps times in
// a new file in dir, and returns the p50 of write + fdatasync. With
// prealloc the file is first preallocated with fallocate, as etcd's WAL
// and raft-wal preallocate their segments, so that a write changes no
// file size (the floor); without it each write appends and grows the file.
func fsyncProbe(dir string, prealloc bool) (time.Duration, error) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("fsync-probe-%t", prealloc)))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fd := int(f.Fd())
	if prealloc {
		if err := syscall.Fallocate(fd, 0, 0, probePrealloc); err != nil {
			return 0, fmt.Errorf("fallocate: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	buf := []byte(strings.Repeat("f", probeSize))
	lat := make([]time.Duration, 0, probeOps)
	for i := range probeOps {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i*probeSize)%probePrealloc); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(fd); err != nil {
			return 0, fmt.Errorf("fdatasync: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return percentile(lat, 0.50), nil
}

// fsType names the filesystem that holds dir, as the floor depends on it
// (tmpfs would make fdatasync free).
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "filesystem unknown: " + err.Error()
	}
	names := map[int64]string{0xEF53: "ext4", 0x01021994: "tmpfs", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x794c7630: "overlayfs"}
	if n, ok := names[int64(st.Type)]; ok {
		return "on " + n + " at " + dir
	}
	return fmt.Sprintf("on filesystem type %#x at %s", st.Type, dir)
}

// errShortEcho is returned when the round-trip probe's echo is short.
var errShortEcho = errors.New("echo shorter than what was sent")

// rttProbe sends probeSize bytes over a loopback TCP connection to an echo
// server and reads them back, probeOps times after a short warm-up, and
// returns the p50 of a round trip.
func rttProbe(b *testing.B) (time.Duration, error) {
	b.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(testutil.IP(b), "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // ends when the client closes its end
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		return 0, err
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	buf := []byte(strings.Repeat("r", probeSize))
	back := make([]byte, probeSize)
	lat := make([]time.Duration, 0, probeOps)
	for i := range probeOps + kvWarmup {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
		if n, err := io.ReadFull(c, back); err != nil {
			c.Close()
			return 0, fmt.Errorf("%w: %d of %d bytes: %v", errShortEcho, n, probeSize, err)
		}
		if i >= kvWarmup {
			lat = append(lat, time.Since(t0))
		}
	}
	c.Close()
	<-served
	slices.Sort(lat)
	return percentile(lat, 0.50), nil
}
