package api

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A snapshot can take longer than any fixed timeout to transfer, so the
// snapshot requests have none. Instead a watchdog aborts a request once it
// has made no progress for a while: no byte sent or received for
// stallTimeout during a transfer, or no answer for workTimeout while the
// agent works: before it starts sending a saved snapshot, and after it has
// received one to restore. A dead address still fails after dialTimeout.
const (
	stallTimeout = 30 * time.Second
	workTimeout  = 2 * time.Minute
)

var (
	// ErrCorruptSnapshot is returned (wrapped) by VerifySnapshot for a
	// stream that is not an intact Conclave snapshot: empty, cut short, with
	// another header, or failing its checksum.
	ErrCorruptSnapshot = errors.New("corrupt snapshot")

	// ErrSnapshotVersion is returned (wrapped) by VerifySnapshot for a
	// Conclave snapshot in a format version it does not know, and so cannot
	// check: one written by a newer agent.
	ErrSnapshotVersion = errors.New("unknown snapshot format version")

	// errStalled is the cause given to a snapshot request the watchdog
	// aborts.
	errStalled = errors.New("snapshot request made no progress")
)

// SnapshotSave streams a snapshot of the servers' state (GET /v1/snapshot)
// to w as it arrives, and returns the Raft index the snapshot was taken at
// (X-Consul-Index). On error, w may hold part of a snapshot. There is no
// overall timeout: the request fails when the agent sends nothing for 2
// minutes before the body starts, or for 30 seconds within it.
func (c *Client) SnapshotSave(w io.Writer) (index uint64, err error) {
	return c.snapshotSave(w, nil)
}

// SnapshotSaveStale is SnapshotSave answered by any server from its own
// state (?stale), which works without a leader; the snapshot may lag the
// leader's.
func (c *Client) SnapshotSaveStale(w io.Writer) (index uint64, err error) {
	return c.snapshotSave(w, url.Values{"stale": {""}})
}

func (c *Client) snapshotSave(w io.Writer, query url.Values) (index uint64, err error) {
	// The agent takes the snapshot before it answers: allow workTimeout
	// for that, then stallTimeout between reads of the body.
	wd, ctx := newWatchdog(c.stallTimeout)
	defer wd.stop()
	wd.wait(c.workTimeout)
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/snapshot", query, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := c.send(req)
	if err != nil {
		return 0, wd.explain(err)
	}
	defer closeBody(resp)
	if v := resp.Header.Get("X-Consul-Index"); v != "" {
		if index, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, fmt.Errorf("parse X-Consul-Index %q: %w", v, err)
		}
	}
	wd.kick()
	// A truncated body is an error here, not a short snapshot: net/http
	// reports io.ErrUnexpectedEOF when the body ends before its
	// Content-Length or before the last chunk of a chunked answer.
	if _, err := io.Copy(w, wd.reader(resp.Body)); err != nil {
		return 0, fmt.Errorf("read snapshot: %w", wd.explain(err))
	}
	return index, nil
}

// SnapshotRestore replaces the servers' state with the snapshot read from
// r (PUT /v1/snapshot), which SnapshotSave wrote. It returns once the
// agent has answered that the snapshot is restored. The request fails when
// no byte of r is sent for 30 seconds, or when the agent does not answer
// within 2 minutes of the end of r. It then returns even if a Read of r
// blocks; that Read ends in the background and its data is dropped.
func (c *Client) SnapshotRestore(r io.Reader) error {
	wd, ctx := newWatchdog(c.stallTimeout)
	defer wd.stop()
	body := wd.reader(r)
	body.onEOF = func() { wd.wait(c.workTimeout) }
	// Once ctx is done, net/http still waits for the Read of the request
	// body under way, which may block for good. A Read of a pipe can be
	// ended: pr is closed as soon as ctx is done.
	pr, pw := io.Pipe()
	defer pr.Close()
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(context.Cause(ctx)) })
	defer stop()
	go func() {
		_, err := io.Copy(pw, body)
		pw.CloseWithError(err) // nil: io.EOF to the reader
	}()
	// The length is unknown, so net/http sends the body chunked.
	req, err := c.newRequest(ctx, http.MethodPut, "/v1/snapshot", nil, pr)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return wd.explain(err)
	}
	closeBody(resp)
	return nil
}

// watchdog cancels a request's context when the request stops making
// progress. Its methods are safe for concurrent use: net/http reads the
// request body on a goroutine of its own.
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	stall  time.Duration
	// armed is the duration the timer was last set to, for the error.
	armed atomic.Int64
}

// newWatchdog returns a watchdog that cancels the returned context stall
// from now unless kicked.
func newWatchdog(stall time.Duration) (*watchdog, context.Context) {
	ctx, cancel := context.WithCancelCause(context.Background())
	wd := &watchdog{ctx: ctx, cancel: cancel, stall: stall}
	wd.armed.Store(int64(stall))
	wd.timer = time.AfterFunc(stall, func() {
		cancel(fmt.Errorf("%w for %s", errStalled, time.Duration(wd.armed.Load())))
	})
	return wd, ctx
}

