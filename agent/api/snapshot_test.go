package api

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// newSnapshotClient starts a server with handler and returns a Client
// pointed at it, with the snapshot watchdog shortened to stall and work.
func newSnapshotClient(t *testing.T, stall, work time.Duration, handler http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatalf("NewClient(%q) error = %v", srv.URL, err)
	}
	c.stallTimeout, c.workTimeout = stall, work
	return c
}

// notifyWriter closes first on the first Write that reaches it. It has no
// ReadFrom, so io.Copy must call Write.
type notifyWriter struct {
	buf   bytes.Buffer
	first chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	if w.buf.Len() == 0 && len(p) > 0 {
		close(w.first)
	}
	return w.buf.Write(p)
}

// TestClient_snapshotSaveStreams checks that SnapshotSave hands each part
// of the body to w as it arrives: the server sends its second part only
// once w has the first.
func TestClient_snapshotSaveStreams(t *testing.T) {
	out := &notifyWriter{first: make(chan struct{})}
	c := newSnapshotClient(t, 5*time.Second, 5*time.Second, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/snapshot" {
			t.Errorf("server: got %s %s, want GET /v1/snapshot", r.Method, r.URL.Path)
		}
		w.Header().Set("X-Consul-Index", "17")
		_, _ = w.Write([]byte("part1\x00"))
		w.(http.Flusher).Flush()
		select {
		case <-out.first:
		case <-time.After(5 * time.Second):
			t.Errorf("server: the client did not write the first part before the body ended")
			return
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte("part2"))
	})
	index, err := c.SnapshotSave(out)
	if err != nil {
		t.Fatalf("SnapshotSave() error = %v", err)
	}
	if index != 17 {
		t.Errorf("SnapshotSave() index = %d, want 17", index)
	}
	if got, want := out.buf.String(), "part1\x00part2"; got != want {
		t.Errorf("SnapshotSave() wrote %q, want %q", got, want)
	}
}

func TestClient_snapshotSaveErrors(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
		stalled bool
		status  int
	}{
		{
			name: "server error",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "No cluster leader", http.StatusInternalServerError)
			},
			wantErr: "Unexpected response code: 500 (No cluster leader)",
			status:  500,
		},
		{
			name: "truncated body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
				_, _ = w.Write([]byte("only ten b"))
			},
			wantErr: "read snapshot: unexpected EOF",
		},
		{
			name: "bad index",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Consul-Index", "none")
			},
			wantErr: `parse X-Consul-Index "none"`,
		},
		{
			name: "stalls mid-body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("part1"))
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			},
			wantErr: "read snapshot: snapshot request made no progress for 50ms",
			stalled: true,
		},
		{
			name: "never answers",
			handler: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
			wantErr: "snapshot request made no progress for 100ms",
			stalled: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newSnapshotClient(t, 50*time.Millisecond, 100*time.Millisecond, tc.handler)
			start := time.Now()
			_, err := c.SnapshotSave(io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("SnapshotSave() error = %v, want it to contain %q", err, tc.wantErr)
			}
			if got := errors.Is(err, errStalled); got != tc.stalled {
				t.Errorf("errors.Is(%v, errStalled) = %t, want %t", err, got, tc.stalled)
			}
			var se *StatusError
			if got := errors.As(err, &se); got != (tc.status != 0) || (got && se.Code != tc.status) {
				t.Errorf("SnapshotSave() error = %#v, want a *StatusError with code %d: %t", err, tc.status, tc.status != 0)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("SnapshotSave() returned after %v, want well under 5s", elapsed)
			}
		})
	}
}

func TestClient_snapshotRestore(t *testing.T) {
	// Larger than one read, so that the upload takes several.
	snap := bytes.Repeat([]byte("snap\x00\xff"), 100_000)
	var got []byte
	c := newSnapshotClient(t, 5*time.Second, 5*time.Second, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/v1/snapshot" {
			t.Errorf("server: got %s %s, want PUT /v1/snapshot", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("server: Content-Type = %q, want application/octet-stream", ct)
		}
		var err error
		if got, err = io.ReadAll(r.Body); err != nil {
			t.Errorf("server: read body: %v", err)
		}
	})
	if err := c.SnapshotRestore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("SnapshotRestore() error = %v", err)
	}
	if !bytes.Equal(got, snap) {
		t.Errorf("server received %d bytes, want the %d bytes of the snapshot", len(got), len(snap))
	}
}

// blockingReader returns data, then blocks until release is closed.
type blockingReader struct {
	data    []byte
	release chan struct{}
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	<-r.release
	return 0, io.EOF
}

