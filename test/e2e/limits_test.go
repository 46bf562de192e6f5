package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/testutil"
)

// The server's fixed timeouts (agent/httpapi/limits.go): the header must
// arrive within headerTimeout, the whole request within readTimeout (30 s
// plus 1 s per MiB of the largest body; the defaults are under 1 MiB).
const (
	headerTimeout = 10 * time.Second
	readTimeout   = 30 * time.Second
	// closeSlack is how much later than its timeout the test accepts a
	// connection to be closed, on a loaded 2-core machine.
	closeSlack = 10 * time.Second
)

// rss returns the resident memory of process pid, in bytes, from
// /proc/pid/status.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// settledRSS waits until n's resident memory holds still (two readings a
// second apart within 5%) and returns it.
func settledRSS(t *testing.T, n *Node) int64 {
	t.Helper()
	var last, now int64
	testutil.WaitEvery(t, 30*time.Second, time.Second, func() error {
		var err error
		if now, err = rss(n.PID()); err != nil {
			return err
		}
		prev := last
		last = now
		if prev == 0 || now > prev*105/100 || now < prev*95/100 {
			return fmt.Errorf("%s RSS moving: %d then %d bytes", n.Name, prev, now)
		}
		return nil
	})
	return now
}

// The JSON around bigTxn's value.
const txnHead, txnTail = `[{"KV":{"Verb":"set","Key":"big","Value":"`, `"}}]`

// bigTxn is a /v1/txn body of len(txnHead)+size+len(txnTail) bytes: one
// set whose base64 value fills it, produced as it is sent so that the test
// holds none of it.
func bigTxn(size int64) io.Reader {
	return io.MultiReader(strings.NewReader(txnHead), io.LimitReader(filler('A'), size), strings.NewReader(txnTail))
}

// filler is an endless stream of one byte.
type filler byte

func (f filler) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}

// readUntilClosed reads c until the server closes it, or deadline passes;
// it returns the first line the server sent ("" for none) and whether
// it closed the connection by the deadline.
func readUntilClosed(c net.Conn, deadline time.Time) (first string, closed bool) {
	c.SetReadDeadline(deadline)
	br := bufio.NewReader(c)
	first, _ = br.ReadString('\n')
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	return strings.TrimSpace(first), !(errors.As(err, &ne) && ne.Timeout())
}

// TestHostileClientsBoundedMemory is issue 9's attack on a follower:
// four 64 MB /v1/txn bodies with Content-Length, four sent chunked, and
// 200 slow connections (half stalling in the header, half in the body),
// all at once. Every big request is refused or its connection closed
// promptly, the slow connections are closed by the server within its
// timeouts, the resident memory of the follower and of the leader it
// forwards to stays within twice its idle figure and comes back near it,
// and the cluster still takes writes.
func TestHostileClientsBoundedMemory(t *testing.T) {
	nodes := startServers(t, "lim", 3, 3)
	for _, n := range nodes {
		// One test process opens all 208 connections from one address.
		n.Extra = "limits {\n  http_max_conns_per_client = 300\n}\n"
		n.Start()
	}
	WaitForCluster(t, 30*time.Second, nodes...)
	leader, followers := leaderAndFollowers(t, nodes)
	target := followers[0]
	kv := NewKVClient(10*time.Second, 4)
	defer kv.Close()
	mustPut(t, kv, target, "before", []byte("v"), "", true)

	watched := []*Node{target, leader}
	idle := make(map[*Node]int64)
	for _, n := range watched {
		idle[n] = settledRSS(t, n)
		t.Logf("%s idle RSS %d MiB", n.Name, idle[n]>>20)
	}

	// Sample the RSS of both while the attack runs.
	peak := make(map[*Node]int64)
	var peakMu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, n := range watched {
				if v, err := rss(n.PID()); err == nil {
					peakMu.Lock()
					peak[n] = max(peak[n], v)
					peakMu.Unlock()
				}
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	const big = 64 << 20
	url := "http://" + target.HTTPAddr() + "/v1/txn"
	var wg sync.WaitGroup
	errs := make(chan error, 300)

	// Four bodies with an honest Content-Length: refused at once.
	for i := range 4 {
		wg.Go(func() {
			start := time.Now()
			c, err := net.Dial("tcp", target.HTTPAddr())
			if err != nil {
				errs <- fmt.Errorf("content-length %d: dial: %w", i, err)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "PUT /v1/txn HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", target.HTTPAddr(), big+len(txnHead)+len(txnTail))
			go io.Copy(c, bigTxn(big)) // fails once the server closes
			first, closed := readUntilClosed(c, start.Add(closeSlack))
			switch {
			case !closed:
				errs <- fmt.Errorf("content-length %d: connection still open after %v", i, closeSlack)
			case first != "" && !strings.Contains(first, " 413 "):
				errs <- fmt.Errorf("content-length %d: answer %q, want 413", i, first)
			}
		})
	}
	// Four chunked bodies: cut at the limit.
	for i := range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: closeSlack}
			req, _ := http.NewRequest(http.MethodPut, url, bigTxn(big))
			resp, err := client.Do(req)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					errs <- fmt.Errorf("chunked %d: not refused within %v: %w", i, closeSlack, err)
				}
				return // the server closed the connection while the body streamed
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				errs <- fmt.Errorf("chunked %d: answer %d %q, want 413", i, resp.StatusCode, msg)
			}
		})
	}
	// 200 slow clients: half stall in the header, half in the body.
	for i := range 200 {
		wg.Go(func() {
			start := time.Now()
			c, err := net.Dial("tcp", target.HTTPAddr())
			if err != nil {
				errs <- fmt.Errorf("slow %d: dial: %w", i, err)
				return
			}
			defer c.Close()
			bound := headerTimeout
			if i%2 == 0 {
				fmt.Fprintf(c, "PUT /v1/txn HTTP/1.1\r\nHost: %s\r\nContent-Type: app", target.HTTPAddr())
			} else {
				bound = readTimeout
				fmt.Fprintf(c, "PUT /v1/txn HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\n[{\"KV\"", target.HTTPAddr())
			}
			if _, closed := readUntilClosed(c, start.Add(bound+closeSlack)); !closed {
				errs <- fmt.Errorf("slow %d: still open %v after it stalled, want closed within %v", i, bound+closeSlack, bound)
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for _, n := range watched {
		t.Logf("%s peak RSS during the attack %d MiB (idle %d MiB)", n.Name, peak[n]>>20, idle[n]>>20)
		if peak[n] > 2*idle[n] {
			t.Errorf("%s RSS peaked at %d MiB during the attack, over twice its idle %d MiB", n.Name, peak[n]>>20, idle[n]>>20)
		}
	}
	for _, n := range watched {
		testutil.WaitEvery(t, 30*time.Second, time.Second, func() error {
			v, err := rss(n.PID())
			if err == nil && v > idle[n]*3/2 {
				err = fmt.Errorf("%s RSS %d MiB after the attack, want near its idle %d MiB", n.Name, v>>20, idle[n]>>20)
			}
			return err
		})
	}
	mustPut(t, kv, target, "after", []byte("v"), "", true)
	mustPut(t, kv, leader, "after2", []byte("v"), "", true)
}
