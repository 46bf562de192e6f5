package httpapi

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LogSinks is the part of hclog.InterceptLogger the monitor uses: the
// agent's root logger, which copies every line to its registered sinks.
type LogSinks interface {
	RegisterSink(hclog.SinkAdapter)
	DeregisterSink(hclog.SinkAdapter)
}

const (
	// monitorBuffer is how many log lines wait for a slow monitor client;
	// past it lines are dropped (and counted), so logging never blocks.
	monitorBuffer = 512

	// monitorWriteTimeout bounds each write to a monitor client: one that
	// reads nothing for that long is dropped.
	monitorWriteTimeout = 10 * time.Second

	// monitorDropReport is how often dropped lines are reported in the
	// stream.
	monitorDropReport = time.Second
)

// logBuffer is the sink's output: each write (one log line) is copied into
// a bounded channel, or dropped and counted when it is full. It never
// blocks, since hclog calls it with its sinks' lock held.
type logBuffer struct {
	lines   chan []byte
	dropped atomic.Uint64
}

func newLogBuffer(size int) *logBuffer { return &logBuffer{lines: make(chan []byte, size)} }

// Write implements io.Writer.
func (b *logBuffer) Write(p []byte) (int, error) {
	select {
	case b.lines <- append([]byte(nil), p...):
	default:
		b.dropped.Add(1)
	}
	return len(p), nil
}

// agentMonitor streams this agent's log lines (GET /v1/agent/monitor) at
// ?loglevel= (default info; ?logjson for JSON lines) until the client goes
// away or the API closes, as Consul's monitor does.
func (s *Service) agentMonitor(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Logs == nil {
		httpError(w, http.StatusInternalServerError, "monitor is not available: the agent's logger takes no sinks")
		return
	}
	q := r.URL.Query()
	name := q.Get("loglevel")
	if name == "" {
		name = "info"
	}
	level := hclog.LevelFromString(name)
	if level == hclog.NoLevel {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("Unknown log level: %s", name))
		return
	}
	_, logJSON := q["logjson"]

	buf := newLogBuffer(monitorBuffer)
	sink := hclog.NewSinkAdapter(&hclog.LoggerOptions{Level: level, Output: buf, JSONFormat: logJSON})
	s.cfg.Logs.RegisterSink(sink)
	defer s.cfg.Logs.DeregisterSink(sink)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	// A write error is a client gone; a deadline the server cannot set
	// (http.ErrNotSupported) leaves only the client's disconnect.
	send := func(p []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(monitorWriteTimeout))
		if _, err := w.Write(p); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(nil) {
		return
	}
	tick := time.NewTicker(monitorDropReport)
	defer tick.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case line := <-buf.lines:
			if !send(line) {
				return
			}
		case <-tick.C:
			if n := buf.dropped.Load(); n > reported {
				msg := fmt.Sprintf("[WARN]  monitor: dropped %d log lines: the client reads too slowly\n", n-reported)
				if logJSON {
					msg = fmt.Sprintf(`{"@level":"warn","@message":"monitor: dropped log lines: the client reads too slowly","dropped":%d}`+"\n", n-reported)
				}
				reported = n
				if !send([]byte(msg)) {
					return
				}
			}
		}
	}
}

// Close ends the API's streams (the monitors), which http.Server.Shutdown
// would otherwise wait for: the agent calls it when its HTTP server shuts
// down. It may be called more than once.
func (s *Service) Close() { s.closeOnce.Do(func() { close(s.closed) }) }