func TestClient_snapshotRestoreErrors(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	cases := []struct {
		name    string
		body    io.Reader
		handler http.HandlerFunc
		wantErr string
		stalled bool
	}{
		{
			name: "refused",
			body: strings.NewReader("garbage"),
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				http.Error(w, "Invalid snapshot: bad header", http.StatusBadRequest)
			},
			wantErr: "Unexpected response code: 400 (Invalid snapshot: bad header)",
		},
		{
			name: "upload stalls",
			body: &blockingReader{data: []byte("part1"), release: release},
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
			},
			wantErr: "snapshot request made no progress for 50ms",
			stalled: true,
		},
		{
			name: "restore never answers",
			body: strings.NewReader("snap"),
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
			},
			wantErr: "snapshot request made no progress for 100ms",
			stalled: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newSnapshotClient(t, 50*time.Millisecond, 100*time.Millisecond, tc.handler)
			start := time.Now()
			err := c.SnapshotRestore(tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("SnapshotRestore() error = %v, want it to contain %q", err, tc.wantErr)
			}
			if got := errors.Is(err, errStalled); got != tc.stalled {
				t.Errorf("errors.Is(%v, errStalled) = %t, want %t", err, got, tc.stalled)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("SnapshotRestore() returned after %v, want well under 5s", elapsed)
			}
		})
	}
}

// TestClient_snapshotRestoreWaitsForWork checks that, once the upload is
// done, the agent has workTimeout, not stallTimeout, to answer.
func TestClient_snapshotRestoreWaitsForWork(t *testing.T) {
	const stall, work = 50 * time.Millisecond, 5 * time.Second
	c := newSnapshotClient(t, stall, work, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// Work for several stall timeouts before answering.
		select {
		case <-time.After(6 * stall):
		case <-r.Context().Done():
		}
	})
	if err := c.SnapshotRestore(strings.NewReader(strconv.Itoa(42))); err != nil {
		t.Fatalf("SnapshotRestore() error = %v, want success after the agent's work", err)
	}
}

// testSnapshot returns a snapshot stream of format version 1 around body,
// ending with its checksum as the agent writes it.
func testSnapshot(body string) []byte { return testSnapshotVersion(1, body) }

// testSnapshotVersion is testSnapshot for another format version.
func testSnapshotVersion(version byte, body string) []byte {
	b := append([]byte("CNCLVKV"), version)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func TestVerifySnapshot(t *testing.T) {
	// Meta (applied, kvIndex, reapThrough, reapIndex), one entry, the end.
	valid := testSnapshot("\x05\x05\x00\x00" + "\x01\x01k\x00\x05\x05\x00\x01v" + "\x03\x01\x00")
	large := testSnapshot(strings.Repeat("\x00records\xff", 50_000))
	flipped := bytes.Clone(valid)
	flipped[10] ^= 0x01
	cases := []struct {
		name    string
		r       io.Reader
		wantErr error
		wantMsg string
	}{
		{name: "valid", r: bytes.NewReader(valid)},
		{name: "format version 2", r: bytes.NewReader(testSnapshotVersion(2, "\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x00"))},
		{name: "valid one byte at a time", r: iotest.OneByteReader(bytes.NewReader(valid))},
		{name: "valid in odd pieces", r: iotest.HalfReader(bytes.NewReader(large))},
		{name: "large", r: bytes.NewReader(large)},
		{name: "empty", r: strings.NewReader(""), wantErr: ErrCorruptSnapshot, wantMsg: "corrupt snapshot: empty stream"},
		{name: "other format", r: strings.NewReader("\x1f\x8b\x08gzip"), wantErr: ErrCorruptSnapshot, wantMsg: "corrupt snapshot: not a Conclave snapshot"},
		{name: "html error page", r: strings.NewReader("<html>"), wantErr: ErrCorruptSnapshot, wantMsg: "not a Conclave snapshot"},
		{name: "cut in the header", r: strings.NewReader("CNCLV"), wantErr: ErrCorruptSnapshot, wantMsg: "corrupt snapshot: truncated in the header"},
		{name: "newer version", r: bytes.NewReader(append([]byte("CNCLVKV\x04"), valid[8:]...)), wantErr: ErrSnapshotVersion, wantMsg: "unknown snapshot format version: 4 (this client knows 3)"},
		{name: "cut short", r: bytes.NewReader(valid[:len(valid)-1]), wantErr: ErrCorruptSnapshot, wantMsg: "corrupt snapshot: checksum "},
		{name: "cut at the checksum", r: bytes.NewReader(valid[:len(valid)-4]), wantErr: ErrCorruptSnapshot},
		{name: "header only", r: strings.NewReader("CNCLVKV\x01"), wantErr: ErrCorruptSnapshot},
		{name: "extended", r: bytes.NewReader(append(bytes.Clone(valid), 0)), wantErr: ErrCorruptSnapshot},
		{name: "altered", r: bytes.NewReader(flipped), wantErr: ErrCorruptSnapshot},
		{name: "read error", r: io.MultiReader(strings.NewReader("CNCLVKV\x01"), iotest.ErrReader(errors.New("disk on fire"))), wantMsg: "read snapshot: disk on fire"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySnapshot(tc.r)
			if tc.wantErr == nil && tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("VerifySnapshot() error = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifySnapshot() error = nil, want %v", tc.wantErr)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("VerifySnapshot() error = %v, want it to wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("VerifySnapshot() error = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}
