package httpapi

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/agent/serverport"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

// FuzzHTTPAPI sends arbitrary requests to the public API and to the server
// port's internal routes of one single-server API, on a real Raft and a
// real gossip pool. No request may panic, and every error is a 4xx/5xx
// with a one-line body. Requests that would leave, join or discover (dial
// an arbitrary address, or ask DNS and cloud APIs) are skipped.
func FuzzHTTPAPI(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/v1/status/leader", ""},
		{"GET", "/v1/operator/raft/configuration?stale", ""},
		{"DELETE", "/v1/operator/raft/peer?id=", ""},
		{"DELETE", "/v1/operator/raft/peer?id=%00", ""},
		{"PUT", "/v1/agent/force-leave/nobody", ""},
		{"POST", cluster.ClaimPath, `{"Candidate":"x","Nonce":1,"Expect":3,"Servers":["x"]}`},
		{"POST", cluster.ClaimPath, `{"Servers":`},
		{"POST", cluster.ReleasePath, `[]`},
		{"GET", "/v1/operator/bootstrap", ""},
		{"BREW", "/v1/agent/members", "coffee"},
		{"PUT", "/v1/session/create", `{"LockDelay":"x","TTL":"1h","NodeChecks":[]}`},
		{"PUT", "/v1/session/create", `{"Node":"nobody","LockDelay":1e300}`},
		{"GET", "/v1/session/list?index=1&wait=1ms", ""},
		{"PUT", "/v1/kv/k?acquire=nope", "v"},
		{"GET", "/v1/operator/keyring", ""},
		{"POST", "/v1/operator/keyring", `{"Key":"x"}`},
		{"DELETE", "/v1/operator/keyring", `{"Key":`},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	s := startFuzzService(f)
	handlers := map[string]http.Handler{"public": s.Public(), "server port": s.Internal()}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if strings.Contains(path, "join") || strings.Contains(path, "discover") ||
			strings.Contains(path, "leave") && !strings.Contains(path, "force-leave") {
			t.Skip("leave stops the agent; join and discover dial what they are given")
		}
		req, err := http.NewRequest(method, "http://agent"+path, bytes.NewReader([]byte(body)))
		if err != nil || !strings.HasPrefix(path, "/") {
			t.Skip("not a request an HTTP client can send")
		}
		for name, h := range handlers {
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

// fuzzAgent is the agent side of the API: nothing to join or leave.
type fuzzAgent struct{ addr string }

func (fuzzAgent) Join([]string) (int, error) { return 0, nil }
func (fuzzAgent) Leave() error               { return nil }
func (fuzzAgent) Shutdown() error            { return nil }
func (fuzzAgent) NotReady() string           { return "" }
func (a fuzzAgent) HTTPAddr() string         { return a.addr }

// startFuzzService starts a bootstrapped single-server Raft in memory and
// a gossip pool, and the API over them.
func startFuzzService(f *testing.F) *Service {
	ip := testutil.IP(f)
	ports := testutil.PortsOn(f, ip, 2)
	// Logging through f is not allowed while the fuzz target runs.
	logger := hclog.NewNullLogger()
	stream, err := consensus.NewTCPStream(net.JoinHostPort(ip, "0"), ip)
	if err != nil {
		f.Fatalf("NewTCPStream: %v", err)
	}
	node, err := consensus.New(consensus.Config{ID: "fuzz-id", Name: "fuzz", Stream: stream, InMemory: true, Multiplier: 1, Logger: logger, MaxValueSize: 512 << 10})
	if err != nil {
		f.Fatalf("consensus.New: %v", err)
	}
	f.Cleanup(func() { node.Shutdown() })
	if err := node.Bootstrap([]consensus.Server{{ID: "fuzz-id", Address: node.RaftAddr(), Voter: true}}); err != nil {
		f.Fatalf("Bootstrap: %v", err)
	}
	pool, err := gossip.New(gossip.Config{
		NodeName: "fuzz", NodeID: "fuzz-id", BindAddr: ip, BindPort: ports[0], AdvertiseAddr: ip, Local: true, Logger: logger,
		Tags: map[string]string{gossip.TagRole: gossip.RoleServer, gossip.TagID: "fuzz-id", gossip.TagDC: "dc1", gossip.TagRaftPort: "1"},
	})
	if err != nil {
		f.Fatalf("gossip.New: %v", err)
	}
	f.Cleanup(func() { pool.Shutdown() })
	peers := serverport.NewClient()
	boot := cluster.NewBootstrapper(cluster.BootstrapConfig{Logger: logger, Pool: pool, Peers: peers, Node: node, Name: "fuzz", ID: "fuzz-id", Datacenter: "dc1"})
	pilot := consensus.NewAutopilot(node, consensus.AutopilotOptions{
		Delegate: cluster.NewAutopilotDelegate(logger, node.RaftStats, pool, "fuzz-id", "dc1", nil), Logger: logger,
	})
	s := New(Config{
		Name: "fuzz", ID: "fuzz-id", Datacenter: "dc1", Version: "0.1.0", Server: true, RaftMultiplier: 1,
		JoinPort: ports[0], Logger: logger,
		Agent: fuzzAgent{addr: net.JoinHostPort(ip, strconv.Itoa(ports[1]))}, Pool: pool, Bootstrap: boot,
		Identity: func() cluster.Identity { return cluster.Identity{NodeID: "fuzz-id", Datacenter: "dc1", HasState: true} },
		Router:   serverport.NewRouter(pool, "dc1", peers),
		Store:    node, Leader: serverport.NewForwarder(node, peers), Autopilot: pilot, Peers: peers,
		Keyring: pool,
	})
	deadline := time.Now().Add(10 * time.Second)
	for !node.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return s
}
