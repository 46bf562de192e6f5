package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// recordingForwarder answers every request itself, as a leader would,
// and counts them.
type recordingForwarder struct{ n *int }

func (f recordingForwarder) Forward(w http.ResponseWriter, r *http.Request) error {
	*f.n++
	w.Write([]byte("from leader"))
	return nil
}

// TestApplicationRoutes: an application's routes are served on the same
// placement as the API's own: a leader route on a follower is forwarded,
// an AnyAgent route is answered where it arrives and is not on the server
// port, and with NoKV the key/value routes are gone but the rest is not.
func TestApplicationRoutes(t *testing.T) {
	forwarded := 0
	local := func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("local")) }
	s := New(Config{
		Logger: hclog.NewNullLogger(), Store: followerStore{}, Leader: recordingForwarder{&forwarded},
		NoKV: true,
		Routes: []Route{
			{Method: "POST", Pattern: "/counter/incr", Who: Leader, Handler: local},
			{Method: "GET", Pattern: "/counter", Who: AnyAgent, Handler: local},
		},
	})
	for _, tc := range []struct {
		h            http.Handler
		method, path string
		code         int
		body         string
	}{
		{s.Public(), "POST", "/counter/incr", 200, "from leader"},
		{s.Internal(), "POST", "/counter/incr", 200, "from leader"},
		{s.Public(), "GET", "/counter", 200, "local"},
		{s.Internal(), "GET", "/counter", 404, ""},
		{s.Public(), "PUT", "/v1/kv/k", 404, ""},
		{s.Public(), "PUT", "/v1/txn", 404, ""},
		{s.Public(), "GET", "/v1/snapshot", 404, ""},
		{s.Public(), "GET", "/v1/agent/health", 200, ""},
	} {
		w := httptest.NewRecorder()
		tc.h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.code || (tc.body != "" && w.Body.String() != tc.body) {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, w.Code, w.Body.String(), tc.code, tc.body)
		}
	}
	if forwarded != 2 {
		t.Errorf("forwarded %d requests, want 2", forwarded)
	}
}

func TestCheckRoutes(t *testing.T) {
	h := func(http.ResponseWriter, *http.Request) {}
	for _, tc := range []struct {
		name   string
		routes []Route
		want   string
	}{
		{"ok", []Route{{Method: "GET", Pattern: "/a", Handler: h}, {Method: "POST", Pattern: "/a", Who: Leader, Handler: h}}, ""},
		{"relative", []Route{{Pattern: "a", Handler: h}}, "must begin with /"},
		{"reserved", []Route{{Pattern: "/v1/kv/x", Handler: h}}, "belong to the API"},
		{"no handler", []Route{{Pattern: "/a"}}, "no handler"},
		{"placement", []Route{{Pattern: "/a", Who: 9, Handler: h}}, "unknown placement"},
		{"conflict", []Route{{Method: "GET", Pattern: "/a", Handler: h}, {Method: "GET", Pattern: "/a", Handler: h}}, "conflicts"},
		{"malformed", []Route{{Pattern: "/{a", Handler: h}}, "route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRoutes(tc.routes)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckRoutes = %v, want %q", err, tc.want)
			}
		})
	}
}
