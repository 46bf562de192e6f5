package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/test/testutil"
)

// waitTimeout bounds every wait on gossip. Joins and tag changes converge
// in well under a second on loopback; failure detection with memberlist's
// local timing takes about five seconds.
const waitTimeout = 20 * time.Second

// testPool is a Pool with a goroutine that drains its event channel and
// records every event.
type testPool struct {
	*Pool
	name string

	mu     sync.Mutex
	events []Event
}

func serverTags(name string) map[string]string {
	return map[string]string{
		TagRole:     RoleServer,
		TagID:       name + "-id",
		TagDC:       "dc1",
		TagRaftPort: "8300",
		TagVersion:  "1.0.0",
	}
}

// newTestPool starts a pool on 127.0.0.1 with an OS-chosen port and
// memberlist's loopback timing. cb may change the config before New.
// The pool is shut down and its event reader stopped when the test ends.
func newTestPool(t *testing.T, name string, cb func(*Config)) *testPool {
	t.Helper()
	cfg := Config{
		NodeName:      name,
		NodeID:        name + "-id",
		BindAddr:      "127.0.0.1",
		BindPort:      0,
		AdvertiseAddr: "127.0.0.1",
		Tags:          serverTags(name),
		Local:         true,
		Logger:        testutil.Logger(t),
	}
	if cb != nil {
		cb(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	tp := &testPool{Pool: p, name: name}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case e := <-p.Events():
				tp.record(e)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		if err := p.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", name, err)
		}
		close(stop)
		<-done
	})
	return tp
}

func (p *testPool) record(e Event) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

