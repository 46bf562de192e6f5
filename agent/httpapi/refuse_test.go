package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/serverport"
)

// TestOtherDatacenterRefused: ?dc naming another datacenter is refused on
// every route, before placement, with Consul's answer; ?dc naming this one
// is served (here: sent on to a server, which fails with 503).
func TestOtherDatacenterRefused(t *testing.T) {
	s := New(Config{Datacenter: "dc1", Logger: hclog.NewNullLogger(), Router: failingForwarder{serverport.ErrNoServers}})
	for _, tc := range []struct {
		method, target string
		code           int
		body           string
	}{
		{"GET", "/v1/kv/k?dc=dc2", 500, "No path to datacenter\n"},
		{"PUT", "/v1/kv/k?dc=dc2", 500, "No path to datacenter\n"},
		{"GET", "/v1/agent/members?dc=elsewhere", 500, "No path to datacenter\n"},
		{"GET", "/v1/status/leader?dc=dc2", 500, "No path to datacenter\n"},
		{"GET", "/v1/kv/k?dc=dc1", 503, "No known Conclave servers\n"},
		{"GET", "/v1/status/leader?dc=", 503, "No known Conclave servers\n"},
	} {
		w := httptest.NewRecorder()
		s.Public().ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
		if w.Code != tc.code || w.Body.String() != tc.body {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.target, w.Code, w.Body.String(), tc.code, tc.body)
		}
	}
}

// TestWANAndPruneRefused: what Conclave cannot do is refused with 400,
// never ignored.
func TestWANAndPruneRefused(t *testing.T) {
	s := New(Config{Datacenter: "dc1", Logger: hclog.NewNullLogger()})
	for _, tc := range []struct {
		method, target, body string
	}{
		{"GET", "/v1/agent/members?wan", "?wan: the WAN gossip pool is not supported by Conclave\n"},
		{"GET", "/v1/agent/members?wan=1", "?wan: the WAN gossip pool is not supported by Conclave\n"},
		{"PUT", "/v1/agent/join/127.0.0.1:8302?wan=1", "?wan: joining the WAN gossip pool is not supported by Conclave\n"},
		{"PUT", "/v1/agent/force-leave/n1?prune", "?prune: pruning a member at once is not supported by Conclave\n"},
	} {
		w := httptest.NewRecorder()
		s.Public().ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
		if w.Code != http.StatusBadRequest || w.Body.String() != tc.body {
			t.Errorf("%s %s = %d %q, want 400 %q", tc.method, tc.target, w.Code, w.Body.String(), tc.body)
		}
	}
}
