package agent

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	"github.com/conclavehq/conclave/agent/serverport"
	"github.com/conclavehq/conclave/config"
)

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, b
}

// TestDebugProfilesOffByDefault: without enable_debug no pprof path
// answers, on the HTTP API or the server port.
func TestDebugProfilesOffByDefault(t *testing.T) {
	a := testAgent(t, "nodebug", nil)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"} {
		if code, body := get(t, "http://"+a.HTTPAddr()+p); code != http.StatusNotFound {
			t.Errorf("GET %s = %d %q, want 404", p, code, body)
		}
	}
}

// gunzip returns the decompressed profile: pprof's binary profiles are
// gzipped protobufs.
func gunzip(t *testing.T, what string, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: not a gzipped profile: %v", what, err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: corrupt gzip stream: %v", what, err)
	}
	return out
}

// TestDebugProfilesWhenEnabled: with enable_debug the HTTP API serves the
// index and real profiles; the server port still does not.
func TestDebugProfilesWhenEnabled(t *testing.T) {
	a := testAgent(t, "debug", func(c *config.Config) { c.EnableDebug = true })
	base := "http://" + a.HTTPAddr() + "/debug/pprof/"

	code, body := get(t, base)
	if code != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) {
		t.Fatalf("GET /debug/pprof/ = %d %.200q, want 200 with the profile index", code, body)
	}
	for _, name := range []string{"heap", "allocs", "goroutine"} {
		code, body := get(t, base+name)
		if code != http.StatusOK {
			t.Fatalf("GET /debug/pprof/%s = %d %.200q, want 200", name, code, body)
		}
		if pb := gunzip(t, "GET /debug/pprof/"+name, body); len(pb) == 0 {
			t.Errorf("GET /debug/pprof/%s: empty profile", name)
		}
	}
	code, body = get(t, base+"heap?debug=1")
	if code != http.StatusOK || !bytes.HasPrefix(body, []byte("heap profile: ")) {
		t.Errorf("GET /debug/pprof/heap?debug=1 = %d %.200q, want the heap profile as text", code, body)
	}
	code, body = get(t, base+"profile?seconds=1")
	if code != http.StatusOK {
		t.Fatalf("GET /debug/pprof/profile?seconds=1 = %d %.200q, want 200", code, body)
	}
	if pb := gunzip(t, "GET /debug/pprof/profile", body); !bytes.Contains(pb, []byte("cpu")) || !bytes.Contains(pb, []byte("nanoseconds")) {
		t.Errorf("GET /debug/pprof/profile?seconds=1: %d bytes without the cpu/nanoseconds sample type", len(pb))
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+a.RaftAddr()+"/debug/pprof/", nil)
	resp, err := serverport.NewClient().Send(req)
	if err != nil {
		t.Fatalf("GET /debug/pprof/ over the server port: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ over the server port = %d, want 404", resp.StatusCode)
	}
}