// memberEvents returns "type:name" for every member event received.
func (p *testPool) memberEvents() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		for _, m := range e.Members {
			out = append(out, e.Type.String()+":"+m.Name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func addrOf(p *testPool) string {
	ip, port := p.Addr()
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}

func join(t *testing.T, p *testPool, others ...*testPool) {
	t.Helper()
	var addrs []string
	for _, o := range others {
		addrs = append(addrs, addrOf(o))
	}
	n, err := p.Join(addrs)
	if err != nil || n != len(addrs) {
		t.Fatalf("%s: Join(%v) = %d, %v; want %d, nil", p.name, addrs, n, err, len(addrs))
	}
}

func member(p *testPool, name string) (Member, bool) {
	for _, m := range p.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// waitForMember waits until p sees name and check(member) returns nil.
func waitForMember(t *testing.T, p *testPool, name string, check func(Member) error) {
	t.Helper()
	testutil.WaitFor(t, waitTimeout, func() error {
		m, ok := member(p, name)
		if !ok {
			return fmt.Errorf("%s does not know %s", p.name, name)
		}
		if err := check(m); err != nil {
			return fmt.Errorf("%s's view of %s: %w", p.name, name, err)
		}
		return nil
	})
}

func hasStatus(want Status) func(Member) error {
	return func(m Member) error {
		if m.Status != want {
			return fmt.Errorf("status %s, want %s", m.Status, want)
		}
		return nil
	}
}

func hasTag(key, want string) func(Member) error {
	return func(m Member) error {
		if m.Status != StatusAlive {
			return fmt.Errorf("status %s, want alive", m.Status)
		}
		if got := m.Tags[key]; got != want {
			return fmt.Errorf("tag %s = %q, want %q", key, got, want)
		}
		return nil
	}
}

// freePort returns a port for tests that must start a pool twice on the
// same address.
func freePort(t *testing.T) int { return testutil.Ports(t, 1)[0] }

func TestPoolJoin(t *testing.T) {
	t.Parallel()
	a := newTestPool(t, "a", nil)
	b := newTestPool(t, "b", nil)

	ip, port := a.Addr()
	if !ip.Equal(net.IPv4(127, 0, 0, 1)) || port == 0 {
		t.Errorf("Addr() = %v, %d; want 127.0.0.1 and the bound port", ip, port)
	}
	if got := len(a.Members()); got != 1 {
		t.Errorf("Members() before Join has %d entries, want 1 (itself)", got)
	}
	join(t, a, b)

	for _, p := range []*testPool{a, b} {
		for _, name := range []string{"a", "b"} {
			waitForMember(t, p, name, hasStatus(StatusAlive))
		}
		if got := len(p.Members()); got != 2 {
			t.Errorf("%s: Members() has %d entries, want 2", p.name, got)
		}
	}

	local := a.LocalMember()
	if local.Name != "a" || local.Status != StatusAlive {
		t.Errorf("LocalMember() = %s (%s), want a (alive)", local.Name, local.Status)
	}
	if diff := cmp.Diff(local.Tags, serverTags("a")); diff != "" {
		t.Errorf("LocalMember().Tags mismatch (-got +want):\n%s", diff)
	}
	m, _ := member(b, "a")
	if diff := cmp.Diff(m.Tags, serverTags("a")); diff != "" {
		t.Errorf("b's view of a's tags mismatch (-got +want):\n%s", diff)
	}

	if err := a.SetTag(TagRaftState, "1"); err != nil {
		t.Fatalf("SetTag: %v", err)
	}
	if got := a.LocalMember().Tags[TagRaftState]; got != "1" {
		t.Errorf("LocalMember().Tags[%s] after SetTag = %q, want \"1\"", TagRaftState, got)
	}
	waitForMember(t, b, "a", hasTag(TagRaftState, "1"))
	// Setting a tag to its current value is a no-op and keeps the others.
	if err := a.SetTag(TagRaftState, "1"); err != nil {
		t.Errorf("SetTag to the same value: %v", err)
	}
	want := serverTags("a")
	want[TagRaftState] = "1"
	if diff := cmp.Diff(a.LocalMember().Tags, want); diff != "" {
		t.Errorf("tags after SetTag mismatch (-got +want):\n%s", diff)
	}
	if s := a.Stats(); s["members"] != "2" {
		t.Errorf("Stats()[members] = %q, want \"2\"", s["members"])
	}
}

func TestJoinUnreachable(t *testing.T) {
	t.Parallel()
	a := newTestPool(t, "a", nil)
	b := newTestPool(t, "b", nil)
	dead := "127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens here

	if n, err := a.Join([]string{dead}); err == nil || n != 0 {
		t.Errorf("Join(%s) = %d, %v; want 0 and an error", dead, n, err)
	}
	// One reachable address is enough; the other failure is not reported.
	if n, err := a.Join([]string{dead, addrOf(b)}); err != nil || n != 1 {
		t.Errorf("Join(dead, b) = %d, %v; want 1, nil", n, err)
	}
	waitForMember(t, b, "a", hasStatus(StatusAlive))
}

func TestEventsMemberJoin(t *testing.T) {
	t.Parallel()
	a := newTestPool(t, "a", nil)
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	for _, p := range []*testPool{a, b} {
		testutil.WaitFor(t, waitTimeout, func() error {
			got := p.memberEvents()
			for _, want := range []string{"member-join:a", "member-join:b"} {
				if !contains(got, want) {
					return fmt.Errorf("%s: member events %v, want %s among them", p.name, got, want)
				}
			}
			return nil
		})
	}
}

func TestParseServer(t *testing.T) {
	ip := net.IPv4(10, 0, 0, 7)
	full := map[string]string{
		TagRole:      RoleServer,
		TagID:        "9f2c-id",
		TagDC:        "dc1",
		TagRaftPort:  "8300",
		TagHTTPPort:  "8500",
		TagExpect:    "3",
		TagBootstrap: "1",
		TagRaftState: "1",
		TagVersion:   "1.2.3",
	}
	with := func(change map[string]string, drop ...string) map[string]string {
		tags := make(map[string]string)
		for k, v := range full {
			tags[k] = v
		}
		for k, v := range change {
			tags[k] = v
		}
		for _, k := range drop {
			delete(tags, k)
		}
		return tags
	}

	cases := []struct {
		name   string
		tags   map[string]string
		want   ServerInfo
		wantOK bool
	}{
		{name: "client", tags: with(map[string]string{TagRole: RoleClient})},
		{name: "no role", tags: with(nil, TagRole)},
		{name: "missing port", tags: with(nil, TagRaftPort)},
		{name: "port not a number", tags: with(map[string]string{TagRaftPort: "http"})},
		{name: "port zero", tags: with(map[string]string{TagRaftPort: "0"})},
		{name: "port negative", tags: with(map[string]string{TagRaftPort: "-1"})},
		{name: "missing id", tags: with(nil, TagID)},
		{name: "expect not a number", tags: with(map[string]string{TagExpect: "three"})},
		{name: "expect empty", tags: with(map[string]string{TagExpect: ""})},
		{
			name: "full server",
			tags: full,
			want: ServerInfo{
				Name: "s1", ID: "9f2c-id", Datacenter: "dc1", Addr: ip, RaftPort: 8300, HTTPPort: 8500,
				Expect: 3, Bootstrap: true, HasState: true, Version: "1.2.3", Status: StatusAlive,
			},
			wantOK: true,
		},
		{
			name: "minimal server",
			tags: map[string]string{TagRole: RoleServer, TagID: "9f2c-id", TagRaftPort: "8300"},
			want: ServerInfo{
				Name: "s1", ID: "9f2c-id", Addr: ip, RaftPort: 8300, Status: StatusAlive,
			},
			wantOK: true,
		},
		{
			name: "bootstrap and raft_state other than 1",
			tags: with(map[string]string{TagBootstrap: "true", TagRaftState: "0"}),
			want: ServerInfo{
				Name: "s1", ID: "9f2c-id", Datacenter: "dc1", Addr: ip, RaftPort: 8300, HTTPPort: 8500,
				Expect: 3, Version: "1.2.3", Status: StatusAlive,
			},
			wantOK: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Member{Name: "s1", Addr: ip, Port: 8301, Tags: tc.tags, Status: StatusAlive}
			got, ok := ParseServer(m)
			if ok != tc.wantOK {
				t.Fatalf("ParseServer(%v) ok = %v, want %v", tc.tags, ok, tc.wantOK)
			}
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("ParseServer(%v) mismatch (-got +want):\n%s", tc.tags, diff)
			}
		})
	}
}

func TestServerInfoRaftAddr(t *testing.T) {
	cases := []struct {
		ip   string
		port int
		want string
	}{
		{"10.0.0.7", 8300, "10.0.0.7:8300"},
		{"::1", 8300, "[::1]:8300"},
		{"fd00::7", 9000, "[fd00::7]:9000"},
	}
	for _, tc := range cases {
		s := ServerInfo{Addr: net.ParseIP(tc.ip), RaftPort: tc.port}
		if got := s.RaftAddr(); got != tc.want {
			t.Errorf("ServerInfo{%s, %d}.RaftAddr() = %q, want %q", tc.ip, tc.port, got, tc.want)
		}
	}
}

func TestMergeDelegate(t *testing.T) {
	known := &names{byName: map[string]nameHolder{}}
	known.record(serf.MemberEvent{Type: serf.EventMemberJoin, Members: []serf.Member{{Name: "n3", Tags: map[string]string{TagID: "id-3"}}}})
	known.record(serf.MemberEvent{Type: serf.EventMemberFailed, Members: []serf.Member{{Name: "n3", Tags: map[string]string{TagID: "id-3"}}}})
	known.record(serf.MemberEvent{Type: serf.EventMemberJoin, Members: []serf.Member{{Name: "n4", Tags: map[string]string{TagID: "id-4"}}}})
	known.record(serf.MemberEvent{Type: serf.EventMemberLeave, Members: []serf.Member{{Name: "n4", Tags: map[string]string{TagID: "id-4"}}}})
	d := &mergeDelegate{name: "n1", id: "id-1", names: known}
	addr := net.IPv4(127, 0, 0, 9)
	cases := []struct {
		name    string
		members []*serf.Member
		wantDup bool
	}{
		{"other names", []*serf.Member{{Name: "n2", Tags: map[string]string{TagID: "id-2"}}}, false},
		{"same name same id", []*serf.Member{{Name: "n1", Tags: map[string]string{TagID: "id-1"}}}, false},
		{"same name left", []*serf.Member{{Name: "n1", Tags: map[string]string{TagID: "id-x"}, Status: serf.StatusLeft}}, false},
		{"same name other id", []*serf.Member{{Name: "n2"}, {Name: "n1", Addr: addr, Port: 8301, Tags: map[string]string{TagID: "id-x"}}}, true},
		{"same name failed", []*serf.Member{{Name: "n1", Tags: map[string]string{TagID: "id-x"}, Status: serf.StatusFailed}}, true},
		{"same name no id", []*serf.Member{{Name: "n1", Tags: map[string]string{}}}, true},
		{"name of a failed member, other id", []*serf.Member{{Name: "n3", Tags: map[string]string{TagID: "id-new"}}}, true},
		{"name of a failed member, same id (it came back)", []*serf.Member{{Name: "n3", Tags: map[string]string{TagID: "id-3"}}}, false},
		{"name of a member that left, other id", []*serf.Member{{Name: "n4", Tags: map[string]string{TagID: "id-new"}}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := d.NotifyMerge(tc.members)
			if got := errors.Is(err, ErrDuplicateName); got != tc.wantDup {
				t.Fatalf("NotifyMerge = %v, want ErrDuplicateName: %v", err, tc.wantDup)
			}
			if id := tc.members[len(tc.members)-1].Tags[TagID]; tc.wantDup && !strings.Contains(err.Error(), id) {
				t.Errorf("NotifyMerge error %q does not name the other node ID", err)
			}
		})
	}
}

// TestDuplicateName starts a second "a" with another node ID: its join is
// refused and the first "a" is untouched. Then the first "a" stops and
// comes back with the same name, ID and address, as a restarted agent
// would, and joins without trouble.
func TestDuplicateName(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	a := newTestPool(t, "a", func(c *Config) { c.BindPort = port })
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	waitForMember(t, b, "a", hasStatus(StatusAlive))

	dup := newTestPool(t, "a", func(c *Config) { c.NodeID = "other-id"; c.Tags[TagID] = "other-id" })
	n, err := dup.Join([]string{addrOf(b)})
	if err == nil || n != 0 {
		t.Fatalf("Join of a duplicate name = %d, %v; want 0 and an error", n, err)
	}
	if !strings.Contains(err.Error(), "node name already in use") {
		t.Errorf("Join of a duplicate name = %q, want it to contain %q", err, "node name already in use")
	}
	if !IsDuplicateName(err) {
		t.Errorf("IsDuplicateName(%q) = false, want true", err)
	}

	if got := len(dup.Members()); got != 1 {
		t.Errorf("refused pool knows %d members, want 1 (itself)", got)
	}
	waitForMember(t, b, "a", hasTag(TagID, "a-id"))

	// Restart: same name, node ID and address. The old "a" may still look
	// alive to b; memberlist lets the new one refute it.
	if err := a.Shutdown(); err != nil {
		t.Fatalf("Shutdown(a): %v", err)
	}
	a2 := newTestPool(t, "a", func(c *Config) {
		c.BindPort = port
		c.Tags[TagVersion] = "2.0.0"
	})
	join(t, a2, b)
	waitForMember(t, b, "a", hasTag(TagVersion, "2.0.0"))
	waitForMember(t, a2, "b", hasStatus(StatusAlive))
}

// TestDuplicateNameOfFailedMember starts a node under the name of a member
// that has failed (not left). The merge delegate refuses its join, as the
// mergeDelegate comment promises until an operator runs force-leave, and
// the cluster must not adopt it either: during the whole window b must keep
// the name for the original node ID.
func TestDuplicateNameOfFailedMember(t *testing.T) {
	t.Parallel()
	a := newTestPool(t, "a", nil)
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	waitForMember(t, b, "a", hasStatus(StatusAlive))
	if err := a.Shutdown(); err != nil {
		t.Fatalf("Shutdown(a): %v", err)
	}
	waitForMember(t, b, "a", hasStatus(StatusFailed))

	dup := newTestPool(t, "a", func(c *Config) { c.NodeID = "other-id"; c.Tags[TagID] = "other-id" })
	// Keep trying for a few seconds, well past memberlist's
	// DeadNodeReclaimTime, as a retry_join loop would.
	attempt := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		attempt++
		if n, err := dup.Join([]string{addrOf(b)}); err == nil || !strings.Contains(err.Error(), "node name already in use") {
			t.Fatalf("attempt %d: Join under a failed member's name = %d, %v; want it refused as a duplicate", attempt, n, err)
		}
		if m, _ := member(b, "a"); m.Tags[TagID] != "a-id" {
			t.Fatalf("attempt %d: after a refused join, b's view of a is %s at port %d with id %q; want the original a-id",
				attempt, m.Status, m.Port, m.Tags[TagID])
		}
	}
}

