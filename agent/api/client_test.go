package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewClient_addr(t *testing.T) {
	cases := []struct {
		name     string
		addr     string
		env      string
		wantBase string
		wantErr  string
	}{
		{name: "default", wantBase: "http://127.0.0.1:8500"},
		{name: "env", env: "10.0.0.1:9500", wantBase: "http://10.0.0.1:9500"},
		{name: "arg beats env", addr: "10.0.0.2:8500", env: "10.0.0.1:9500", wantBase: "http://10.0.0.2:8500"},
		{name: "host port", addr: "localhost:8500", wantBase: "http://localhost:8500"},
		{name: "ipv6", addr: "[::1]:8500", wantBase: "http://[::1]:8500"},
		{name: "http url", addr: "http://127.0.0.1:8500", wantBase: "http://127.0.0.1:8500"},
		{name: "https url trailing slash", addr: "https://agent.example:8501/", wantBase: "https://agent.example:8501"},
		{name: "unix scheme", addr: "unix:///tmp/conclave.sock", wantErr: `unsupported scheme "unix"`},
		{name: "no host", addr: "http://", wantErr: "missing host"},
		{name: "path", addr: "http://127.0.0.1:8500/v1", wantErr: "want only scheme, host and port"},
		{name: "unparsable", addr: "127.0.0.1:85%00", wantErr: "parse http address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(HTTPAddrEnv, tc.env)
			t.Setenv(ConsulHTTPAddrEnv, "")
			c, err := NewClient(tc.addr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewClient(%q) error = %v, want it to contain %q", tc.addr, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient(%q) error = %v", tc.addr, err)
			}
			if c.base != tc.wantBase {
				t.Errorf("NewClient(%q) base = %q, want %q", tc.addr, c.base, tc.wantBase)
			}
			if c.timeout != requestTimeout || c.slowTimeout != slowRequestTimeout {
				t.Errorf("NewClient(%q) timeouts = %v, %v; want %v, %v",
					tc.addr, c.timeout, c.slowTimeout, requestTimeout, slowRequestTimeout)
			}
		})
	}
}

// recorded is what the test server saw of one request.
type recorded struct {
	Method string
	Path   string // escaped, as sent
	Query  string
}

// newTestClient starts a server that records each request and answers with
// status and body, and returns a Client pointed at it.
func newTestClient(t *testing.T, status int, body string) (*Client, func() []recorded) {
	t.Helper()
	var (
		mu   sync.Mutex
		reqs []recorded
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery})
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatalf("NewClient(%q) error = %v", srv.URL, err)
	}
	return c, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), reqs...)
	}
}

