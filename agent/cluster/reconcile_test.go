package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
	"github.com/conclavehq/conclave/test/testutil"
)

// memRaft adapts an in-memory *raft.Raft to RaftMembership, Leadership
// and consensus.RaftReader.
type memRaft struct {
	r        *raft.Raft
	leaderCh chan bool
}

func (m *memRaft) Configuration() ([]consensus.Server, uint64, error) {
	f := m.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, 0, err
	}
	var out []consensus.Server
	for _, s := range f.Configuration().Servers {
		out = append(out, consensus.Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, f.Index(), nil
}

func (m *memRaft) AddVoter(_ context.Context, id, addr string) error {
	return mapTestErr(m.r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second).Error())
}

func (m *memRaft) RemoveServer(_ context.Context, id string) error {
	return mapTestErr(m.r.RemoveServer(raft.ServerID(id), 0, 5*time.Second).Error())
}

func (m *memRaft) LeaderCh() <-chan bool { return m.leaderCh }
func (m *memRaft) IsLeader() bool        { return m.r.State() == raft.Leader }

func mapTestErr(err error) error {
	if err == raft.ErrNotLeader || err == raft.ErrLeadershipLost {
		return fmt.Errorf("%w: %v", consensus.ErrNotLeader, err)
	}
	return err
}

type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (nopFSM) Restore(io.ReadCloser) error         { return nil }

// memCluster is a set of in-memory Raft servers on one in-memory network,
// shaped after raft's MakeCluster.
type memCluster struct {
	t      *testing.T
	mu     sync.Mutex
	trans  map[string]*raft.InmemTransport // by address
	rafts  map[string]*memRaft             // by ID
	logger hclog.Logger
}

func newMemCluster(t *testing.T) *memCluster {
	return &memCluster{t: t, trans: map[string]*raft.InmemTransport{}, rafts: map[string]*memRaft{}, logger: testutil.Logger(t)}
}

// start starts a server with id at addr and connects it to every other.
func (c *memCluster) start(id, addr string) *memRaft {
	c.t.Helper()
	_, tr := raft.NewInmemTransport(raft.ServerAddress(addr))
	c.mu.Lock()
	for a, other := range c.trans {
		tr.Connect(raft.ServerAddress(a), other)
		other.Connect(raft.ServerAddress(addr), tr)
	}
	c.trans[addr] = tr
	c.mu.Unlock()
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(id)
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.ShutdownOnRemove = false
	conf.Logger = c.logger.Named(id)
	ch := make(chan bool, 8)
	conf.NotifyCh = ch
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(conf, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), tr)
	if err != nil {
		c.t.Fatalf("NewRaft(%s): %v", id, err)
	}
	c.t.Cleanup(func() { r.Shutdown().Error() })
	m := &memRaft{r: r, leaderCh: ch}
	c.rafts[id] = m
	return m
}

// fakeMembers is a member list the test edits.
type fakeMembers struct {
	mu      sync.Mutex
	members []gossip.Member
}

func (f *fakeMembers) Members() []gossip.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gossip.Member(nil), f.members...)
}

func (f *fakeMembers) set(ms ...gossip.Member) {
	f.mu.Lock()
	f.members = ms
	f.mu.Unlock()
}

func member(name, id, addr string, status gossip.Status) gossip.Member {
	host, port, _ := net.SplitHostPort(addr)
	return gossip.Member{Name: name, Addr: net.ParseIP(host), Status: status, Tags: map[string]string{
		gossip.TagRole: gossip.RoleServer, gossip.TagID: id, gossip.TagDC: "dc1", gossip.TagRaftPort: port,
	}}
}

func configString(t *testing.T, m RaftMembership) string {
	t.Helper()
	servers, _, err := m.Configuration()
	if err != nil {
		t.Fatalf("Configuration: %v", err)
	}
	var out []string
	for _, s := range servers {
		out = append(out, s.ID+"@"+s.Address+":"+strconv.FormatBool(s.Voter))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// leaderOf bootstraps the first server alone and waits until it leads.
func leaderOf(t *testing.T, c *memCluster) *memRaft {
	t.Helper()
	l := c.start("s1", "127.0.0.1:9001")
	if err := l.r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "s1", Address: "127.0.0.1:9001"}}}).Error(); err != nil {
		t.Fatalf("BootstrapCluster: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if !l.IsLeader() {
			return fmt.Errorf("s1 is %s", l.r.State())
		}
		return nil
	})
	return l
}