// TestRestartAtNewAddress stops a pool without leaving and starts it again
// under the same name and node ID on another port, as a rescheduled server
// with a new IP would come back. Once the old entry is dead, the others
// accept the new address.
func TestRestartAtNewAddress(t *testing.T) {
	t.Parallel()
	a := newTestPool(t, "a", nil)
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	waitForMember(t, b, "a", hasStatus(StatusAlive))
	if err := a.Shutdown(); err != nil {
		t.Fatalf("Shutdown(a): %v", err)
	}

	a2 := newTestPool(t, "a", func(c *Config) { c.Tags[TagVersion] = "2.0.0" })
	_, newPort := a2.Addr()
	_, oldPort := a.Addr()
	if newPort == oldPort {
		t.Fatalf("restarted pool got the old port %d; the test needs a new one", newPort)
	}
	// While b still has the old "a" alive, the join itself succeeds (a2
	// learns about b) but b keeps the old address until that one is dead.
	join(t, a2, b)
	start := time.Now()
	waitForMember(t, b, "a", func(m Member) error {
		if m.Port != newPort || m.Status != StatusAlive || m.Tags[TagVersion] != "2.0.0" {
			return fmt.Errorf("port %d, status %s, build %q; want port %d, alive, build 2.0.0", m.Port, m.Status, m.Tags[TagVersion], newPort)
		}
		return nil
	})
	t.Logf("b accepted the new address after %s", time.Since(start).Round(100*time.Millisecond))
}