func TestClient_requests(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		body string
		call func(c *Client) (any, error)
		want recorded
		out  any
	}{
		{
			name: "members",
			body: `[{"Name":"n1","Addr":"10.0.0.1","Port":8301,"Tags":{"role":"server"},"Status":1,"ProtocolCur":5}]`,
			call: func(c *Client) (any, error) { return c.Members() },
			want: recorded{"GET", "/v1/agent/members", ""},
			out: []*Member{{
				Name: "n1", Addr: "10.0.0.1", Port: 8301, Tags: map[string]string{"role": "server"},
				Status: MemberStatusAlive, ProtocolCur: 5,
			}},
		},
		{
			name: "self",
			body: `{"Config":{"NodeName":"n1","Server":true,"BootstrapExpect":3},"Member":{"Name":"n1"},"Stats":{"raft":{"state":"Leader"}}}`,
			call: func(c *Client) (any, error) { return c.Self() },
			want: recorded{"GET", "/v1/agent/self", ""},
			out: &Self{
				Config: SelfConfig{NodeName: "n1", Server: true, BootstrapExpect: 3},
				Member: Member{Name: "n1"},
				Stats:  map[string]map[string]string{"raft": {"state": "Leader"}},
			},
		},
		{
			name: "leader",
			body: `"10.0.0.1:8300"`,
			call: func(c *Client) (any, error) { return c.Leader() },
			want: recorded{"GET", "/v1/status/leader", ""},
			out:  "10.0.0.1:8300",
		},
		{
			name: "no leader",
			body: `""`,
			call: func(c *Client) (any, error) { return c.Leader() },
			want: recorded{"GET", "/v1/status/leader", ""},
			out:  "",
		},
		{
			name: "peers",
			body: `["10.0.0.1:8300","10.0.0.2:8300"]`,
			call: func(c *Client) (any, error) { return c.Peers() },
			want: recorded{"GET", "/v1/status/peers", ""},
			out:  []string{"10.0.0.1:8300", "10.0.0.2:8300"},
		},
		{
			name: "raft configuration",
			body: `{"Servers":[{"ID":"id1","Node":"n1","Address":"10.0.0.1:8300","Leader":true,"Voter":true,"ProtocolVersion":"3"}],"Index":7}`,
			call: func(c *Client) (any, error) { return c.RaftConfiguration() },
			want: recorded{"GET", "/v1/operator/raft/configuration", ""},
			out: &RaftConfiguration{
				Servers: []*RaftServer{{ID: "id1", Node: "n1", Address: "10.0.0.1:8300", Leader: true, Voter: true, ProtocolVersion: "3"}},
				Index:   7,
			},
		},
		{
			name: "remove peer",
			call: func(c *Client) (any, error) { return nil, c.RaftRemovePeerByID("a b&c") },
			want: recorded{"DELETE", "/v1/operator/raft/peer", "id=a+b%26c"},
		},
		{
			name: "join",
			call: func(c *Client) (any, error) { return nil, c.Join("10.0.0.2:8301") },
			want: recorded{"PUT", "/v1/agent/join/10.0.0.2:8301", ""},
		},
		{
			name: "leave",
			call: func(c *Client) (any, error) { return nil, c.Leave() },
			want: recorded{"PUT", "/v1/agent/leave", ""},
		},
		{
			name: "force leave escapes node",
			call: func(c *Client) (any, error) { return nil, c.ForceLeave("web/1 a") },
			want: recorded{"PUT", "/v1/agent/force-leave/web%2F1%20a", ""},
		},
		{
			name: "bootstrap",
			body: `{"State":"bootstrapped","Expect":3,"Seen":["n1","n2","n3"],"By":"n1","At":"2025-01-02T03:04:05Z","Reason":"expected servers seen"}`,
			call: func(c *Client) (any, error) { return c.Bootstrap() },
			want: recorded{"GET", "/v1/operator/bootstrap", ""},
			out: &BootstrapStatus{
				State: BootstrapBootstrapped, Expect: 3, Seen: []string{"n1", "n2", "n3"},
				By: "n1", At: &at, Reason: "expected servers seen",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, reqs := newTestClient(t, http.StatusOK, tc.body)
			out, err := tc.call(c)
			if err != nil {
				t.Fatalf("call error = %v", err)
			}
			if diff := cmp.Diff([]recorded{tc.want}, reqs()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
			if tc.out == nil {
				return
			}
			if diff := cmp.Diff(tc.out, out); diff != "" {
				t.Errorf("decoded answer mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClient_statusError(t *testing.T) {
	c, _ := newTestClient(t, http.StatusInternalServerError, "no leader elected\n")
	_, err := c.Members()
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("Members() error = %v (%T), want *StatusError", err, err)
	}
	if se.Code != http.StatusInternalServerError || se.Body != "no leader elected" {
		t.Errorf("Members() StatusError = %+v, want code 500 and body %q", se, "no leader elected")
	}
	if got, want := err.Error(), "Unexpected response code: 500 (no leader elected)"; got != want {
		t.Errorf("Members() error = %q, want %q", got, want)
	}
}

func TestClient_non2xxWithoutBody(t *testing.T) {
	c, _ := newTestClient(t, http.StatusNotFound, "")
	err := c.Leave()
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("Leave() error = %v, want *StatusError with code 404", err)
	}
}

func TestClient_decodeError(t *testing.T) {
	c, _ := newTestClient(t, http.StatusOK, `{"Servers":`)
	_, err := c.RaftConfiguration()
	if err == nil || !strings.Contains(err.Error(), "decode GET /v1/operator/raft/configuration response") {
		t.Fatalf("RaftConfiguration() error = %v, want a decode error", err)
	}
}

func TestClient_deadAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	c, err := NewClient(addr)
	if err != nil {
		t.Fatalf("NewClient(%q) error = %v", addr, err)
	}
	_, err = c.Members()
	if err == nil {
		t.Fatalf("Members() on closed port %s: got no error", addr)
	}
	var se *StatusError
	if errors.As(err, &se) {
		t.Errorf("Members() error = %v, want a transport error, not *StatusError", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("Members() error = %q, want one line", err)
	}
}

func TestClient_timeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Unblock the handler before Close, which waits for it.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatalf("NewClient(%q) error = %v", srv.URL, err)
	}
	c.timeout, c.slowTimeout = 50*time.Millisecond, 100*time.Millisecond

	cases := []struct {
		name string
		call func() error
		min  time.Duration
	}{
		{"members uses timeout", func() error { _, err := c.Members(); return err }, c.timeout},
		{"leave uses slowTimeout", c.Leave, c.slowTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.call()
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("call error = %v, want context.DeadlineExceeded", err)
			}
			if elapsed < tc.min || elapsed > 5*time.Second {
				t.Errorf("call returned after %v, want between %v and 5s", elapsed, tc.min)
			}
		})
	}
}

func TestNewClientConfig_addr(t *testing.T) {
	cases := []struct {
		name, addr, conclave, consul, wantBase string
	}{
		{name: "default", wantBase: "http://127.0.0.1:8500"},
		{name: "consul env", consul: "10.0.0.3:8500", wantBase: "http://10.0.0.3:8500"},
		{name: "conclave env over consul env", conclave: "10.0.0.1:9500", consul: "10.0.0.3:8500", wantBase: "http://10.0.0.1:9500"},
		{name: "address over both", addr: "10.0.0.2:8500", conclave: "10.0.0.1:9500", consul: "10.0.0.3:8500", wantBase: "http://10.0.0.2:8500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(HTTPAddrEnv, tc.conclave)
			t.Setenv(ConsulHTTPAddrEnv, tc.consul)
			c, err := NewClientConfig(Config{Address: tc.addr})
			if err != nil {
				t.Fatalf("NewClientConfig() error = %v", err)
			}
			if c.base != tc.wantBase {
				t.Errorf("NewClientConfig() base = %q, want %q", c.base, tc.wantBase)
			}
		})
	}
}
