package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

const (
	// writeTimeout bounds one write of the writer, dial included. A write
	// that has not been answered by then counts as failed (its outcome is
	// unknown, so it is not checked), and the writer tries the next
	// server. A healthy write here takes milliseconds.
	writeTimeout = time.Second

	// writePace is the pause after each acknowledged write, and
	// retryPause the pause after a round in which every server failed.
	// They keep the writer from taking the CPU the servers need.
	writePace  = 10 * time.Millisecond
	retryPause = 50 * time.Millisecond

	// maxWrites (keys tried) and maxWriting bound the writer whatever
	// happens.
	maxWrites  = 20000
	maxWriting = 5 * time.Minute

	// maxGap bounds the longest time between two acknowledged writes
	// during the rolling restart: about one election, plus slack. Each
	// step stops one server with SIGTERM. A follower that stops costs only
	// the writes sent to it, which fail at once. The leader that stops
	// first hands leadership to another voter, which takes milliseconds;
	// if that fails, the others elect a leader. At raft_multiplier 2 a
	// follower campaigns after 400-800 ms without contact, and a split
	// vote costs one more such round: 1.6 s. Until then a write can hang
	// on the stopped leader (a follower forwards it there) for
	// writeTimeout, 1 s. Add 1.4 s of slack for this shared 2-core
	// machine: 4 s. A lost quorum, the gate letting a second server go
	// before the first is back as a voter, stops the writes until one of
	// them is back: about 10 s here.
	maxGap = 4 * time.Second

	// gateTimeout bounds the wait for a restarted server to pass the
	// rollout gate, and gatePoll is how often the gate is asked.
	gateTimeout = 90 * time.Second
	gatePoll    = 100 * time.Millisecond
)

// ack is one acknowledged write.
type ack struct {
	key, value string
	at         time.Time
}

// writer writes the keys roll/<seq> one after another, each through one of
// the servers that are up: it keeps to the server that took the last
// write, and after an error tries the next one. Every server forwards a
// write to the leader.
type writer struct {
	s    *statefulSet
	http *http.Client

	mu       sync.Mutex
	acked    []ack
	attempts int
	why      string // why the writer stopped
}

// run writes until ctx ends, for at most maxWrites keys and maxWriting.
func (w *writer) run(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, maxWriting)
	defer cancel()
	target := 0
	for seq := 0; ; seq++ {
		if seq == maxWrites {
			w.stop(fmt.Sprintf("%d keys tried", maxWrites))
			return
		}
		up := w.s.upIPs()
		key, value := fmt.Sprintf("roll/%06d", seq), fmt.Sprint(seq)
		var ok bool
		for range len(up) {
			target %= len(up)
			if ok = w.put(ctx, up[target], key, value); ok {
				break
			}
			target++
		}
		pause := writePace
		if !ok {
			pause = retryPause
		}
		select {
		case <-ctx.Done():
			w.stop(context.Cause(ctx).Error())
			return
		case <-time.After(pause):
		}
	}
}

// put writes key=value through the server at ip and reports whether it was
// acknowledged.
func (w *writer) put(ctx context.Context, ip, key, value string) bool {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+ip+":8500/v1/kv/"+key, strings.NewReader(value))
	if err != nil {
		return false
	}
	w.mu.Lock()
	w.attempts++
	w.mu.Unlock()
	resp, err := w.http.Do(req)
	if err != nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "true" {
		return false
	}
	w.mu.Lock()
	w.acked = append(w.acked, ack{key: key, value: value, at: time.Now()})
	w.mu.Unlock()
	return true
}

func (w *writer) stop(why string) {
	w.mu.Lock()
	w.why = why
	w.mu.Unlock()
}

// result returns the acknowledged writes, the attempts and why the writer
// stopped.
func (w *writer) result() ([]ack, int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked), w.attempts, w.why
}

// upIPs returns the IPs of the pods whose containers run, in pod order.
func (s *statefulSet) upIPs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ips []string
	for _, p := range s.pods {
		if p.ip != "" {
			ips = append(ips, p.ip)
		}
	}
	return ips
}

