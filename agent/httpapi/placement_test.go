package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/serverport"
)

// failingForwarder fails every request with err, writing nothing.
type failingForwarder struct{ err error }

func (f failingForwarder) Forward(http.ResponseWriter, *http.Request) error { return f.err }

// TestClientAgentAnswers503WhenNoServerTakesTheRequest: on a client agent
// every server route goes to a server; when the router finds none, the
// answer is 503 with Consul's one-line message.
func TestClientAgentAnswers503WhenNoServerTakesTheRequest(t *testing.T) {
	s := New(Config{Logger: hclog.NewNullLogger(), Router: failingForwarder{serverport.ErrNoServers}})
	for _, path := range []string{"/v1/kv/k", "/v1/status/leader", "/v1/operator/raft/configuration", "/v1/snapshot"} {
		w := httptest.NewRecorder()
		s.Public().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusServiceUnavailable || w.Body.String() != "No known Conclave servers\n" {
			t.Errorf("GET %s on a client = %d %q, want 503 No known Conclave servers", path, w.Code, w.Body.String())
		}
	}
}

// followerStore is a Store that is not the leader.
type followerStore struct{ Store }

func (followerStore) IsLeader() bool { return false }

// TestFollowerForwardingErrors: a follower that cannot forward answers 503
// with the reason, and 500 for a request it could not rebuild.
func TestFollowerForwardingErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{serverport.ErrNoLeader, http.StatusServiceUnavailable},
		{&serverport.RequestError{Err: errors.New("bad request line")}, http.StatusInternalServerError},
	} {
		s := New(Config{Logger: hclog.NewNullLogger(), Store: followerStore{}, Leader: failingForwarder{tc.err}})
		w := httptest.NewRecorder()
		s.Public().ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/v1/operator/raft/peer?id=x", nil))
		if w.Code != tc.code || w.Body.String() != tc.err.Error()+"\n" {
			t.Errorf("forward failing with %v: %d %q, want %d %q", tc.err, w.Code, w.Body.String(), tc.code, tc.err.Error())
		}
	}
}
