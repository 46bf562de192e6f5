package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/conclavehq/conclave/test/testutil"
)

// Sessions and locks, driven with Consul's Go client and with "conclave
// lock" as the child wrapper, against real processes.

func consulClient(t *testing.T, n *Node) *consul.Client {
	t.Helper()
	cl, err := consul.NewClient(&consul.Config{Address: n.HTTPAddr()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestConsulClientSessions: the session endpoints in Consul's shapes; a
// TTL that runs out and a node that fails each invalidate the session and
// release its key; the lock delay holds the key for exactly as long as
// it says.
func TestConsulClientSessions(t *testing.T) {
	nodes := kvCluster(t, "cs", 3)
	_, followers := leaderAndFollowers(t, nodes)
	client := NewNode(t, "cscli", 0)
	client.Client = true
	client.Join = []string{nodes[0].SerfAddr()}
	client.Start()
	cl := consulClient(t, followers[0])
	sess, kv := cl.Session(), cl.KV()
	testutil.WaitFor(t, 15*time.Second, func() error {
		m, err := cl.Agent().Members(false)
		if err != nil || len(m) != 4 {
			return fmt.Errorf("members = %d, %v; want 4", len(m), err)
		}
		return nil
	})

	t.Run("create renew info list node destroy", func(t *testing.T) {
		id, _, err := sess.Create(&consul.SessionEntry{Name: "web", TTL: "10s", LockDelay: 2 * time.Second}, nil)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		e, _, err := sess.Info(id, nil)
		if err != nil || e == nil || e.Name != "web" || e.TTL != "10s" || e.LockDelay != 2*time.Second ||
			e.Node != followers[0].Name || e.Behavior != "release" || !slices.Equal(e.NodeChecks, []string{"serfHealth"}) {
			t.Fatalf("Info = %+v, %v; want web, TTL 10s, lock delay 2s, node %s, release, serfHealth", e, err, followers[0].Name)
		}
		r, _, err := sess.Renew(id, nil)
		if err != nil || r == nil || r.ID != id || r.TTL != "10s" {
			t.Fatalf("Renew = %+v, %v; want the session", r, err)
		}
		list, meta, err := sess.List(nil)
		if err != nil || len(list) != 1 || list[0].ID != id || meta.LastIndex == 0 {
			t.Fatalf("List = %+v, %+v, %v; want the one session", list, meta, err)
		}
		// A blocking List returns when the sessions change.
		done := make(chan []*consul.SessionEntry, 1)
		go func() {
			l, _, _ := sess.List(&consul.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 20 * time.Second})
			done <- l
		}()
		id2, _, err := sess.CreateNoChecks(&consul.SessionEntry{Name: "other"}, nil)
		if err != nil {
			t.Fatalf("CreateNoChecks: %v", err)
		}
		select {
		case l := <-done:
			if len(l) != 2 {
				t.Errorf("blocking List = %+v, want two sessions", l)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("blocking List did not return after a create")
		}
		byNode, _, err := sess.Node(followers[0].Name, nil)
		if err != nil || len(byNode) != 2 {
			t.Fatalf("Node(%s) = %+v, %v; want both sessions", followers[0].Name, byNode, err)
		}
		for _, x := range []string{id, id2} {
			if _, err := sess.Destroy(x, nil); err != nil {
				t.Fatalf("Destroy(%s): %v", x, err)
			}
		}
		if e, _, err := sess.Info(id, nil); err != nil || e != nil {
			t.Fatalf("Info after Destroy = %+v, %v; want nil", e, err)
		}
		if r, _, err := sess.Renew(id, nil); err != nil || r != nil {
			t.Fatalf("Renew after Destroy = %+v, %v; want nil (404)", r, err)
		}
	})

	t.Run("lock delay", func(t *testing.T) {
		a, _, err := sess.Create(&consul.SessionEntry{LockDelay: time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := sess.Create(&consul.SessionEntry{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _, err := kv.Acquire(&consul.KVPair{Key: "delay/k", Session: a}, nil); err != nil || !ok {
			t.Fatalf("Acquire by a = %t, %v", ok, err)
		}
		destroyed := time.Now()
		if _, err := sess.Destroy(a, nil); err != nil {
			t.Fatal(err)
		}
		refused := 0
		for {
			ok, _, err := kv.Acquire(&consul.KVPair{Key: "delay/k", Session: b}, nil)
			if err != nil {
				t.Fatalf("Acquire by b: %v", err)
			}
			if ok {
				break
			}
			refused++
			if time.Since(destroyed) > 5*time.Second {
				t.Fatal("b could not acquire 5 s after a's destroy; the lock delay is 1 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if waited := time.Since(destroyed); waited < time.Second || refused == 0 {
			t.Fatalf("b acquired %v after the destroy (%d refusals); want no acquire within the 1 s lock delay", waited, refused)
		}
		sess.Destroy(b, nil)
	})

	t.Run("TTL expiry and node failure invalidate and release", func(t *testing.T) {
		// Both at once, to keep the test short: a TTL session of a
		// server, and a session of the client agent that is killed.
		ttlID, _, err := sess.Create(&consul.SessionEntry{TTL: "10s", LockDelay: time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		created := time.Now()
		ccl := consulClient(t, client)
		nodeID, _, err := ccl.Session().Create(&consul.SessionEntry{LockDelay: time.Millisecond}, nil)
		if err != nil {
			t.Fatalf("Create through the client agent: %v", err)
		}
		if e, _, err := sess.Info(nodeID, nil); err != nil || e == nil || e.Node != client.Name {
			t.Fatalf("Info(client's session) = %+v, %v; want node %s", e, err, client.Name)
		}
		for key, id := range map[string]string{"ttl/k": ttlID, "node/k": nodeID} {
			if ok, _, err := kv.Acquire(&consul.KVPair{Key: key, Value: []byte("held"), Session: id}, nil); err != nil || !ok {
				t.Fatalf("Acquire(%s) = %t, %v", key, ok, err)
			}
		}
		client.Kill()
		killed := time.Now()
		released := func(key, id string) error {
			if e, _, err := sess.Info(id, nil); err != nil || e != nil {
				return fmt.Errorf("session %s still exists (%v)", id, err)
			}
			p, _, err := kv.Get(key, nil)
			if err != nil || p == nil || p.Session != "" || string(p.Value) != "held" {
				return fmt.Errorf("%s = %+v, %v; want released with its value", key, p, err)
			}
			return nil
		}
		testutil.WaitFor(t, 20*time.Second, func() error { return released("node/k", nodeID) })
		t.Logf("the killed node's session was invalidated %v after the kill", time.Since(killed).Round(time.Millisecond))
		if e, _, err := sess.Info(ttlID, nil); err != nil || e == nil {
			t.Fatalf("TTL session gone %v after its create (%v), before its TTL of 10 s", time.Since(created), err)
		}
		testutil.WaitFor(t, 30*time.Second-time.Since(created), func() error { return released("ttl/k", ttlID) })
		if age := time.Since(created); age < 10*time.Second {
			t.Fatalf("TTL session invalidated %v after its create, before its TTL", age)
		}
	})
}

// lockRecord is one critical section: what its holder saw.
type lockRecord struct {
	Who       string // contender
	LockIndex uint64
	// CreateIndex and ModifyIndex are the lock key's at acquisition: the
	// acquire's index, which grows at every handover, even when the last
	// holder's cleanup deleted the key (and so reset its LockIndex).
	CreateIndex, ModifyIndex uint64
	Session                  string
	Start, End               int64 // Unix nanoseconds
	Fence                    uint64
	CASFailed                bool
}

// criticalSection is what every holder does while it holds: it reads the
// lock key's LockIndex and holder, increments the fence counter with CAS
// (which fails if another holder wrote it meanwhile), and holds for hold.
func criticalSection(kv *consul.KV, who, lockKey, fence string, hold time.Duration, stop <-chan struct{}) lockRecord {
	rec := lockRecord{Who: who, Start: time.Now().UnixNano()}
	if lockKey != "" {
		if p, _, err := kv.Get(lockKey, &consul.QueryOptions{RequireConsistent: true}); err == nil && p != nil {
			rec.LockIndex, rec.Session, rec.CreateIndex, rec.ModifyIndex = p.LockIndex, p.Session, p.CreateIndex, p.ModifyIndex
		}
	}
	p, _, err := kv.Get(fence, &consul.QueryOptions{RequireConsistent: true})
	var idx, v uint64
	if err == nil && p != nil {
		idx = p.ModifyIndex
		v, _ = strconv.ParseUint(string(p.Value), 10, 64)
	}
	rec.Fence = v + 1
	ok, _, err := kv.CAS(&consul.KVPair{Key: fence, Value: []byte(strconv.FormatUint(v+1, 10)), ModifyIndex: idx}, nil)
	rec.CASFailed = err != nil || !ok
	select {
	case <-time.After(hold):
	case <-stop:
	}
	rec.End = time.Now().UnixNano()
	return rec
}

// checkMutualExclusion fails t unless the records are of critical sections
// that never overlapped, whose lock key (when withIndex) was acquired at a
// growing index with a growing LockIndex (unless the key was deleted and
// made again in between, as a "consul lock" that exits last does), and
// whose fence increments all succeeded in turn.
func checkMutualExclusion(t *testing.T, recs []lockRecord, withIndex bool) {
	t.Helper()
	sort.Slice(recs, func(i, j int) bool { return recs[i].Start < recs[j].Start })
	for i, r := range recs {
		if r.CASFailed {
			t.Errorf("record %d (%s): the fence CAS failed: another holder wrote meanwhile", i, r.Who)
		}
		if r.End == 0 {
			continue
		}
		if i == 0 {
			continue
		}
		p := recs[i-1]
		if p.End == 0 || r.Start < p.End {
			t.Errorf("critical sections overlap: %s [%d, %d] and %s [%d, %d]", p.Who, p.Start, p.End, r.Who, r.Start, r.End)
		}
		if withIndex && r.ModifyIndex <= p.ModifyIndex {
			t.Errorf("the lock was not acquired anew at a handover: %s at index %d, then %s at %d", p.Who, p.ModifyIndex, r.Who, r.ModifyIndex)
		}
		if withIndex && r.CreateIndex == p.CreateIndex && r.LockIndex <= p.LockIndex {
			t.Errorf("LockIndex did not grow at a handover: %s had %d, then %s had %d", p.Who, p.LockIndex, r.Who, r.LockIndex)
		}
		if !r.CASFailed && !p.CASFailed && r.Fence != p.Fence+1 {
			t.Errorf("fence went from %d (%s) to %d (%s), want +1", p.Fence, p.Who, r.Fence, r.Who)
		}
	}
}

// maxConcurrent is the most records whose [Start, End] overlap at once.
func maxConcurrent(recs []lockRecord) int {
	type ev struct {
		at   int64
		delt int
	}
	var evs []ev
	for _, r := range recs {
		evs = append(evs, ev{r.Start, 1}, ev{r.End, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delt < evs[j].delt
	})
	n, most := 0, 0
	for _, e := range evs {
		n += e.delt
		most = max(most, n)
	}
	return most
}

// TestConsulLocksInGoroutines: api.LockKey-style locks and an
// api.Semaphore, with several contenders in goroutines of this process.
func TestConsulLocksInGoroutines(t *testing.T) {
	nodes := kvCluster(t, "lg", 3)
	_, followers := leaderAndFollowers(t, nodes)

	t.Run("lock", func(t *testing.T) {
		const contenders, rounds = 4, 3
		var mu sync.Mutex
		var recs []lockRecord
		var holders atomic.Int32
		var wg sync.WaitGroup
		for i := range contenders {
			cl := consulClient(t, nodes[i%len(nodes)])
			wg.Go(func() {
				who := fmt.Sprintf("g%d", i)
				l, err := cl.LockOpts(&consul.LockOptions{Key: "glock/.lock", SessionTTL: "10s", LockDelay: time.Second})
				if err != nil {
					t.Errorf("%s: LockOpts: %v", who, err)
					return
				}
				for range rounds {
					lost, err := l.Lock(nil)
					if err != nil || lost == nil {
						t.Errorf("%s: Lock = %v, %v", who, lost, err)
						return
					}
					if n := holders.Add(1); n != 1 {
						t.Errorf("%d holders at once", n)
					}
					rec := criticalSection(cl.KV(), who, "glock/.lock", "glock/fence", 50*time.Millisecond, lost)
					holders.Add(-1)
					mu.Lock()
					recs = append(recs, rec)
					mu.Unlock()
					if err := l.Unlock(); err != nil {
						t.Errorf("%s: Unlock: %v", who, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if len(recs) != contenders*rounds {
			t.Fatalf("%d critical sections, want %d", len(recs), contenders*rounds)
		}
		checkMutualExclusion(t, recs, true)
	})

	t.Run("semaphore", func(t *testing.T) {
		const contenders, rounds, limit = 5, 2, 2
		var mu sync.Mutex
		var recs []lockRecord
		var holders atomic.Int32
		var wg sync.WaitGroup
		for i := range contenders {
			cl := consulClient(t, followers[i%len(followers)])
			wg.Go(func() {
				s, err := cl.SemaphoreOpts(&consul.SemaphoreOptions{Prefix: "gsem", Limit: limit, SessionTTL: "10s"})
				if err != nil {
					t.Errorf("SemaphoreOpts: %v", err)
					return
				}
				for range rounds {
					lost, err := s.Acquire(nil)
					if err != nil || lost == nil {
						t.Errorf("Acquire = %v, %v", lost, err)
						return
					}
					if n := holders.Add(1); n > limit {
						t.Errorf("%d holders at once, limit %d", n, limit)
					}
					start := time.Now().UnixNano()
					select {
					case <-time.After(100 * time.Millisecond):
					case <-lost:
					}
					holders.Add(-1)
					mu.Lock()
					recs = append(recs, lockRecord{Start: start, End: time.Now().UnixNano()})
					mu.Unlock()
					if err := s.Release(); err != nil {
						t.Errorf("Release: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := maxConcurrent(recs); got > limit || len(recs) != contenders*rounds {
			t.Fatalf("%d sections, at most %d at once; want %d sections, at most %d", len(recs), got, contenders*rounds, limit)
		}
	})
}

// Environment of the lock child: the e2e test binary run by "conclave
// lock" (see TestMain).
const (
	lockChildEnv = "CONCLAVE_E2E_LOCK_CHILD" // the records file
	lockKeyEnv   = "CONCLAVE_E2E_LOCK_KEY"
	lockFenceEnv = "CONCLAVE_E2E_LOCK_FENCE"
	lockHoldEnv  = "CONCLAVE_E2E_LOCK_HOLD"
	lockWhoEnv   = "CONCLAVE_E2E_LOCK_WHO"
)

// lockChild is the critical section of a contender process: it appends a
// record with End 0 when it starts (so a holder killed -9 is known) and
// the full record when it ends, by its hold or by SIGTERM.
func lockChild() int {
	cl, err := consul.NewClient(&consul.Config{Address: os.Getenv("CONCLAVE_HTTP_ADDR")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hold, _ := time.ParseDuration(os.Getenv(lockHoldEnv))
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() { <-sigs; close(stop) }()
	f, err := os.OpenFile(os.Getenv(lockChildEnv), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	who := os.Getenv(lockWhoEnv) + "/" + strconv.Itoa(os.Getpid())
	started := lockRecord{Who: who, Start: time.Now().UnixNano()}
	if key := os.Getenv(lockKeyEnv); key != "" {
		if p, _, err := cl.KV().Get(key, &consul.QueryOptions{RequireConsistent: true}); err == nil && p != nil {
			started.LockIndex, started.Session, started.CreateIndex, started.ModifyIndex = p.LockIndex, p.Session, p.CreateIndex, p.ModifyIndex
		}
	}
	b, _ := json.Marshal(started)
	f.Write(append(b, '\n'))
	rec := criticalSection(cl.KV(), who, os.Getenv(lockKeyEnv), os.Getenv(lockFenceEnv), hold, stop)
	rec.Start = started.Start
	b, _ = json.Marshal(rec)
	f.Write(append(b, '\n'))
	return 0
}

// readLockRecords merges the records file: one record per contender
// process, the full one when it ended.
func readLockRecords(t *testing.T, path string) []lockRecord {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byWho := map[string]lockRecord{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r lockRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line cut by a kill
		}
		if _, ok := byWho[r.Who]; !ok {
			order = append(order, r.Who)
		}
		if r.End != 0 || byWho[r.Who].End == 0 {
			byWho[r.Who] = r
		}
	}
	var out []lockRecord
	for _, w := range order {
		out = append(out, byWho[w])
	}
	return out
}

// lockProc is one "conclave lock" contender process. done receives its
// exit once; exited is closed then.
type lockProc struct {
	cmd    *exec.Cmd
	done   chan error
	exited chan struct{}
}

// startLockProc starts "conclave lock" against n with the lock child as
// its command.
func startLockProc(t *testing.T, n *Node, records, who string, hold time.Duration, args ...string) *lockProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"lock", "-session-ttl=10s", "-lock-delay=1s"}, args...)
	all = append(all, self)
	cmd := exec.Command(Binary, all...)
	cmd.Env = append(os.Environ(), "CONCLAVE_HTTP_ADDR="+n.HTTPAddr(), lockChildEnv+"="+records,
		lockHoldEnv+"="+hold.String(), lockWhoEnv+"="+who)
	if len(args) > 0 && args[len(args)-1] == "plock" {
		cmd.Env = append(cmd.Env, lockKeyEnv+"=plock/.lock", lockFenceEnv+"=plock-fence")
	} else {
		cmd.Env = append(cmd.Env, lockFenceEnv+"=psem-fence")
	}
	log, err := os.Create(filepath.Join(filepath.Dir(records), who+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &lockProc{cmd: cmd, done: make(chan error, 1), exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		log.Close()
		p.done <- err
		close(p.exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s:\n%s", who, b)
		}
	})
	return p
}

// killChildren kills -9 the lock children that records name (their pid
// is the last part of Who), as if their machine had died with their
// "conclave lock".
func killChildren(recs []lockRecord) {
	for _, r := range recs {
		if i := lastSlash(r.Who); i >= 0 {
			if pid, err := strconv.Atoi(r.Who[i+1:]); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// TestConclaveLockProcesses: "conclave lock" contenders in separate
// processes: a lock (never two holders, LockIndex growing, the fence
// incremented in turn), a semaphore of 2, the lock passing on only after
// the holder is killed -9 (its session's TTL) and the lock delay, and the
// same lock while the leader is killed -9.
func TestConclaveLockProcesses(t *testing.T) {
	nodes := kvCluster(t, "lp", 3)
	leader, followers := leaderAndFollowers(t, nodes)
	dir := t.TempDir()

	t.Run("lock", func(t *testing.T) {
		records := filepath.Join(dir, "lock.jsonl")
		var procs []*lockProc
		for i := range 4 {
			procs = append(procs, startLockProc(t, nodes[i%3], records, fmt.Sprintf("p%d", i), 300*time.Millisecond, "plock"))
		}
		for i, p := range procs {
			select {
			case err := <-p.done:
				if err != nil {
					t.Errorf("contender %d: %v", i, err)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("contender %d still running after 60 s", i)
			}
		}
		recs := readLockRecords(t, records)
		if len(recs) != 4 {
			t.Fatalf("%d critical sections, want 4: %+v", len(recs), recs)
		}
		checkMutualExclusion(t, recs, true)
	})

	t.Run("semaphore", func(t *testing.T) {
		records := filepath.Join(dir, "sem.jsonl")
		var procs []*lockProc
		for i := range 4 {
			procs = append(procs, startLockProc(t, nodes[i%3], records, fmt.Sprintf("s%d", i), 500*time.Millisecond, "-n=2", "psem"))
		}
		for i, p := range procs {
			select {
			case err := <-p.done:
				if err != nil {
					t.Errorf("contender %d: %v", i, err)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("contender %d still running after 60 s", i)
			}
		}
		recs := readLockRecords(t, records)
		if got := maxConcurrent(recs); len(recs) != 4 || got > 2 || got < 2 {
			t.Fatalf("%d sections, at most %d at once; want 4, two at once", len(recs), got)
		}
	})

	t.Run("holder killed -9", func(t *testing.T) {
		records := filepath.Join(dir, "kill.jsonl")
		first := startLockProc(t, followers[0], records, "k0", time.Minute, "plock")
		var recs []lockRecord
		testutil.WaitFor(t, 15*time.Second, func() error {
			if recs = readLockRecords(t, records); len(recs) != 1 || recs[0].Session == "" {
				return fmt.Errorf("records %+v, want the first holder's", recs)
			}
			return nil
		})
		held := recs[0]
		second := startLockProc(t, followers[1], records, "k1", 100*time.Millisecond, "plock")
		first.cmd.Process.Kill()
		killChildren(recs)
		killed := time.Now()
		cl := consulClient(t, followers[1])
		// lastAlive is the last time the first session was seen to exist:
		// its invalidation came later, and the lock delay after that.
		var lastAlive time.Time
		testutil.WaitFor(t, 30*time.Second, func() error {
			e, _, err := cl.Session().Info(held.Session, nil)
			if err == nil && e != nil {
				lastAlive = time.Now()
				return fmt.Errorf("session %s still exists", held.Session)
			}
			return err
		})
		select {
		case err := <-second.done:
			if err != nil {
				t.Fatalf("second contender: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the lock did not pass on within 20 s of the session's invalidation")
		}
		recs = readLockRecords(t, records)
		if len(recs) != 2 {
			t.Fatalf("records = %+v, want two", recs)
		}
		next := recs[1]
		if next.LockIndex <= held.LockIndex || next.Session == held.Session {
			t.Errorf("second holder has LockIndex %d, session %s; want above %d, a new session", next.LockIndex, next.Session, held.LockIndex)
		}
		if start := time.Unix(0, next.Start); start.Before(lastAlive.Add(time.Second)) {
			t.Errorf("second holder started %v after the first session was last seen alive; want at least the 1 s lock delay", start.Sub(lastAlive))
		}
		t.Logf("lock passed on %v after the kill", time.Unix(0, next.Start).Sub(killed).Round(time.Millisecond))
	})

	t.Run("leader killed -9 while contenders run", func(t *testing.T) {
		records := filepath.Join(dir, "leader.jsonl")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var started atomic.Int32
		const want = 8
		for i := range 3 {
			wg.Go(func() {
				// A contender whose agent has no leader fails (Consul's
				// client does not retry a 503); the next round tries again.
				for round := 0; ctx.Err() == nil && len(readLockRecords(t, records)) < want; round++ {
					p := startLockProc(t, followers[i%2], records, fmt.Sprintf("l%d-%d", i, round), 200*time.Millisecond, "plock")
					started.Add(1)
					select {
					case <-p.exited:
					case <-ctx.Done():
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
		testutil.WaitFor(t, 30*time.Second, func() error {
			if n := len(readLockRecords(t, records)); n < 2 {
				return fmt.Errorf("%d critical sections so far", n)
			}
			return nil
		})
		leader.Kill()
		wg.Wait()
		if ctx.Err() != nil {
			t.Fatal("contenders did not finish within 90 s")
		}
		recs := readLockRecords(t, records)
		if len(recs) < want {
			t.Fatalf("%d critical sections, want at least %d", len(recs), want)
		}
		// A contender that lost its lock in the election ended its child
		// by SIGTERM, which recorded its end: every record is whole.
		checkMutualExclusion(t, recs, true)
		t.Logf("%d critical sections across the leader kill", len(recs))
	})
}
