package command

import (
	"encoding/pem"
	"flag"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// reply is a canned answer of the fake agent.
type reply struct {
	code int
	body string
}

// ok is a 200 reply with body.
func ok(body string) reply { return reply{http.StatusOK, body} }

// fakeAgent is an HTTP server that answers the routes it was given, keyed
// as "METHOD /path", and records every request it sees.
type fakeAgent struct {
	addr string

	mu     sync.Mutex
	reqs   []string
	bodies []string
	tokens []string
}

// newFakeAgent starts a fake agent and stops it when the test ends. A route
// not in routes answers 404.
func newFakeAgent(t *testing.T, routes map[string]reply) *fakeAgent {
	t.Helper()
	return newFakeAgentWithHeader(t, routes, nil)
}

// newFakeAgentWithHeader is newFakeAgent whose every answer carries header,
// as the agent's KV and snapshot answers carry X-Consul-Index.
func newFakeAgentWithHeader(t *testing.T, routes map[string]reply, header http.Header) *fakeAgent {
	t.Helper()
	a, srv := newFakeAgentServer(t, routes, header)
	srv.Start()
	a.addr = srv.Listener.Addr().String()
	return a
}

// newFakeAgentTLS is newFakeAgent over HTTPS. Its addr is an https:// URL,
// and caFile is a PEM file of its certificate (for 127.0.0.1 and
// example.com), to give as -ca-file.
func newFakeAgentTLS(t *testing.T, routes map[string]reply) (a *fakeAgent, caFile string) {
	t.Helper()
	a, srv := newFakeAgentServer(t, routes, nil)
	// Refused handshakes are what some tests expect; keep them out of the
	// test output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	a.addr = srv.URL
	caFile = filepath.Join(t.TempDir(), "agent-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return a, caFile
}

// newFakeAgentServer returns a fake agent and its server, not started.
// The server is closed when the test ends.
func newFakeAgentServer(t *testing.T, routes map[string]reply, header http.Header) (*fakeAgent, *httptest.Server) {
	t.Helper()
	a := &fakeAgent{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := r.Method + " " + r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			req += "?" + r.URL.RawQuery
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("fake agent: read body of %s: %v", req, err)
		}
		a.mu.Lock()
		a.reqs = append(a.reqs, req)
		a.bodies = append(a.bodies, string(body))
		a.tokens = append(a.tokens, r.Header.Get("X-Consul-Token"))
		a.mu.Unlock()

		rep, found := routes[r.Method+" "+r.URL.Path]
		if !found {
			http.Error(w, "no route for "+req, http.StatusNotFound)
			return
		}
		maps.Copy(w.Header(), header)
		w.WriteHeader(rep.code)
		_, _ = w.Write([]byte(rep.body))
	}))
	t.Cleanup(srv.Close)
	return a, srv
}

// requests returns the requests seen so far as "METHOD /path?query".
func (a *fakeAgent) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.reqs...)
}

// requestTokens returns the X-Consul-Token header of the requests seen so
// far ("" when absent), in the order of requests().
func (a *fakeAgent) requestTokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.tokens...)
}

// requestBodies returns the bodies of the requests seen so far, in the
// order of requests().
func (a *fakeAgent) requestBodies() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.bodies...)
}

// deadAddr returns a loopback address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return addr
}

// run runs cmd with args and returns its exit code, stdout and stderr.
func run(t *testing.T, ui *cli.MockUi, cmd cli.Command, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	code = cmd.Run(args)
	return code, ui.OutputWriter.String(), ui.ErrorWriter.String()
}

// checkGolden compares got with testdata/<name>.golden, or rewrites that
// file when the test runs with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatalf("create testdata: %v", err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("write golden file: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("output differs from %s (-want +got):\n%s", path, diff)
	}
}

// checkOneLineError fails the test unless stderr is exactly one line that
// starts with prefix.
func checkOneLineError(t *testing.T, stderr, prefix string) {
	t.Helper()
	if !strings.HasPrefix(stderr, prefix) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one line starting with %q", stderr, prefix)
	}
}
