// Package testutil holds helpers shared by unit and end-to-end tests:
// waiting on conditions with deadlines, test loggers and free ports.
package testutil

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// WaitFor calls cond every 20ms until it returns nil, and fails the test
// with cond's last error if that does not happen within timeout.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
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
		time.Sleep(20 * time.Millisecond)
	}
}

// Logger returns an hclog logger that writes through t.Log, so test output
// stays with its test. Logging after the test ends is dropped, not a panic.
func Logger(t testing.TB) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: w})
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
)

// Ports returns n distinct TCP ports that were free on 127.0.0.1 a moment
// ago and that no earlier call in this process returned.
func Ports(t testing.TB, n int) []int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	var out []int
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		// A UDP socket on the same port must be free too (gossip uses both).
		u, uerr := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		l.Close()
		if uerr != nil {
			continue
		}
		u.Close()
		if portUsed[p] {
			continue
		}
		portUsed[p] = true
		out = append(out, p)
	}
	return out
}