// kick restarts the countdown from the stall timeout.
func (wd *watchdog) kick() { wd.wait(wd.stall) }

// wait restarts the countdown from d, for a phase in which no byte is
// expected to move. The next kick ends it.
func (wd *watchdog) wait(d time.Duration) {
	wd.armed.Store(int64(d))
	wd.timer.Reset(d)
}

// stop releases the watchdog and cancels its context.
func (wd *watchdog) stop() {
	wd.timer.Stop()
	wd.cancel(context.Canceled)
}

// explain adds the watchdog's reason to err when the watchdog cut the
// request and err does not give it already: net/http says "context
// canceled" for some of its errors.
func (wd *watchdog) explain(err error) error {
	if cause := context.Cause(wd.ctx); errors.Is(cause, errStalled) && !errors.Is(err, errStalled) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// reader returns r wrapped so that each read that returns data kicks wd.
func (wd *watchdog) reader(r io.Reader) *progressReader {
	return &progressReader{r: r, wd: wd}
}

// progressReader kicks a watchdog on each read that returns data, and
// calls onEOF, if set, once r is exhausted.
type progressReader struct {
	r     io.Reader
	wd    *watchdog
	onEOF func()
}

// Read implements io.Reader.
func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.wd.kick()
	}
	if err == io.EOF && p.onEOF != nil {
		p.onEOF()
		p.onEOF = nil
	}
	return n, err
}

// The snapshot stream, as the agent's consensus package writes it (format
// versions 1 and 2 share this frame): a header of snapshotMagic and a
// version byte, the records, then a big-endian CRC-32C of every byte
// before it in the last 4 bytes. These constants must change with that
// format.
const (
	snapshotMagic    = "CNCLVKV"
	snapshotVersion  = 3 // the newest this client knows; 1 and 2 are read too
	snapshotCRCBytes = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// VerifySnapshot reads the snapshot stream r to its end and checks what
// can be checked without decoding its records: the header, and the CRC-32C
// that ends the stream and covers every byte before it, so that a stream
// cut short, extended or altered anywhere fails. The agent checks the
// records themselves when it restores the snapshot. VerifySnapshot
// returns nil for an intact stream, an error wrapping ErrCorruptSnapshot
// for a damaged one, one wrapping ErrSnapshotVersion for a format version
// it does not know, or the error of r.
func VerifySnapshot(r io.Reader) error {
	hdr := make([]byte, len(snapshotMagic)+1)
	n, err := io.ReadFull(r, hdr)
	switch {
	case n == 0 && err == io.EOF:
		return fmt.Errorf("%w: empty stream", ErrCorruptSnapshot)
	case !strings.HasPrefix(snapshotMagic, string(hdr[:min(n, len(snapshotMagic))])):
		return fmt.Errorf("%w: not a Conclave snapshot", ErrCorruptSnapshot)
	case err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: truncated in the header", ErrCorruptSnapshot)
	case err != nil:
		return fmt.Errorf("read snapshot: %w", err)
	case hdr[len(snapshotMagic)] < 1 || hdr[len(snapshotMagic)] > snapshotVersion:
		return fmt.Errorf("%w: %d (this client knows %d)", ErrSnapshotVersion, hdr[len(snapshotMagic)], snapshotVersion)
	}
	crc := &trailingCRC{}
	_, _ = crc.Write(hdr)
	if _, err := io.Copy(crc, r); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	// The header alone is longer than the checksum, so tail is full.
	if want := binary.BigEndian.Uint32(crc.tail[:]); crc.crc != want {
		return fmt.Errorf("%w: checksum %08x, computed %08x over %d bytes", ErrCorruptSnapshot, want, crc.crc, crc.size-snapshotCRCBytes)
	}
	return nil
}

// trailingCRC computes the CRC-32C of what is written to it except the
// last snapshotCRCBytes bytes, which it keeps in tail.
type trailingCRC struct {
	crc  uint32
	tail [snapshotCRCBytes]byte
	n    int   // bytes held in tail
	size int64 // bytes written in all
}

// Write implements io.Writer.
func (t *trailingCRC) Write(p []byte) (int, error) {
	t.size += int64(len(p))
	if len(p) >= snapshotCRCBytes {
		// Whatever tail holds is now followed by at least 4 bytes.
		t.crc = crc32.Update(t.crc, castagnoli, t.tail[:t.n])
		t.crc = crc32.Update(t.crc, castagnoli, p[:len(p)-snapshotCRCBytes])
		t.n = copy(t.tail[:], p[len(p)-snapshotCRCBytes:])
		return len(p), nil
	}
	held := append(t.tail[:t.n:t.n], p...)
	if extra := len(held) - snapshotCRCBytes; extra > 0 {
		t.crc = crc32.Update(t.crc, castagnoli, held[:extra])
		held = held[extra:]
	}
	t.n = copy(t.tail[:], held)
	return len(p), nil
}
