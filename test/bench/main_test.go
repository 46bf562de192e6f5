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
)

func TestMain(m *testing.M) {
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
