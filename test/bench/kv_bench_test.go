package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/e2e"
)

const (
	// kvSeqWrites is how many writes the sequential benchmark times.
	kvSeqWrites = 5000
	// kvConcurrency is the number of concurrent clients of the concurrent
	// write and the read benchmarks.
	kvConcurrency = 32
	// kvOps bounds the operations of the concurrent benchmarks, and kvMaxTime
	// their duration, whichever is reached first.
	kvOps     = 100_000
	kvMaxTime = 15 * time.Second
	// kvKeysPerClient is how many distinct keys each client cycles through;
	// the cluster holds kvConcurrency × kvKeysPerClient keys at most.
	kvKeysPerClient = 256
	// kvValueSize is the size of every value written, in bytes, to Conclave
	// and to etcd (issue 11 measures 100-byte values).
	kvValueSize = 100
	// kvKeyFormat makes a key from a client's number and the key's, for
	// Conclave and for etcd's load generator.
	kvKeyFormat = "bench/c%02d/k%03d"
	// kvWarmup is how many untimed operations each client does first.
	kvWarmup = 50
)

// kvBench is a formed 3-server cluster and an HTTP client with keep-alive
// connections to it.
type kvBench struct {
	servers []*e2e.Node
	leader  *e2e.Node
	http    *http.Client
	value   []byte
}

func newKVBench(b *testing.B) *kvBench {
	b.Helper()
	return newKVBenchIn(b, runRoot(b, "cluster"), oneLogStore(b))
}

// newKVBenchIn is newKVBench with the servers under root and the given
// raft_logstore backend ("" for the binary's default).
func newKVBenchIn(b *testing.B, root, backend string) *kvBench {
	b.Helper()
	servers := newServers(b, root, "kv", 3, backend, "")
	if *kvProfile != "" {
		for _, s := range servers {
			s.Extra += "enable_debug = true\n"
		}
	}
	startAll(servers)
	waitFormed(b, servers)
	leader := e2e.LeaderNode(servers...)
	if leader == nil {
		b.Fatal("no leader")
	}
	tr := newKVTransport()
	kb := &kvBench{
		servers: servers,
		leader:  leader,
		http:    &http.Client{Transport: tr, Timeout: 10 * time.Second},
		value:   bytes.Repeat([]byte("v"), kvValueSize),
	}
	b.Cleanup(kb.close)
	b.Logf("3 servers; leader %s; raft log store: %s", leader.Name, logStoreInUse(b, servers, backend))
	return kb
}

// close drops the client's connections and kills the servers; it can be
// called more than once.
func (kb *kvBench) close() {
	kb.http.Transport.(*http.Transport).CloseIdleConnections()
	killAll(kb.servers)
}

// newKVTransport is the HTTP transport of the KV benchmarks' clients, for
// Conclave and etcd's gateway alike: keep-alive connections, enough idle
// ones for every concurrent client.
func newKVTransport() *http.Transport {
	return &http.Transport{MaxIdleConns: 4 * kvConcurrency, MaxIdleConnsPerHost: 2 * kvConcurrency, IdleConnTimeout: time.Minute}
}

func (kb *kvBench) do(method, url string, body []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	resp, err := kb.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if method == http.MethodPut && string(bytes.TrimSpace(b)) != "true" {
		return fmt.Errorf("%s %s: answered %q", method, url, b)
	}
	return nil
}

func kvKey(client, i int) string { return fmt.Sprintf(kvKeyFormat, client, i%kvKeysPerClient) }

func (kb *kvBench) put(n *e2e.Node, client, i int) error {
	return kb.do(http.MethodPut, "http://"+n.HTTPAddr()+"/v1/kv/"+kvKey(client, i), kb.value)
}

