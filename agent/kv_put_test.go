package agent

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/test/testutil"
)

// onlyReader hides the length of its reader, so the client sends the body
// chunked and the server sees ContentLength -1.
type onlyReader struct{ io.Reader }

// TestKVPutBodies: a PUT stores its body byte for byte whether its length
// is known or not, honours ?flags and ?cas, and refuses a body over
// kv_max_value_size with 413 either way.
func TestKVPutBodies(t *testing.T) {
	a := testAgent(t, "kvput", func(c *config.Config) {
		c.Bootstrap = true
		c.KVMaxValueSize = 16
	})
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !a.node.IsLeader() {
			return errors.New("not the leader yet")
		}
		return nil
	})
	put := func(path string, body io.Reader) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, "http://"+a.HTTPAddr()+"/v1/kv/"+path, body)
		if err != nil {
			t.Fatalf("new request: %v", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), strings.TrimSpace(string(b))
	}

	tests := []struct {
		name        string
		path        string
		body        io.Reader
		code        int
		answer      string
		value       string // stored afterwards under the path's key
		flags       uint64
		contentType string
	}{
		{name: "known length", path: "a", body: strings.NewReader("0123456789abcdef"), code: 200, answer: "true", value: "0123456789abcdef", contentType: "application/json"},
		{name: "chunked", path: "b", body: onlyReader{strings.NewReader("chunked value")}, code: 200, answer: "true", value: "chunked value", contentType: "application/json"},
		{name: "empty", path: "c", body: nil, code: 200, answer: "true", value: "", contentType: "application/json"},
		{name: "flags", path: "d?flags=42", body: strings.NewReader("x"), code: 200, answer: "true", value: "x", flags: 42, contentType: "application/json"},
		{name: "cas on an existing key", path: "a?cas=0", body: strings.NewReader("other"), code: 200, answer: "false", value: "0123456789abcdef", contentType: "application/json"},
		{name: "cas on a new key", path: "e?cas=0", body: strings.NewReader("new"), code: 200, answer: "true", value: "new", contentType: "application/json"},
		{name: "bad flags", path: "f?flags=x", body: strings.NewReader("x"), code: 400, answer: `Invalid flags: "x"`, contentType: "text/plain; charset=utf-8"},
		{name: "acquire with an unknown session", path: "i?acquire=4ca8e74b-6350-7587-addf-a18084928f3c", body: strings.NewReader("x"), code: 500, answer: `invalid session "4ca8e74b-6350-7587-addf-a18084928f3c"`, contentType: "text/plain; charset=utf-8"},
		{name: "too large, known length", path: "g", body: bytes.NewReader(make([]byte, 17)), code: 413, answer: "Value exceeds 16 byte limit", contentType: "text/plain; charset=utf-8"},
		{name: "too large, chunked", path: "h", body: onlyReader{bytes.NewReader(make([]byte, 17))}, code: 413, answer: "Value exceeds 16 byte limit", contentType: "text/plain; charset=utf-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, ct, answer := put(tc.path, tc.body)
			if code != tc.code || answer != tc.answer || ct != tc.contentType {
				t.Fatalf("PUT %s = %d %q (Content-Type %q), want %d %q (%q)", tc.path, code, answer, ct, tc.code, tc.answer, tc.contentType)
			}
			key, _, _ := strings.Cut(tc.path, "?")
			e, ok := a.node.Get(key)
			if tc.code != http.StatusOK {
				if ok {
					t.Errorf("Get(%q) = %+v after a refused PUT, want no entry", key, e)
				}
				return
			}
			if !ok || string(e.Value) != tc.value || e.Flags != tc.flags {
				t.Errorf("Get(%q) = %q flags %d (found %t), want %q flags %d", key, e.Value, e.Flags, ok, tc.value, tc.flags)
			}
		})
	}
}
