package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seen is what the test server saw of one request.
type seen struct {
	Method      string
	Path        string // escaped, as sent
	Query       string
	ContentType string
	Body        string
}

// answer is what the test server replies.
type answer struct {
	status int
	header map[string]string
	body   string
}

// metaHeaders are the X-Consul-* headers of a read, as the agent sends them.
var metaHeaders = map[string]string{
	"X-Consul-Index":       "7",
	"X-Consul-KnownLeader": "true",
	"X-Consul-LastContact": "12",
}

// newRecordingClient starts a server that records each request in full and
// gives ans, and returns a Client pointed at it.
func newRecordingClient(t *testing.T, ans answer) (*Client, func() []seen) {
	t.Helper()
	var (
		mu   sync.Mutex
		reqs []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server: read body: %v", err)
		}
		mu.Lock()
		reqs = append(reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Content-Type"), string(body)})
		mu.Unlock()
		for k, v := range ans.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(ans.status)
		_, _ = io.WriteString(w, ans.body)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatalf("NewClient(%q) error = %v", srv.URL, err)
	}
	return c, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), reqs...)
	}
}

// entryJSON is one entry as the agent sends it: "aGVsbG8=" is "hello".
const entryJSON = `{"Key":"a b/c?d%","CreateIndex":3,"ModifyIndex":5,"LockIndex":0,"Flags":42,"Value":"aGVsbG8="}`

