// Command counter is a replicated counter built on Conclave's agent package,
// which forms the cluster and runs this program's state machine and routes:
// POST /counter/incr?by=N&id=ID (on the leader; an ID is applied once, so a
// client whose outcome is unknown sends it again), GET /counter (on the
// leader, after a barrier; with ?stale, on any server). It takes conclave
// agent's flags and -config-file.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent"
	"github.com/conclavehq/conclave/agent/httpapi"
	"github.com/conclavehq/conclave/config"
)

// rememberIDs bounds how many recent request IDs the counter remembers.
const rememberIDs = 4096

// incr is one command in the log.
type incr struct {
	ID string `json:"id,omitempty"`
	By int64  `json:"by"`
}

// state is the replicated state and also the snapshot format.
type state struct {
	Value int64            `json:"value"`
	Seen  map[string]int64 `json:"seen"` // request ID -> value it produced
	Order []string         `json:"order"`
}

// counter is the state machine (consensus.StateMachine).
type counter struct {
	mu sync.Mutex
	s  state
}

func (c *counter) Apply(index uint64, data []byte) any {
	var cmd incr
	if err := json.Unmarshal(data, &cmd); err != nil {
		return fmt.Errorf("decode command at index %d: %w", index, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.s.Seen[cmd.ID]; ok && cmd.ID != "" {
		return v // a retry of an applied increment
	}
	c.s.Value += cmd.By
	if cmd.ID != "" {
		if c.s.Seen == nil {
			c.s.Seen = make(map[string]int64)
		}
		c.s.Seen[cmd.ID] = c.s.Value
		c.s.Order = append(c.s.Order, cmd.ID)
		if len(c.s.Order) > rememberIDs {
			delete(c.s.Seen, c.s.Order[0])
			c.s.Order = c.s.Order[1:]
		}
	}
	return c.s.Value
}

func (c *counter) Snapshot() (io.WriterTo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := json.Marshal(c.s)
	return bytes.NewReader(b), err // a *bytes.Reader is an io.WriterTo
}

func (c *counter) Restore(r io.Reader) error {
	var s state
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("decode counter snapshot: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s = s
	return nil
}

func (c *counter) value() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.Value
}

// service answers the counter's routes.
type service struct {
	fsm *counter
	a   *agent.Agent // set before the agent starts serving
}

func (s *service) routes() []httpapi.Route {
	return []httpapi.Route{
		{Method: "POST", Pattern: "/counter/incr", Who: httpapi.Leader, Handler: s.incr},
		{Method: "GET", Pattern: "/counter", Who: httpapi.LeaderOrStale, Handler: s.get},
	}
}

// incr applies ?by=N (default 1) once committed, with ?id= for retries.
func (s *service) incr(w http.ResponseWriter, r *http.Request) {
	by, err := strconv.ParseInt(cmp.Or(r.URL.Query().Get("by"), "1"), 10, 64)
	if err != nil {
		http.Error(w, fmt.Sprintf("by must be an integer, got %q", r.URL.Query().Get("by")), http.StatusBadRequest)
		return
	}
	data, _ := json.Marshal(incr{ID: r.URL.Query().Get("id"), By: by})
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	v, err := s.a.Node().ApplyBytes(ctx, data)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeValue(w, v.(int64))
}

// get answers the value: on the leader after a barrier; with ?stale, here.
func (s *service) get(w http.ResponseWriter, r *http.Request) {
	if _, stale := r.URL.Query()["stale"]; !stale {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		for _, check := range []func(context.Context) error{s.a.Node().Barrier, s.a.Node().VerifyLeader} {
			if err := check(ctx); err != nil {
				httpapi.WriteError(w, err)
				return
			}
		}
	}
	writeValue(w, s.fsm.value())
}

func writeValue(w http.ResponseWriter, v int64) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"value\": %d}\n", v)
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("counter", flag.ContinueOnError)
	var paths []string
	fs.Func("config-file", "A configuration `file` (HCL or JSON); may be repeated.", func(p string) error {
		paths = append(paths, p)
		return nil
	})
	var flags config.Flags
	flags.AddTo(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	res, err := config.Load(config.LoadOptions{Paths: paths, Flags: &flags})
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error loading configuration:", err)
		return 1
	}
	cfg := res.Config
	logger := hclog.New(&hclog.LoggerOptions{Name: "counter", Level: hclog.LevelFromString(cfg.LogLevel), JSONFormat: cfg.LogJSON})
	for _, w := range res.Warnings {
		logger.Warn(w)
	}
	svc := &service{fsm: &counter{}}
	a, err := agent.New(agent.Options{Config: cfg, Logger: logger, Version: "counter", FSM: svc.fsm, Routes: svc.routes()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error starting agent:", err)
		return 1
	}
	svc.a = a
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a.Start(ctx)
	logger.Info("counter running", "http_addr", a.HTTPAddr())
	select {
	case <-ctx.Done():
		a.Shutdown()
	case <-a.ShutdownCh():
	}
	if err := a.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "Agent stopped:", err)
		return 1
	}
	return 0
}
