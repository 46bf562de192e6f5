package bench

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/conclavehq/conclave/test/e2e"
)

var (
	logDir = flag.String("logdir", "", "keep node data dirs, configurations and logs under this directory")
	// burners defaults to one per core of the 2-core reference machine.
	burners = flag.Int("burners", 2, "CPU burner processes during BenchmarkStabilityUnderLoad")
	// conclaveBin runs a binary built elsewhere, to compare two versions
	// of the server under the same harness.
	conclaveBin = flag.String("conclave-bin", "", "run this conclave binary instead of building one from this tree")
	// kvProfile turns on enable_debug in the KV benchmarks' servers (the
	// binary must know the key) and saves their pprof profiles.
	kvProfile = flag.String("kv-profile", "", "save CPU and allocation profiles of the KV write benchmarks' servers under this directory")
	// logStore, when set, has test/e2e write raft_logstore { backend = … }
	// into every server's configuration; unset, the binary's default store
	// is used.
	logStore = flag.String("logstore", "", "raft log store of the servers: wal or boltdb (BenchmarkSideBySide also takes wal,boltdb); default: the binary's")

	// The side-by-side benchmark with etcd (BenchmarkSideBySide).
	withEtcd = flag.Bool("etcd", false, "run BenchmarkSideBySide: Conclave and a 3-member etcd cluster in interleaved rounds")
	etcdBin  = flag.String("etcd-bin", "etcd", "the etcd server binary for -etcd")
	rounds   = flag.Int("rounds", 5, "interleaved rounds of BenchmarkSideBySide")

	// The stability curve (BenchmarkStabilityCurve).
	curve         = flag.Bool("curve", false, "run BenchmarkStabilityCurve: leader changes and failover per oversubscription level and raft_multiplier")
	levels        = flag.String("levels", "4,8", "oversubscription levels of the stability curve: CPU burners = level × cores, plus a disk neighbour (0: no load)")
	multipliers   = flag.String("multipliers", "1,2,3,4,5", "raft_multiplier values of the stability curve")
	stabilityTime = flag.Duration("stability-time", 0, "observation window of the stability benchmarks (default 60s, 10s with -short)")
	failovers     = flag.Int("failovers", 3, "leader kills per row of the stability curve")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(e2e.WALSegmentEnv) == "" {
		os.Setenv(e2e.WALSegmentEnv, benchWALSegmentMB)
	}
	if *conclaveBin != "" {
		e2e.Binary = *conclaveBin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "conclave-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e2e.Binary, err = e2e.Build(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