// load runs op from clients goroutines until ops operations or maxTime,
// after kvWarmup untimed operations per client, and returns each timed
// operation's latency and the elapsed time. started, if not nil, is called
// when the timed part begins. It stops the benchmark at the first error.
func load(b *testing.B, clients, ops int, maxTime time.Duration, started func(), op func(client, i int) error) ([]time.Duration, time.Duration) {
	b.Helper()
	for c := range clients {
		for i := range kvWarmup {
			if err := op(c, i); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
		}
	}
	var (
		next     atomic.Int64
		failed   atomic.Pointer[error]
		mu       sync.Mutex
		all      []time.Duration
		wg       sync.WaitGroup
		deadline = time.Now().Add(maxTime)
	)
	if started != nil {
		started()
	}
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, ops/clients+1)
			for i := kvWarmup; ; i++ {
				if next.Add(1) > int64(ops) || failed.Load() != nil || time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				if err := op(c, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					break
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := failed.Load(); p != nil {
		b.Fatalf("after %d operations: %v", len(all), *p)
	}
	return all, elapsed
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// reportThroughput records throughput and latency percentiles and checks
// them against the targets (zero for none).
func reportThroughput(b *testing.B, what string, lat []time.Duration, elapsed time.Duration, minRate float64, maxP50 time.Duration) {
	b.Helper()
	slices.Sort(lat)
	rate := float64(len(lat)) / elapsed.Seconds()
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rate, "ops/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.Logf("%s: %d operations in %.2f s: %.0f ops/s, p50 %.3f ms, p99 %.3f ms, max %.1f ms",
		what, len(lat), elapsed.Seconds(), rate, ms(p50), ms(p99), ms(lat[len(lat)-1]))
	if minRate > 0 {
		b.Logf("target ≥ %.0f ops/s: %s", minRate, metOrMissed(rate >= minRate))
	}
	if maxP50 > 0 {
		b.Logf("target p50 ≤ %s: %s", maxP50, metOrMissed(p50 <= maxP50))
	}
}

func metOrMissed(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

// reportRSS records the largest resident set of the servers after a load,
// against the 40 MB target.
func (kb *kvBench) reportRSS(b *testing.B) {
	b.Helper()
	var maxRSS float64
	for _, s := range kb.servers {
		pid := s.PID()
		r, err := procStatusKB(pid, "VmRSS")
		if err != nil {
			b.Fatalf("%s: %v", s.Name, err)
		}
		h, _ := procStatusKB(pid, "VmHWM")
		anon, _ := procStatusKB(pid, "RssAnon")
		file, _ := procStatusKB(pid, "RssFile")
		b.Logf("%s (pid %d): VmRSS %.1f MiB (anonymous %.1f, file-backed %.1f), VmHWM %.1f MiB",
			s.Name, pid, float64(r)/1024, float64(anon)/1024, float64(file)/1024, float64(h)/1024)
		maxRSS = max(maxRSS, float64(r)/1024)
	}
	b.ReportMetric(maxRSS, "max-rss-MiB")
	mb := maxRSS * 1024 * 1024 / 1e6
	b.Logf("largest server VmRSS after the load: %.1f MiB (%.1f MB); target ≤ 40 MB: %s", maxRSS, mb, metOrMissed(mb <= 40))
}

// BenchmarkKVWriteSequential has one client write kvSeqWrites values, one
// at a time, to the leader.
func BenchmarkKVWriteSequential(b *testing.B) {
	kb := newKVBench(b)
	prof := kb.profiler(b, "seq", 4*time.Second)
	lat, elapsed := load(b, 1, kvSeqWrites, kvMaxTime*4, prof.start, func(c, i int) error { return kb.put(kb.leader, c, i) })
	prof.finish(b)
	reportThroughput(b, "sequential writes to the leader", lat, elapsed, 2500, 400*time.Microsecond)
	kb.reportRSS(b)
}

// BenchmarkKVWrite32 has kvConcurrency clients write to the leader at once.
func BenchmarkKVWrite32(b *testing.B) {
	kb := newKVBench(b)
	prof := kb.profiler(b, "w32", 8*time.Second)
	lat, elapsed := load(b, kvConcurrency, kvOps, kvMaxTime, prof.start, func(c, i int) error { return kb.put(kb.leader, c, i) })
	prof.finish(b)
	reportThroughput(b, fmt.Sprintf("%d concurrent writers to the leader", kvConcurrency), lat, elapsed, 10000, 0)
	kb.reportRSS(b)
}

func BenchmarkKVReadDefault(b *testing.B)    { benchKVRead(b, "default", "") }
func BenchmarkKVReadConsistent(b *testing.B) { benchKVRead(b, "consistent", "?consistent") }
func BenchmarkKVReadStale(b *testing.B)      { benchKVRead(b, "stale", "?stale") }

// benchKVRead writes every key the readers will read, then has
// kvConcurrency clients read them in the given mode, each client from one
// server, spread evenly over the three servers (so two thirds of the
// default and consistent reads are forwarded to the leader).
func benchKVRead(b *testing.B, mode, query string) {
	kb := newKVBench(b)
	for c := range kvConcurrency {
		for i := range kvKeysPerClient {
			if err := kb.put(kb.leader, c, i); err != nil {
				b.Fatalf("fill: %v", err)
			}
		}
	}
	// Stale reads must find every key on every server.
	for _, s := range kb.servers {
		last := "http://" + s.HTTPAddr() + "/v1/kv/" + kvKey(kvConcurrency-1, kvKeysPerClient-1) + "?stale"
		if _, err := pollUntil(time.Now(), 10*time.Second, 20*time.Millisecond, func() error { return kb.do(http.MethodGet, last, nil) }); err != nil {
			b.Fatalf("%s has not applied the writes: %v", s.Name, err)
		}
	}
	lat, elapsed := load(b, kvConcurrency, kvOps, kvMaxTime, nil, func(c, i int) error {
		s := kb.servers[c%len(kb.servers)]
		return kb.do(http.MethodGet, "http://"+s.HTTPAddr()+"/v1/kv/"+kvKey(c, i*7)+query, nil)
	})
	reportThroughput(b, fmt.Sprintf("%d concurrent %s readers spread over the 3 servers", kvConcurrency, mode), lat, elapsed, 0, 0)
	kb.reportRSS(b)
}

// kvProfiler saves pprof profiles of the leader and one follower during a
// timed load when -kv-profile is set; without it, it does nothing.
type kvProfiler struct {
	kb    *kvBench
	dir   string
	name  string
	cpu   time.Duration
	nodes []*e2e.Node
	wg    sync.WaitGroup
	errs  chan error
}

// profiler prepares the profiles of one benchmark, named name in the
// files' names, with a CPU profile of length cpu (keep it shorter than
// the load).
func (kb *kvBench) profiler(b *testing.B, name string, cpu time.Duration) *kvProfiler {
	b.Helper()
	p := &kvProfiler{kb: kb, dir: *kvProfile, name: name, cpu: cpu, errs: make(chan error, 8)}
	if p.dir == "" {
		return p
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		b.Fatalf("create %s: %v", p.dir, err)
	}
	p.nodes = []*e2e.Node{kb.leader}
	for _, s := range kb.servers {
		if s != kb.leader {
			p.nodes = append(p.nodes, s)
			break
		}
	}
	return p
}

// save writes one profile of node n to dir/name-<node>-<what>.pb.gz.
func (p *kvProfiler) save(n *e2e.Node, path, what string) error {
	resp, err := p.kb.http.Get("http://" + n.HTTPAddr() + "/debug/pprof/" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s on %s: %d %s", path, n.Name, resp.StatusCode, bytes.TrimSpace(body))
	}
	return os.WriteFile(filepath.Join(p.dir, fmt.Sprintf("%s-%s-%s.pb.gz", p.name, n.Name, what)), body, 0o644)
}

// start takes the allocation profiles from before the load and starts the
// CPU profiles.
func (p *kvProfiler) start() {
	for _, n := range p.nodes {
		if err := p.save(n, "allocs", "allocs-before"); err != nil {
			p.errs <- err
		}
		p.wg.Go(func() {
			// The client's 10 s timeout would cut a longer profile short.
			if err := p.save(n, fmt.Sprintf("profile?seconds=%d", int(p.cpu.Seconds())), "cpu"); err != nil {
				p.errs <- err
			}
		})
	}
}

// finish waits for the CPU profiles and takes the allocation profiles
// from after the load; compare them with go tool pprof -diff_base.
func (p *kvProfiler) finish(b *testing.B) {
	b.Helper()
	p.wg.Wait()
	for _, n := range p.nodes {
		if err := p.save(n, "allocs", "allocs-after"); err != nil {
			p.errs <- err
		}
	}
	close(p.errs)
	for err := range p.errs {
		b.Errorf("profile: %v", err)
	}
	if len(p.nodes) > 0 {
		b.Logf("profiles of %s (leader) and %s saved under %s", p.nodes[0].Name, p.nodes[1].Name, p.dir)
	}
}
