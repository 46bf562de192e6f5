package httpapi

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/test/testutil"
)

// countingSinks is an intercept logger that counts its sinks.
type countingSinks struct {
	hclog.InterceptLogger
	n atomic.Int32
}

func (c *countingSinks) RegisterSink(s hclog.SinkAdapter) {
	c.n.Add(1)
	c.InterceptLogger.RegisterSink(s)
}

func (c *countingSinks) DeregisterSink(s hclog.SinkAdapter) {
	c.n.Add(-1)
	c.InterceptLogger.DeregisterSink(s)
}

// TestAgentMonitor streams the agent's log lines at the level asked for,
// and stops, its sink gone and no goroutine left, once the client
// disconnects.
func TestAgentMonitor(t *testing.T) {
	root := &countingSinks{InterceptLogger: hclog.NewInterceptLogger(&hclog.LoggerOptions{Level: hclog.Info, Output: &strings.Builder{}})}
	s := New(Config{Logger: hclog.NewNullLogger(), Logs: root})
	srv := httptest.NewServer(s.Public())
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close) // first: a handler left running must not hang srv.Close
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/agent/monitor?loglevel=debug", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/agent/monitor = %v, %v", resp, err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if root.n.Load() != 1 {
			return context.DeadlineExceeded
		}
		return nil
	})
	// Debug reaches the monitor although the root logger is at info;
	// trace does not.
	root.Named("raft").Trace("too fine")
	root.Named("raft").Debug("heartbeat sent", "peer", "s2")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "[DEBUG] raft: heartbeat sent: peer=s2") {
		t.Fatalf("monitor line = %q, %v; want the debug line", line, err)
	}

	cancel()
	resp.Body.Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := root.n.Load(); n != 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	srv.CloseClientConnections()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if runtime.NumGoroutine() > before {
			return context.DeadlineExceeded
		}
		return nil
	})
}

func TestAgentMonitorBadLevel(t *testing.T) {
	root := hclog.NewInterceptLogger(nil)
	s := New(Config{Logger: hclog.NewNullLogger(), Logs: root})
	w := httptest.NewRecorder()
	s.Public().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/agent/monitor?loglevel=loud", nil))
	if w.Code != 400 || w.Body.String() != "Unknown log level: loud\n" {
		t.Errorf("monitor?loglevel=loud = %d %q, want 400 Unknown log level", w.Code, w.Body.String())
	}
}

// TestLogBufferNeverBlocks: a full buffer drops lines and counts them.
func TestLogBufferNeverBlocks(t *testing.T) {
	b := newLogBuffer(2)
	for range 5 {
		if n, err := b.Write([]byte("line\n")); n != 5 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if len(b.lines) != 2 || b.dropped.Load() != 3 {
		t.Errorf("buffer holds %d, dropped %d; want 2 and 3", len(b.lines), b.dropped.Load())
	}
}

// TestMonitorEndsOnClose: Close ends a stream whose client still reads.
func TestMonitorEndsOnClose(t *testing.T) {
	root := &countingSinks{InterceptLogger: hclog.NewInterceptLogger(nil)}
	s := New(Config{Logger: hclog.NewNullLogger(), Logs: root})
	srv := httptest.NewServer(s.Public())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/agent/monitor")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if root.n.Load() != 1 {
			return context.DeadlineExceeded
		}
		return nil
	})
	s.Close()
	s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(resp.Body).ReadString('\n')
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end after Close")
	}
	if n := root.n.Load(); n != 0 {
		t.Errorf("%d sinks left after Close, want 0", n)
	}
}