// TestSnapshotRejoin stops a pool without leaving and starts it again from
// its snapshot: it rejoins on its own, without Join.
func TestSnapshotRejoin(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "serf")
	port := freePort(t)
	withSnapshot := func(version string) func(*Config) {
		return func(c *Config) {
			c.SnapshotDir = dir
			c.BindPort = port
			c.Tags[TagVersion] = version
		}
	}
	a := newTestPool(t, "a", withSnapshot("1.0.0"))
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	// Once a has delivered the join event for b, its snapshotter has it
	// too, and Shutdown flushes it.
	testutil.WaitFor(t, waitTimeout, func() error {
		if !contains(a.memberEvents(), "member-join:b") {
			return fmt.Errorf("a has member events %v, want member-join:b", a.memberEvents())
		}
		return nil
	})
	if err := a.Shutdown(); err != nil {
		t.Fatalf("Shutdown(a): %v", err)
	}
	snap, err := os.ReadFile(filepath.Join(dir, "local.snapshot"))
	if err != nil {
		t.Fatalf("read snapshot: %v", err)
	}
	if want := "alive: b " + addrOf(b); !bytes.Contains(snap, []byte(want)) {
		t.Fatalf("snapshot does not record b:\n%s\nwant a line %q", snap, want)
	}

	a2 := newTestPool(t, "a", withSnapshot("2.0.0"))
	// No Join: Serf rejoins the members it finds in the snapshot.
	waitForMember(t, b, "a", hasTag(TagVersion, "2.0.0"))
	waitForMember(t, a2, "b", hasStatus(StatusAlive))
}

