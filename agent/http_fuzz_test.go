package agent

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/test/testutil"
)

// FuzzHTTPAPI sends arbitrary requests to the public API and to the server
// port's internal routes of one running single-server agent. No request
// may panic, and every error is a 4xx/5xx with a one-line body. Requests
// that would leave, join or discover (dial an arbitrary address, or ask DNS
// and cloud APIs) are skipped.
func FuzzHTTPAPI(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/v1/status/leader", ""},
		{"GET", "/v1/operator/raft/configuration?stale", ""},
		{"DELETE", "/v1/operator/raft/peer?id=", ""},
		{"DELETE", "/v1/operator/raft/peer?id=%00", ""},
		{"PUT", "/v1/agent/force-leave/nobody", ""},
		{"POST", claimPath, `{"Candidate":"x","Nonce":1,"Expect":3,"Servers":["x"]}`},
		{"POST", claimPath, `{"Servers":`},
		{"POST", releasePath, `[]`},
		{"GET", "/v1/operator/bootstrap", ""},
		{"BREW", "/v1/agent/members", "coffee"},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	a := startFuzzAgent(f)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if strings.Contains(path, "join") || strings.Contains(path, "discover") ||
			strings.Contains(path, "leave") && !strings.Contains(path, "force-leave") {
			t.Skip("leave stops the agent; join and discover dial what they are given")
		}
		req, err := http.NewRequest(method, "http://agent"+path, bytes.NewReader([]byte(body)))
		if err != nil || !strings.HasPrefix(path, "/") {
			t.Skip("not a request an HTTP client can send")
		}
		for name, h := range map[string]http.Handler{"public": a.handler, "server port": a.internalRoutes()} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req.Clone(req.Context()))
			code := rec.Code
			if code < 200 || code > 599 {
				t.Fatalf("%s %s %q on the %s handler: status %d", method, path, body, name, code)
			}
			if code >= 400 && strings.Count(strings.TrimSuffix(rec.Body.String(), "\n"), "\n") > 0 {
				t.Fatalf("%s %s on the %s handler: %d with a multi-line body %q", method, path, name, code, rec.Body.String())
			}
			if code == http.StatusInternalServerError && strings.Contains(rec.Body.String(), "internal error") {
				t.Fatalf("%s %s on the %s handler panicked: %s", method, path, name, rec.Body.String())
			}
		}
	})
}

// startFuzzAgent starts the agent every input of the fuzzer is sent to.
func startFuzzAgent(f *testing.F) *Agent {
	ip := testutil.IP(f)
	ports := testutil.PortsOn(f, ip, 3)
	c := &config.Config{
		NodeName: "fuzz", Datacenter: "dc1", Server: true, Bootstrap: true, DevMode: true,
		BindAddr: ip, AdvertiseAddr: ip, ClientAddr: ip,
		Ports:       config.Ports{HTTP: ports[0], SerfLAN: ports[1], Server: ports[2]},
		Performance: config.Performance{RaftMultiplier: 1},
	}
	// Logging through f is not allowed while the fuzz target runs.
	a, err := New(c, hclog.NewNullLogger())
	if err != nil {
		f.Fatalf("New: %v", err)
	}
	a.Start(f.Context())
	f.Cleanup(func() { a.Shutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for !a.node.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return a
}