// waitForGate waits until GET /v1/status/ready?voter on p answers 200 and
// reports whether it answered 503 at least once before that.
func (s *statefulSet) waitForGate(p *pod) (saw503 bool) {
	s.t.Helper()
	probe := &http.Client{Timeout: time.Second}
	url := "http://" + s.ip(p) + ":8500/v1/status/ready?voter"
	var last string
	deadline := time.Now().Add(gateTimeout)
	for time.Now().Before(deadline) {
		resp, err := probe.Get(url)
		if err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			switch resp.StatusCode {
			case http.StatusOK:
				return saw503
			case http.StatusServiceUnavailable:
				if !saw503 {
					s.t.Logf("%s: rollout gate: %s", p.name, last)
				}
				saw503 = true
			}
		}
		time.Sleep(gatePoll)
	}
	s.t.Fatalf("%s: rollout gate did not pass within %s; last answer: %s", p.name, gateTimeout, last)
	return saw503
}

// TestRollingRestart restarts the three servers one at a time, each on a
// new IP, as a StatefulSet's rolling update does (highest ordinal first),
// and lets each next step wait for the rollout gate, GET
// /v1/status/ready?voter. Meanwhile a client writes without a pause
// longer than writePace. No acknowledged write may be lost, the writes
// may stop for at most about one election (maxGap), and the gate must
// have held a restarted server back at least once.
func TestRollingRestart(t *testing.T) {
	s := newStatefulSet(t, 3)
	s.startOrdered(60 * time.Second)
	before := s.waitForCluster(90 * time.Second)
	for _, p := range s.pods {
		if saw503 := s.waitForGate(p); saw503 {
			t.Logf("%s: the gate answered 503 before the cluster was healthy", p.name)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{s: s, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	stopWriter := sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(stopWriter)

	rollStart := time.Now()
	gated := 0
	for _, p := range slices.Backward(s.pods) {
		step := time.Now()
		took, err := s.stop(p)
		if err != nil {
			t.Fatal(err)
		}
		s.start(p)
		if s.waitForGate(p) {
			gated++
		}
		t.Logf("%s: stopped in %s, back as a caught-up voter %s later", p.name,
			took.Round(time.Millisecond), time.Since(step).Round(time.Millisecond))
	}
	rolled := time.Now()
	// Writes go on after the last step too.
	testutil.WaitFor(t, 10*time.Second, func() error {
		if acked, _, _ := w.result(); len(acked) == 0 || acked[len(acked)-1].at.Before(rolled) {
			return fmt.Errorf("no write acknowledged since the rolling restart ended")
		}
		return nil
	})
	stopWriter()

	acked, attempts, why := w.result()
	if why != context.Canceled.Error() {
		t.Fatalf("the writer stopped on its own (%s) before the rolling restart ended", why)
	}
	if len(acked) < 100 {
		t.Fatalf("the writer had %d of %d writes acknowledged; too few to say anything", len(acked), attempts)
	}
	var maxGapSeen time.Duration
	var gapAt time.Time
	for i := 1; i < len(acked); i++ {
		if gap := acked[i].at.Sub(acked[i-1].at); gap > maxGapSeen {
			maxGapSeen, gapAt = gap, acked[i-1].at
		}
	}
	t.Logf("rolling restart took %s; %d of %d writes acknowledged; longest gap between two acknowledged writes: %s (from %s after the start)",
		rolled.Sub(rollStart).Round(time.Millisecond), len(acked), attempts,
		maxGapSeen.Round(time.Millisecond), gapAt.Sub(rollStart).Round(time.Millisecond))
	if maxGapSeen > maxGap {
		t.Errorf("longest gap between two acknowledged writes = %s, want at most %s", maxGapSeen.Round(time.Millisecond), maxGap)
	}
	if gated == 0 {
		t.Errorf("the rollout gate answered 200 at once after every restart; want at least one 503 while a restarted server catches up")
	}

	// Every acknowledged write survived, read back from the leader after
	// it confirmed its leadership (?consistent).
	after := s.waitForCluster(60 * time.Second)
	for name, id := range before.ids {
		if after.ids[name] != id {
			t.Errorf("%s: node ID after the rolling restart = %s, want %s", name, after.ids[name], id)
		}
	}
	kvs, _, err := s.client(s.pods[0]).KVList("roll/", &api.QueryOptions{Consistent: true})
	if err != nil {
		t.Fatalf("list roll/: %v", err)
	}
	stored := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		stored[kv.Key] = string(kv.Value)
	}
	lost := 0
	for _, a := range acked {
		if got, ok := stored[a.key]; !ok || got != a.value {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged write %s=%s: read back %q (present: %t)", a.key, a.value, got, ok)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, len(acked))
	}
}