// TestSnapshotRejoinDuplicateName restarts from a snapshot under a name that
// another node ID holds in the cluster: the rejoin is refused. New does not
// report it (the rejoin runs in the background after New returns); only
// the log says so.
func TestSnapshotRejoinDuplicateName(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "serf")
	a := newTestPool(t, "a", func(c *Config) { c.SnapshotDir = dir })
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	testutil.WaitFor(t, waitTimeout, func() error {
		if !contains(a.memberEvents(), "member-join:b") {
			return fmt.Errorf("a has member events %v, want member-join:b", a.memberEvents())
		}
		return nil
	})
	if err := a.Shutdown(); err != nil {
		t.Fatalf("Shutdown(a): %v", err)
	}

	logs := &logCapture{}
	dup := newTestPool(t, "a", func(c *Config) {
		c.SnapshotDir = dir
		c.NodeID = "other-id"
		c.Tags[TagID] = "other-id"
		c.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})
	})
	testutil.WaitFor(t, waitTimeout, func() error {
		if !logs.contains(ErrDuplicateName.Error()) {
			return errors.New("no refused rejoin in the log yet")
		}
		return nil
	})
	if got := len(dup.Members()); got != 1 {
		t.Errorf("refused pool knows %d members, want 1 (itself)", got)
	}
	if m, _ := member(b, "a"); m.Tags[TagID] != "a-id" {
		t.Errorf("b's view of a has id %q, want the original a-id", m.Tags[TagID])
	}
}