func TestClient_kv(t *testing.T) {
	entry := &KVPair{Key: "a b/c?d%", CreateIndex: 3, ModifyIndex: 5, Flags: 42, Value: []byte("hello")}
	meta := &QueryMeta{LastIndex: 7, KnownLeader: true, LastContact: 12 * time.Millisecond}
	binary := []byte{0, 1, 0xff, '\n', 'x'}
	cases := []struct {
		name string
		ans  answer
		call func(c *Client) (any, error)
		want seen
		out  any
	}{
		{
			name: "get escapes each segment and drops a leading slash",
			ans:  answer{200, metaHeaders, "[" + entryJSON + "]"},
			call: func(c *Client) (any, error) {
				p, qm, err := c.KVGet("/a b/c?d%", nil)
				return []any{p, qm}, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/a%20b/c%3Fd%25"},
			out:  []any{entry, meta},
		},
		{
			name: "get missing key",
			ans:  answer{404, map[string]string{"X-Consul-Index": "9"}, ""},
			call: func(c *Client) (any, error) {
				p, qm, err := c.KVGet("nope", nil)
				return []any{p, qm}, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/nope"},
			out:  []any{(*KVPair)(nil), &QueryMeta{LastIndex: 9}},
		},
		{
			name: "get stale blocking",
			ans:  answer{200, metaHeaders, "[" + entryJSON + "]"},
			call: func(c *Client) (any, error) {
				_, _, err := c.KVGet("k", &QueryOptions{Stale: true, WaitIndex: 5, WaitTime: 30 * time.Second})
				return nil, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/k", Query: "index=5&stale=&wait=30000ms"},
		},
		{
			name: "get consistent",
			ans:  answer{200, metaHeaders, "[" + entryJSON + "]"},
			call: func(c *Client) (any, error) {
				_, _, err := c.KVGet("k", &QueryOptions{Consistent: true})
				return nil, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/k", Query: "consistent="},
		},
		{
			name: "get keeps a trailing slash",
			ans:  answer{200, metaHeaders, `[{"Key":"dir/","Value":null}]`},
			call: func(c *Client) (any, error) {
				p, _, err := c.KVGet("dir/", nil)
				return p, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/dir/"},
			out:  &KVPair{Key: "dir/"},
		},
		{
			name: "list",
			ans:  answer{200, metaHeaders, `[` + entryJSON + `,{"Key":"a b/e","Value":null,"Session":"s1"}]`},
			call: func(c *Client) (any, error) {
				l, qm, err := c.KVList("a b/", nil)
				return []any{l, qm}, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/a%20b/", Query: "recurse="},
			out:  []any{[]*KVPair{entry, {Key: "a b/e", Session: "s1"}}, meta},
		},
		{
			name: "list nothing",
			ans:  answer{404, metaHeaders, ""},
			call: func(c *Client) (any, error) {
				l, _, err := c.KVList("", &QueryOptions{Stale: true})
				return l, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/", Query: "recurse=&stale="},
			out:  []*KVPair(nil),
		},
		{
			name: "keys with separator",
			ans:  answer{200, metaHeaders, `["a/b","a/c/"]`},
			call: func(c *Client) (any, error) {
				k, _, err := c.KVKeys("a/", "/", nil)
				return k, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/a/", Query: "keys=&separator=%2F"},
			out:  []string{"a/b", "a/c/"},
		},
		{
			name: "keys without separator",
			ans:  answer{200, metaHeaders, `["a/b"]`},
			call: func(c *Client) (any, error) {
				k, _, err := c.KVKeys("a", "", nil)
				return k, err
			},
			want: seen{Method: "GET", Path: "/v1/kv/a", Query: "keys="},
			out:  []string{"a/b"},
		},
		{
			name: "put sends the raw value and the flags",
			ans:  answer{200, nil, "true"},
			call: func(c *Client) (any, error) {
				return nil, c.KVPut(&KVPair{Key: "web/cfg 1", Flags: 42, Value: binary, ModifyIndex: 99})
			},
			want: seen{Method: "PUT", Path: "/v1/kv/web/cfg%201", Query: "flags=42", ContentType: "application/octet-stream", Body: string(binary)},
		},
		{
			name: "put empty value without flags",
			ans:  answer{200, nil, "true\n"},
			call: func(c *Client) (any, error) { return nil, c.KVPut(&KVPair{Key: "k"}) },
			want: seen{Method: "PUT", Path: "/v1/kv/k", ContentType: "application/octet-stream"},
		},
		{
			name: "cas applied",
			ans:  answer{200, nil, "true"},
			call: func(c *Client) (any, error) {
				return c.KVCAS(&KVPair{Key: "k", ModifyIndex: 9, Value: []byte("v")})
			},
			want: seen{Method: "PUT", Path: "/v1/kv/k", Query: "cas=9", ContentType: "application/octet-stream", Body: "v"},
			out:  true,
		},
		{
			name: "cas failed",
			ans:  answer{200, nil, "false"},
			call: func(c *Client) (any, error) { return c.KVCAS(&KVPair{Key: "k", Flags: 1}) },
			want: seen{Method: "PUT", Path: "/v1/kv/k", Query: "cas=0&flags=1", ContentType: "application/octet-stream"},
			out:  false,
		},
		{
			name: "delete",
			ans:  answer{200, nil, "true"},
			call: func(c *Client) (any, error) { return nil, c.KVDelete("/a/b") },
			want: seen{Method: "DELETE", Path: "/v1/kv/a/b"},
		},
		{
			name: "delete cas failed",
			ans:  answer{200, nil, "false"},
			call: func(c *Client) (any, error) { return c.KVDeleteCAS(&KVPair{Key: "a", ModifyIndex: 3}) },
			want: seen{Method: "DELETE", Path: "/v1/kv/a", Query: "cas=3"},
			out:  false,
		},
		{
			name: "delete tree",
			ans:  answer{200, nil, "true"},
			call: func(c *Client) (any, error) { return nil, c.KVDeleteTree("a/") },
			want: seen{Method: "DELETE", Path: "/v1/kv/a/", Query: "recurse="},
		},
		{
			name: "txn applied",
			ans:  answer{200, nil, `{"Results":[{"KV":` + entryJSON + `}],"Errors":null}`},
			call: func(c *Client) (any, error) {
				ok, resp, err := c.Txn([]*TxnOp{
					{KV: &KVTxnOp{Verb: KVOpSet, Key: "a", Value: []byte("hi"), Flags: 1}},
					{KV: &KVTxnOp{Verb: KVOpDeleteCAS, Key: "b", Index: 4}},
				})
				return []any{ok, resp}, err
			},
			want: seen{
				Method: "PUT", Path: "/v1/txn", ContentType: "application/json",
				Body: `[{"KV":{"Verb":"set","Key":"a","Value":"aGk=","Flags":1,"Index":0}},` +
					`{"KV":{"Verb":"delete-cas","Key":"b","Value":null,"Flags":0,"Index":4}}]`,
			},
			out: []any{true, &TxnResponse{Results: []*TxnResult{{KV: entry}}}},
		},
		{
			name: "txn rolled back",
			ans:  answer{409, nil, `{"Results":null,"Errors":[{"OpIndex":1,"What":"failed to delete key \"b\", index is stale"}]}`},
			call: func(c *Client) (any, error) {
				ok, resp, err := c.Txn([]*TxnOp{{KV: &KVTxnOp{Verb: KVOpCheckNotExists, Key: "b"}}})
				return []any{ok, resp}, err
			},
			want: seen{
				Method: "PUT", Path: "/v1/txn", ContentType: "application/json",
				Body: `[{"KV":{"Verb":"check-not-exists","Key":"b","Value":null,"Flags":0,"Index":0}}]`,
			},
			out: []any{false, &TxnResponse{Errors: []*TxnError{{OpIndex: 1, What: `failed to delete key "b", index is stale`}}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, reqs := newRecordingClient(t, tc.ans)
			out, err := tc.call(c)
			if err != nil {
				t.Fatalf("call error = %v", err)
			}
			if diff := cmp.Diff([]seen{tc.want}, reqs()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
			if tc.out == nil {
				return
			}
			if diff := cmp.Diff(tc.out, out); diff != "" {
				t.Errorf("answer mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClient_kvErrors(t *testing.T) {
	cases := []struct {
		name    string
		ans     answer
		call    func(c *Client) error
		wantErr string
		status  int // the *StatusError code expected, if any
		noReq   bool
	}{
		{
			name:    "get server error",
			ans:     answer{500, nil, "No cluster leader\n"},
			call:    func(c *Client) error { _, _, err := c.KVGet("k", nil); return err },
			wantErr: "Unexpected response code: 500 (No cluster leader)",
			status:  500,
		},
		{
			name:    "get bad index header",
			ans:     answer{200, map[string]string{"X-Consul-Index": "x"}, "[]"},
			call:    func(c *Client) error { _, _, err := c.KVGet("k", nil); return err },
			wantErr: `parse X-Consul-Index "x"`,
		},
		{
			name:    "get bad body",
			ans:     answer{200, metaHeaders, "[{"},
			call:    func(c *Client) error { _, _, err := c.KVGet("k", nil); return err },
			wantErr: "decode GET /v1/kv/k response",
		},
		{
			name:    "put too large",
			ans:     answer{413, nil, "Value exceeds 524288 byte limit\n"},
			call:    func(c *Client) error { return c.KVPut(&KVPair{Key: "k", Value: []byte("v")}) },
			wantErr: "Unexpected response code: 413 (Value exceeds 524288 byte limit)",
			status:  413,
		},
		{
			name:    "put answered false",
			ans:     answer{200, nil, "false"},
			call:    func(c *Client) error { return c.KVPut(&KVPair{Key: "k"}) },
			wantErr: `put "k": the agent did not apply the write`,
		},
		{
			name:    "put leading slash",
			call:    func(c *Client) error { return c.KVPut(&KVPair{Key: "/k"}) },
			wantErr: `put "/k": key must not begin with a '/'`,
			noReq:   true,
		},
		{
			name:    "cas leading slash",
			call:    func(c *Client) error { _, err := c.KVCAS(&KVPair{Key: "/k"}); return err },
			wantErr: `put "/k": key must not begin with a '/'`,
			noReq:   true,
		},
		{
			name:    "delete answer not a bool",
			ans:     answer{200, nil, `[{"Key":"k"}]`},
			call:    func(c *Client) error { return c.KVDelete("k") },
			wantErr: "decode DELETE /v1/kv/k response",
		},
		{
			name:    "txn too large",
			ans:     answer{413, nil, "Transaction contains too many operations (129 > 128)"},
			call:    func(c *Client) error { _, _, err := c.Txn(nil); return err },
			wantErr: "Unexpected response code: 413 (Transaction contains too many operations (129 > 128))",
			status:  413,
		},
		{
			name:    "redirect is not followed",
			ans:     answer{301, map[string]string{"Location": "/v1/kv/a/b"}, ""},
			call:    func(c *Client) error { return c.KVDelete("a//b") },
			wantErr: "Unexpected response code: 301",
			status:  301,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, reqs := newRecordingClient(t, tc.ans)
			err := tc.call(c)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("call error = %v, want it to contain %q", err, tc.wantErr)
			}
			var se *StatusError
			if got := errors.As(err, &se); got != (tc.status != 0) || (got && se.Code != tc.status) {
				t.Errorf("call error = %#v, want a *StatusError with code %d: %t", err, tc.status, tc.status != 0)
			}
			if tc.noReq && len(reqs()) != 0 {
				t.Errorf("requests = %v, want none", reqs())
			}
			if !tc.noReq && len(reqs()) != 1 {
				t.Errorf("requests = %v, want exactly one", reqs())
			}
			if tc.name == "put leading slash" && !errors.Is(err, ErrLeadingSlash) {
				t.Errorf("KVPut error = %v, want ErrLeadingSlash", err)
			}
		})
	}
}

func TestParseQueryMeta(t *testing.T) {
	cases := []struct {
		name    string
		header  map[string]string
		want    *QueryMeta
		wantErr string
	}{
		{name: "none", want: &QueryMeta{}},
		{name: "all", header: metaHeaders, want: &QueryMeta{LastIndex: 7, KnownLeader: true, LastContact: 12 * time.Millisecond}},
		{name: "never contacted", header: map[string]string{"X-Consul-LastContact": "-1", "X-Consul-KnownLeader": "false"}, want: &QueryMeta{LastContact: -time.Millisecond}},
		{name: "bad index", header: map[string]string{"X-Consul-Index": "-3"}, wantErr: `parse X-Consul-Index "-3"`},
		{name: "bad last contact", header: map[string]string{"X-Consul-LastContact": "1s"}, wantErr: `parse X-Consul-LastContact "1s"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, err := parseQueryMeta(h)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseQueryMeta() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseQueryMeta() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseQueryMeta() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKVPath(t *testing.T) {
	cases := map[string]string{
		"":             "/v1/kv/",
		"a":            "/v1/kv/a",
		"a/b/":         "/v1/kv/a/b/",
		"a b/c?d#e%f":  "/v1/kv/a%20b/c%3Fd%23e%25f",
		"x;y,z/é":      "/v1/kv/x%3By%2Cz/%C3%A9",
		"keep:@&=+$!~": "/v1/kv/keep:@&=+$%21~",
	}
	for key, want := range cases {
		if got := kvPath(key); got != want {
			t.Errorf("kvPath(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestClient_queryTimeout(t *testing.T) {
	c := &Client{timeout: 10 * time.Second}
	cases := []struct {
		name string
		q    *QueryOptions
		want time.Duration
	}{
		{name: "nil", want: 10 * time.Second},
		{name: "wait without index does not block", q: &QueryOptions{WaitTime: time.Minute}, want: 10 * time.Second},
		{name: "blocking", q: &QueryOptions{WaitIndex: 3, WaitTime: 32 * time.Second}, want: 10*time.Second + 32*time.Second + 2*time.Second},
		{name: "blocking default wait", q: &QueryOptions{WaitIndex: 3}, want: 10*time.Second + 5*time.Minute + 5*time.Minute/16},
		{name: "blocking capped wait", q: &QueryOptions{WaitIndex: 3, WaitTime: time.Hour}, want: 10*time.Second + 10*time.Minute + 10*time.Minute/16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.queryTimeout(tc.q); got != tc.want {
				t.Errorf("queryTimeout(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// TestClient_blockingQueryOutlivesTimeout checks that a blocking query is
// not cut by the usual request timeout, while a plain read is.
func TestClient_blockingQueryOutlivesTimeout(t *testing.T) {
	const hold = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hold the query as an agent holds a blocking query with nothing new.
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("X-Consul-Index", "5")
		_, _ = io.WriteString(w, `[{"Key":"k"}]`)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatalf("NewClient(%q) error = %v", srv.URL, err)
	}
	c.timeout = 100 * time.Millisecond

	if _, _, err := c.KVGet("k", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("KVGet() without WaitIndex error = %v, want context.DeadlineExceeded", err)
	}
	p, qm, err := c.KVGet("k", &QueryOptions{WaitIndex: 5, WaitTime: time.Second})
	if err != nil {
		t.Fatalf("KVGet() blocking error = %v", err)
	}
	if p == nil || p.Key != "k" || qm.LastIndex != 5 {
		t.Errorf("KVGet() blocking = %+v, %+v; want key k at index 5", p, qm)
	}
}
