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
)

func TestMain(m *testing.M) {
	flag.Parse()
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