type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

func TestLeave(t *testing.T) {
	t.Parallel()
	a := newTestPool(t, "a", nil)
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	waitForMember(t, b, "a", hasStatus(StatusAlive))

	if err := a.Leave(); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitForMember(t, b, "a", hasStatus(StatusLeft))
	testutil.WaitFor(t, waitTimeout, func() error {
		if !contains(b.memberEvents(), "member-leave:a") {
			return fmt.Errorf("b has member events %v, want member-leave:a", b.memberEvents())
		}
		return nil
	})
	if err := a.Shutdown(); err != nil {
		t.Errorf("Shutdown after Leave: %v", err)
	}
	if err := a.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestForceLeave(t *testing.T) {
	t.Parallel()
	a := newTestPool(t, "a", nil)
	b := newTestPool(t, "b", nil)
	join(t, a, b)
	waitForMember(t, b, "a", hasStatus(StatusAlive))

	if err := b.ForceLeave("nobody"); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("ForceLeave(unknown) = %v, want an error naming it", err)
	}

	// Stop a without leaving: b notices the failure.
	if err := a.Shutdown(); err != nil {
		t.Fatalf("Shutdown(a): %v", err)
	}
	waitForMember(t, b, "a", hasStatus(StatusFailed))
	if err := b.ForceLeave("a"); err != nil {
		t.Fatalf("ForceLeave(a): %v", err)
	}
	waitForMember(t, b, "a", hasStatus(StatusLeft))
	testutil.WaitFor(t, waitTimeout, func() error {
		got := b.memberEvents()
		if !contains(got, "member-failed:a") || !contains(got, "member-leave:a") {
			return fmt.Errorf("b has member events %v, want member-failed:a and member-leave:a", got)
		}
		return nil
	})

	// The duplicate-name error tells the operator to force-leave the old
	// holder of the name; after that a new node ID can take the name. The
	// first attempts may still be refused for a few seconds, while b's
	// memberlist keeps the old node as dead rather than left.
	other := newTestPool(t, "a", func(c *Config) { c.NodeID = "other-id"; c.Tags[TagID] = "other-id" })
	refused := 0
	testutil.WaitFor(t, waitTimeout, func() error {
		if _, err := other.Join([]string{addrOf(b)}); err != nil {
			refused++
			return err
		}
		return nil
	})
	t.Logf("join under the force-left name refused %d times before it succeeded", refused)
	waitForMember(t, b, "a", hasTag(TagID, "other-id"))
}

