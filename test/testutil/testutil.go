// Package testutil holds helpers shared by unit and end-to-end tests:
// waiting on conditions with deadlines, test loggers and free ports.
package testutil

import (
	"fmt"
	"math/rand/v2"
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
	WaitEvery(t, timeout, 20*time.Millisecond, cond)
}

// WaitEvery is WaitFor with another interval between checks, for
// conditions that cost enough to load the machine when checked often.
func WaitEvery(t testing.TB, timeout, interval time.Duration, cond func() error) {
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
		time.Sleep(interval)
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
	portUsed = map[string]bool{}
	ipNext   uint32
)

// IP returns a loopback address of its own for one test node, 127.A.B.C
// with A from 100 to 199, picked at random per process and then counted
// up. Listeners on an address of their own cannot collide with the
// ephemeral ports of outbound connections, which the kernel takes on
// 127.0.0.1, nor with another test process.
func IP(t testing.TB) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	if ipNext == 0 {
		ipNext = uint32(100+rand.IntN(100))<<16 | uint32(rand.IntN(256))<<8
	}
	ipNext++
	if ipNext&0xff == 0 || ipNext&0xff == 255 {
		ipNext += 2
	}
	return fmt.Sprintf("127.%d.%d.%d", ipNext>>16&0xff, ipNext>>8&0xff, ipNext&0xff)
}

// Ports returns n distinct TCP ports that were free on 127.0.0.1 a moment
// ago and that no earlier call in this process returned.
func Ports(t testing.TB, n int) []int {
	t.Helper()
	return PortsOn(t, "127.0.0.1", n)
}

// PortsOn returns n distinct ports that were free for TCP and UDP on ip a
// moment ago and that no earlier call in this process returned for ip.
func PortsOn(t testing.TB, ip string, n int) []int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	var out []int
	for len(out) < n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("find free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		// A UDP socket on the same port must be free too (gossip uses both).
		u, uerr := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(p)))
		l.Close()
		if uerr != nil {
			continue
		}
		u.Close()
		key := net.JoinHostPort(ip, fmt.Sprint(p))
		if portUsed[key] {
			continue
		}
		portUsed[key] = true
		out = append(out, p)
	}
	return out
}
