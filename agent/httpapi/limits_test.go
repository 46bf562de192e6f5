package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/test/testutil"
)

// unreadable is a request body that fails the test if anything reads it.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("the body was read")
	return 0, errors.New("unreadable")
}

// TestOversizeContentLengthRefusedUnread: a Content-Length over the
// route's limit is answered 413 at once, in Consul's words, the body
// unread and the connection marked to close, on the public and the
// internal port alike.
func TestOversizeContentLengthRefusedUnread(t *testing.T) {
	s := New(Config{Logger: hclog.NewNullLogger(), Limits: Limits{KVMaxValueSize: 1000, TxnMaxBytes: 4000}})
	for _, tc := range []struct {
		method, path string
		length       int64
		want         string
	}{
		{http.MethodPut, "/v1/kv/big", 1001, "Value exceeds 1000 byte limit"},
		{http.MethodPut, "/v1/txn", 4001, "Request body(4001 bytes) too large, max size: 4000 bytes"},
		{http.MethodPut, "/v1/agent/leave", 4001, "Request body(4001 bytes) too large, max size: 4000 bytes"},
		{http.MethodPut, "/v1/snapshot", maxSnapshotBytes + 1, fmt.Sprintf("Request body(%d bytes) too large, max size: %d bytes", maxSnapshotBytes+1, maxSnapshotBytes)},
	} {
		for name, h := range map[string]http.Handler{"public": s.Public(), "internal": s.Internal()} {
			if tc.path == "/v1/agent/leave" && name == "internal" {
				continue // not served there
			}
			r := httptest.NewRequest(tc.method, tc.path, unreadable{t})
			r.ContentLength = tc.length
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusRequestEntityTooLarge || w.Body.String() != tc.want+"\n" {
				t.Errorf("%s %s (%s, Content-Length %d) = %d %q, want 413 %q", tc.method, tc.path, name, tc.length, w.Code, w.Body.String(), tc.want)
			}
			if got := w.Header().Get("Connection"); got != "close" {
				t.Errorf("%s %s (%s): Connection = %q, want close", tc.method, tc.path, name, got)
			}
		}
	}
}

// TestChunkedBodyCutAtLimit: a body of unknown length is read up to the
// limit and no further, and the handler's read fails with the limit, which
// writeError answers 413.
func TestChunkedBodyCutAtLimit(t *testing.T) {
	const limit = 64 << 10
	var read, length int64
	h := limitBody(bodyRule{max: limit, tooLarge: bodyTooLarge}, func(w http.ResponseWriter, r *http.Request) {
		length = r.ContentLength
		n, err := io.Copy(io.Discard, r.Body)
		read = n
		writeError(w, err)
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	// An io.Reader that is not a *bytes.Reader has no known length, so the
	// client sends it chunked.
	body := io.LimitReader(neverEnding('x'), 100*limit)
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/v1/txn", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("PUT chunked: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf("Request body too large, max size: %d bytes\n", limit)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(msg) != want {
		t.Errorf("PUT chunked = %d %q, want 413 %q", resp.StatusCode, msg, want)
	}
	if length != -1 {
		t.Errorf("request ContentLength at the server = %d, want -1 (chunked)", length)
	}
	if read != limit {
		t.Errorf("handler read %d bytes, want the limit, %d", read, limit)
	}
}

// neverEnding is an endless stream of one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// serve serves srv on a loopback listener until the test ends, and returns
// its address.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestHeaderCap: a header over maxHeaderBytes is answered 431 by the
// API's server.
func TestHeaderCap(t *testing.T) {
	s := New(Config{Logger: hclog.NewNullLogger()})
	addr := serve(t, s.PublicServer())
	for _, tc := range []struct {
		size int
		code int
	}{
		{maxHeaderBytes / 2, http.StatusNotFound},
		{2 * maxHeaderBytes, http.StatusRequestHeaderFieldsTooLarge},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/nothing-here", nil)
		req.Header.Set("X-Filler", strings.Repeat("a", tc.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET with a %d-byte header: %v", tc.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET with a %d-byte header = %d, want %d", tc.size, resp.StatusCode, tc.code)
		}
	}
}

// TestServerTimeouts: the API's servers bound the header, the request and
// idle connections, size the read timeout for the largest body, and set
// no write timeout (blocking queries and snapshots are long).
func TestServerTimeouts(t *testing.T) {
	s := New(Config{Logger: hclog.NewNullLogger(), Limits: Limits{KVMaxValueSize: 8 << 20, TxnMaxBytes: 1 << 20}})
	for name, srv := range map[string]*http.Server{"public": s.PublicServer(), "internal": s.InternalServer(s.Internal())} {
		if srv.ReadHeaderTimeout != headerTimeout || srv.ReadTimeout != readTimeoutBase+8*time.Second ||
			srv.IdleTimeout != idleTimeout || srv.WriteTimeout != 0 || srv.MaxHeaderBytes != maxHeaderBytes {
			t.Errorf("%s server: header %v, read %v, idle %v, write %v, header bytes %d; want %v, %v, %v, 0, %d", name,
				srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.WriteTimeout, srv.MaxHeaderBytes,
				headerTimeout, readTimeoutBase+8*time.Second, idleTimeout, maxHeaderBytes)
		}
	}
}

// TestConnsPerClientCapped: past http_max_conns_per_client open
// connections from one address, a new one is answered 429 and closed; once
// one of them closes, a new one is served again.
func TestConnsPerClientCapped(t *testing.T) {
	const max = 3
	s := New(Config{Logger: hclog.NewNullLogger(), Limits: Limits{MaxConnsPerClient: max}})
	addr := serve(t, s.PublicServer())

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// get sends one request on c and returns the status line of the answer.
	get := func(c net.Conn) (string, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /v1/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		return resp.Status, nil
	}

	var open []net.Conn
	for range max {
		c := dial()
		if status, err := get(c); err != nil || status != "404 Not Found" {
			t.Fatalf("connection %d under the limit: %q, %v; want 404 Not Found", len(open)+1, status, err)
		}
		open = append(open, c)
	}
	over := dial()
	over.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil {
		t.Fatalf("connection over the limit: %v, want a 429 answer", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(msg), "too many concurrent connections") {
		t.Errorf("connection over the limit = %d %q, want 429 too many concurrent connections", resp.StatusCode, msg)
	}
	if _, err := over.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection over the limit: read after the answer = %v, want EOF (closed)", err)
	}

	open[0].Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		status, err := get(dial())
		if err != nil || status != "404 Not Found" {
			return fmt.Errorf("a new connection after one closed: %q, %v; want 404 Not Found", status, err)
		}
		return nil
	})
}