func TestReconcilerPass(t *testing.T) {
	c := newMemCluster(t)
	l := leaderOf(t, c)
	c.start("s2", "127.0.0.1:9002")
	c.start("s3", "127.0.0.1:9003")
	pool := &fakeMembers{}
	r := NewReconciler(testutil.Logger(t), l, pool, "s1", "dc1")
	ctx := context.Background()
	pass := func(want string) {
		t.Helper()
		if err := r.Pass(ctx); err != nil {
			t.Fatalf("Pass: %v", err)
		}
		if got := configString(t, l); got != want {
			t.Fatalf("configuration after Pass = %q, want %q", got, want)
		}
	}

	// Alive servers missing from the configuration become voters; a
	// client and a server of another datacenter are left alone.
	client := gossip.Member{Name: "c1", Status: gossip.StatusAlive, Tags: map[string]string{gossip.TagRole: gossip.RoleClient, gossip.TagID: "c1"}}
	otherDC := member("x1", "x1", "127.0.0.1:9100", gossip.StatusAlive)
	otherDC.Tags[gossip.TagDC] = "dc2"
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive),
		member("s2", "s2", "127.0.0.1:9002", gossip.StatusAlive),
		member("s3", "s3", "127.0.0.1:9003", gossip.StatusAlive), client, otherDC)
	pass("s1@127.0.0.1:9001:true s2@127.0.0.1:9002:true s3@127.0.0.1:9003:true")

	// A failed server is kept.
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive),
		member("s2", "s2", "127.0.0.1:9002", gossip.StatusAlive),
		member("s3", "s3", "127.0.0.1:9003", gossip.StatusFailed))
	pass("s1@127.0.0.1:9001:true s2@127.0.0.1:9002:true s3@127.0.0.1:9003:true")

	// An address now held by a different ID: the stale entry goes first.
	c.start("s4", "127.0.0.1:9002")
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive),
		member("s4", "s4", "127.0.0.1:9002", gossip.StatusAlive),
		member("s3", "s3", "127.0.0.1:9003", gossip.StatusAlive))
	pass("s1@127.0.0.1:9001:true s3@127.0.0.1:9003:true s4@127.0.0.1:9002:true")

	// A server that left is removed; the leader is never removed, even
	// when gossip says it left.
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusLeft),
		member("s4", "s4", "127.0.0.1:9002", gossip.StatusLeft),
		member("s3", "s3", "127.0.0.1:9003", gossip.StatusAlive))
	pass("s1@127.0.0.1:9001:true s3@127.0.0.1:9003:true")

	// A reaped server (gone from the member list) is removed.
	r.Reaped([]gossip.Member{member("s3", "s3", "127.0.0.1:9003", gossip.StatusLeft)})
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive))
	pass("s1@127.0.0.1:9001:true")
}

// TestReconcilerUpdatesAddressInPlace: a known ID at a new address is
// updated with AddVoter on the same ID, so it keeps its vote.
//
// hashicorp/raft v1.7.3 reads a follower's peer entry without its lock
// after each append (replication.go updateLastAppended) while such an
// update rewrites it; only the unchanged ID is read, so it is harmless,
// but the race detector reports it. This test therefore runs without the
// race detector (make unit runs it so); e2e's TestServerComesBackOnANewIP
// covers the same path end to end.
func TestReconcilerUpdatesAddressInPlace(t *testing.T) {
	if raceDetector {
		t.Skip("hashicorp/raft v1.7.3 races on an in-place address update; run without -race")
	}
	c := newMemCluster(t)
	l := leaderOf(t, c)
	c.start("s2", "127.0.0.1:9002")
	pool := &fakeMembers{}
	r := NewReconciler(testutil.Logger(t), l, pool, "s1", "dc1")
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive), member("s2", "s2", "127.0.0.1:9002", gossip.StatusAlive))
	if err := r.Pass(context.Background()); err != nil {
		t.Fatalf("Pass: %v", err)
	}
	c.start("s2b", "127.0.0.1:9012") // the transport at the new address
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive), member("s2", "s2", "127.0.0.1:9012", gossip.StatusAlive))
	if err := r.Pass(context.Background()); err != nil {
		t.Fatalf("Pass: %v", err)
	}
	if got, want := configString(t, l), "s1@127.0.0.1:9001:true s2@127.0.0.1:9012:true"; got != want {
		t.Fatalf("configuration after the address change = %q, want %q", got, want)
	}
}

func TestReconcilerStopsWhenLeadershipIsLost(t *testing.T) {
	c := newMemCluster(t)
	l := leaderOf(t, c)
	pool := &fakeMembers{}
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive),
		member("s2", "s2", "127.0.0.1:9002", gossip.StatusAlive))
	r := NewReconciler(testutil.Logger(t), l, pool, "s1", "dc1")
	if err := l.r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := r.Pass(context.Background()); err == nil {
		t.Fatalf("Pass on a shut-down leader = nil, want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Pass(ctx); err == nil {
		t.Fatalf("Pass with a cancelled context = nil, want an error")
	}
}

// TestReconcilerRunFollowsLeadership: run as a leader duty, the loop adds a
// new server once this node leads, triggered by Poke.
func TestReconcilerRunFollowsLeadership(t *testing.T) {
	c := newMemCluster(t)
	l := c.start("s1", "127.0.0.1:9001")
	c.start("s2", "127.0.0.1:9002")
	pool := &fakeMembers{}
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive))
	r := NewReconciler(testutil.Logger(t), l, pool, "s1", "dc1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WhileLeader(ctx, l, []Duty{r.Run}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	if err := l.r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "s1", Address: "127.0.0.1:9001"}}}).Error(); err != nil {
		t.Fatalf("BootstrapCluster: %v", err)
	}
	pool.set(member("s1", "s1", "127.0.0.1:9001", gossip.StatusAlive), member("s2", "s2", "127.0.0.1:9002", gossip.StatusAlive))
	r.Poke()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if got, want := configString(t, l), "s1@127.0.0.1:9001:true s2@127.0.0.1:9002:true"; got != want {
			return fmt.Errorf("configuration = %q, want %q", got, want)
		}
		return nil
	})
}