func TestMergeDelegateRefusesOtherClusters(t *testing.T) {
	known := &names{byName: map[string]nameHolder{}}
	known.record(serf.MemberEvent{Type: serf.EventMemberJoin, Members: []serf.Member{{Name: "p", Tags: map[string]string{TagID: "id-p"}}}})
	known.record(serf.MemberEvent{Type: serf.EventMemberLeave, Members: []serf.Member{{Name: "r", Tags: map[string]string{TagID: "id-r"}}}})
	d := &mergeDelegate{name: "a1", id: "id-a1", dc: "dc1", names: known}
	d.clusterID.Store("cluster-a")
	tags := func(id, dc, cluster string) map[string]string {
		return map[string]string{TagID: id, TagDC: dc, TagClusterID: cluster}
	}
	cases := []struct {
		name    string
		members []*serf.Member
		want    []string // substrings of the refusal; nil: accepted
	}{
		{"same cluster", []*serf.Member{{Name: "a2", Tags: tags("id-a2", "dc1", "cluster-a")}}, nil},
		{"no cluster yet", []*serf.Member{{Name: "n", Tags: tags("id-n", "dc1", "")}}, nil},
		{"a client, no tags but id", []*serf.Member{{Name: "c", Tags: map[string]string{TagID: "id-c"}}}, nil},
		{"itself", []*serf.Member{{Name: "a1", Tags: tags("id-a1", "dc1", "cluster-a")}}, nil},
		{"another cluster", []*serf.Member{{Name: "a2", Tags: tags("id-a2", "dc1", "cluster-a")}, {Name: "b1", Tags: tags("id-b1", "dc1", "cluster-b")}},
			[]string{"refusing to merge with node b1 (cluster cluster-b, dc1): this agent is in cluster cluster-a (dc1)", "website/operations.md"}},
		{"another datacenter", []*serf.Member{{Name: "x", Tags: tags("id-x", "dc2", "")}},
			[]string{"node x (cluster no cluster yet, dc2)", "datacenter dc1 (cluster cluster-a)"}},
		{"this node's ID under another name", []*serf.Member{{Name: "copy", Tags: tags("id-a1", "dc1", "")}},
			[]string{"node copy", "id-a1", "a1"}},
		{"a known member's ID under another name", []*serf.Member{{Name: "q", Tags: tags("id-p", "dc1", "")}},
			[]string{"node q", "id-p", "node p"}},
		{"a known member, same name and ID", []*serf.Member{{Name: "p", Tags: tags("id-p", "dc1", "cluster-a")}}, nil},
		{"the ID of a member that left, under another name", []*serf.Member{{Name: "r2", Tags: tags("id-r", "dc1", "")}}, nil},
		{"another cluster that left", []*serf.Member{{Name: "b1", Tags: tags("id-b1", "dc1", "cluster-b"), Status: serf.StatusLeft}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := d.NotifyMerge(tc.members)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("NotifyMerge = %v, want nil", err)
				}
				return
			}
			if !IsRefusedMerge(err) {
				t.Fatalf("NotifyMerge = %v, want ErrRefusedMerge", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NotifyMerge = %q, want it to contain %q", err, w)
				}
			}
		})
	}

	// A node without a cluster ID accepts any cluster; once it learns its
	// own, it refuses the others.
	d.clusterID.Store("")
	if err := d.NotifyMerge([]*serf.Member{{Name: "b1", Tags: tags("id-b1", "dc1", "cluster-b")}}); err != nil {
		t.Errorf("NotifyMerge with no local cluster ID = %v, want nil", err)
	}
}

// TestOtherClusterDoesNotMerge joins two pools whose cluster_id tags
// differ, on real Serf: the join is refused on both sides with an error
// naming both clusters, and neither pool learns the other's members. A
// pool that belongs to no cluster yet joins, and once it takes a cluster
// ID (SetTag) it refuses a third cluster.
func TestOtherClusterDoesNotMerge(t *testing.T) {
	t.Parallel()
	withCluster := func(id string) func(*Config) {
		return func(c *Config) { c.Tags[TagClusterID] = id }
	}
	a := newTestPool(t, "a", withCluster("cluster-a"))
	b := newTestPool(t, "b", withCluster("cluster-b"))
	n, err := a.Join([]string{addrOf(b)})
	if err == nil || n != 0 {
		t.Fatalf("Join of another cluster = %d, %v; want 0 and an error", n, err)
	}
	if !IsRefusedMerge(err) {
		t.Errorf("IsRefusedMerge(%q) = false, want true", err)
	}
	for _, w := range []string{"node b (cluster cluster-b, dc1)", "this agent is in cluster cluster-a (dc1)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Join error %q does not contain %q", err, w)
		}
	}
	if n, err := b.Join([]string{addrOf(a)}); err == nil || n != 0 || !strings.Contains(err.Error(), "node a (cluster cluster-a, dc1): this agent is in cluster cluster-b") {
		t.Errorf("reverse Join = %d, %v; want a refusal naming both clusters", n, err)
	}
	if got, want := len(a.Members()), 1; got != want {
		t.Errorf("a knows %d members, want %d", got, want)
	}
	if got, want := len(b.Members()), 1; got != want {
		t.Errorf("b knows %d members, want %d", got, want)
	}

	fresh := newTestPool(t, "fresh", nil)
	join(t, fresh, a)
	waitForMember(t, a, "fresh", hasStatus(StatusAlive))
	if err := fresh.SetTag(TagClusterID, "cluster-a"); err != nil {
		t.Fatalf("SetTag: %v", err)
	}
	waitForMember(t, a, "fresh", hasTag(TagClusterID, "cluster-a"))
	if n, err := fresh.Join([]string{addrOf(b)}); err == nil || n != 0 || !IsRefusedMerge(err) {
		t.Errorf("Join of another cluster after SetTag = %d, %v; want a refusal", n, err)
	}
	if _, ok := member(b, "fresh"); ok {
		t.Errorf("b knows fresh after the refused join")
	}
}