// TestForwardedBodyCutAnswers413: a body cut at its limit while a
// follower streams it to the leader is a 413, not a 503.
func TestForwardedBodyCutAnswers413(t *testing.T) {
	err := fmt.Errorf("forward to leader 10.0.0.1:8300: %w", &http.MaxBytesError{Limit: 4096})
	s := New(Config{Logger: hclog.NewNullLogger(), Store: followerStore{}, Leader: failingForwarder{err}})
	w := httptest.NewRecorder()
	s.Public().ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/v1/txn", strings.NewReader("[]")))
	want := "Request body too large, max size: 4096 bytes\n"
	if w.Code != http.StatusRequestEntityTooLarge || w.Body.String() != want {
		t.Errorf("PUT /v1/txn on a follower, body cut = %d %q, want 413 %q", w.Code, w.Body.String(), want)
	}
}

// TestReadTimeoutSparesBodylessRequests: once a request without a body has
// arrived, the server's read timeout no longer runs (net/http lifts it), so
// a blocking query that outlasts it keeps its context, which the servers'
// design relies on; a request still sending its body is cut by it.
func TestReadTimeoutSparesBodylessRequests(t *testing.T) {
	const readTimeout = 200 * time.Millisecond
	ctxErr := make(chan error, 1)
	h := limitBody(bodyRule{max: 1 << 20, tooLarge: bodyTooLarge}, func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_, err := io.Copy(io.Discard, r.Body)
			ctxErr <- err
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * readTimeout):
		}
		ctxErr <- r.Context().Err()
	})
	addr := serve(t, &http.Server{Handler: h, ReadTimeout: readTimeout})

	resp, err := http.Get("http://" + addr + "/v1/kv/k?index=5")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	if err := <-ctxErr; err != nil {
		t.Errorf("a bodyless request's context after the read timeout: %v, want not done", err)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
	select {
	case err := <-ctxErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("reading a stalled body: %v, want a timeout", err)
		}
	case <-time.After(10 * readTimeout):
		t.Errorf("a stalled body was still being read %v after the read timeout", 10*readTimeout)
	}
}

// TestBlockingWaitCapped: a blocking query waits at most Consul's 10
// minutes, plus Consul's jitter of up to a sixteenth.
func TestBlockingWaitCapped(t *testing.T) {
	for _, tc := range []struct{ wait, min, max time.Duration }{
		{0, defaultBlockingWait, defaultBlockingWait + defaultBlockingWait/16},
		{time.Minute, time.Minute, time.Minute + time.Minute/16},
		{24 * time.Hour, maxBlockingWait, maxBlockingWait + maxBlockingWait/16},
	} {
		for range 100 {
			if got := blockingWait(queryOpts{index: 1, wait: tc.wait}); got < tc.min || got > tc.max {
				t.Fatalf("blockingWait(wait=%v) = %v, want between %v and %v", tc.wait, got, tc.min, tc.max)
			}
		}
	}
}

// restoringStore is a leader whose RestoreSnapshot reads the whole stream
// and words a read error as consensus does, without wrapping it.
type restoringStore struct{ Store }

func (restoringStore) IsLeader() bool { return true }

func (restoringStore) RestoreSnapshot(_ context.Context, r io.Reader) (consensus.SnapshotInfo, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return consensus.SnapshotInfo{}, fmt.Errorf("%w: record at byte 0: %v", consensus.ErrCorruptSnapshot, err)
	}
	return consensus.SnapshotInfo{}, nil
}

// TestSnapshotRestoreCutAnswers413: a snapshot sent chunked past its limit
// is a 413, although consensus reports the cut stream as corrupt.
func TestSnapshotRestoreCutAnswers413(t *testing.T) {
	s := New(Config{Logger: hclog.NewNullLogger(), Store: restoringStore{}})
	h := limitBody(bodyRule{max: 1024, tooLarge: bodyTooLarge, read: snapshotTimeout}, s.snapshotRestore)
	r := httptest.NewRequest(http.MethodPut, "/v1/snapshot", io.LimitReader(neverEnding('s'), 4096))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	h(w, r)
	want := "Request body too large, max size: 1024 bytes\n"
	if w.Code != http.StatusRequestEntityTooLarge || w.Body.String() != want {
		t.Errorf("PUT /v1/snapshot, 4096 bytes chunked over a 1024 limit = %d %q, want 413 %q", w.Code, w.Body.String(), want)
	}
}
