package gossip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Member tag keys. Every agent sets role, id, dc and build; servers also set
// port, http_port, expect (when bootstrap_expect > 0), bootstrap (when
// bootstrap = true), raft_state and cluster_id (once they know their
// cluster's ID).
const (
	TagRole      = "role"
	TagID        = "id"
	TagDC        = "dc"
	TagRaftPort  = "port"
	TagHTTPPort  = "http_port"
	TagExpect    = "expect"
	TagVersion   = "build"
	TagRaftState = "raft_state"
	TagBootstrap = "bootstrap"
	TagClusterID = "cluster_id"

	RoleServer = "server"
	RoleClient = "client"
)

// ErrDuplicateName is wrapped by the error Join returns when another node
// that has not left the pool already uses this node's name with a
// different node ID. Match it with errors.Is or IsDuplicateName.
var ErrDuplicateName = errors.New("node name already in use")

// ErrRefusedMerge is wrapped by the error Join returns when the other side
// is another cluster (both cluster_id tags set and different), another
// datacenter, or a node with a node ID already in use. Match it with
// errors.Is or IsRefusedMerge.
var ErrRefusedMerge = errors.New("refusing to merge")

// Config configures a Pool.
type Config struct {
	// NodeName is this member's unique name.
	NodeName string
	// NodeID is this member's permanent ID; it goes into the id tag and
	// tells a duplicate name apart from this node restarting.
	NodeID string
	// BindAddr and BindPort are where gossip listens (TCP and UDP). Port 0
	// picks a free port.
	BindAddr string
	BindPort int
	// AdvertiseAddr is the IP other members use to reach this one.
	AdvertiseAddr string
	// Tags are the initial member tags (see the Tag constants).
	Tags map[string]string
	// SnapshotDir, when set, keeps the Serf snapshot in
	// SnapshotDir/local.snapshot so a restarted agent rejoins the members
	// it knew. Empty means no snapshot (dev mode).
	SnapshotDir string
	// Encryption is the gossip key and keyring (keyring.go). The zero
	// value gossips in plaintext.
	Encryption Encryption
	// EventBuffer is the size of the buffered event channel. Default 256.
	EventBuffer int
	// Logger is the parent logger; the pool logs as "gossip". Optional.
	Logger hclog.Logger
	// Local selects memberlist's loopback timing (faster failure
	// detection) instead of its LAN timing.
	Local bool
}

// Pool is this agent's membership in the Serf LAN pool.
type Pool struct {
	serf   *serf.Serf
	events chan Event
	logger hclog.Logger
	names  *names
	merge  *mergeDelegate

	shutdownOnce sync.Once
	done         chan struct{}
}

// New creates the Serf instance and starts listening. It does not join
// anyone; call Join for that.
func New(cfg Config) (*Pool, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 256
	}
	logger := cfg.Logger.Named("gossip")
	std := logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.NodeName
	sc.Tags = cfg.Tags
	sc.Logger = std
	sc.EnableNameConflictResolution = false
	known := &names{byName: make(map[string]nameHolder)}
	merge := &mergeDelegate{name: cfg.NodeName, id: cfg.NodeID, dc: cfg.Tags[TagDC], names: known}
	merge.clusterID.Store(cfg.Tags[TagClusterID])
	sc.Merge = merge
	if cfg.Local {
		sc.MemberlistConfig = memberlist.DefaultLocalConfig()
	} else {
		sc.MemberlistConfig = memberlist.DefaultLANConfig()
	}
	mc := sc.MemberlistConfig
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.BindPort
	mc.Logger = std
	// A shorter gossip interval than memberlist's LAN default of 200ms
	// spreads member changes (and the raft_state tag) faster.
	mc.GossipInterval = 100 * time.Millisecond
	// A member that died may come back under the same name at a new
	// address (a rescheduled pod, a VM with a new IP). Memberlist refuses
	// the new address unless the old entry has been dead for this long;
	// its default of 0 means "never", which would keep the node out of
	// the pool until it is reaped. Live name clashes are refused by the
	// merge delegate below, by node ID.
	mc.DeadNodeReclaimTime = time.Second
	// Nothing re-announces a refused new address once the old entry is
	// dead, until the returning node's next full state sync. Memberlist's
	// 15-30s default makes a server that came back on a new IP wait that
	// long; 5s is cheap at Conclave's pool sizes (memberlist stretches it
	// itself past 32 members).
	mc.PushPullInterval = 5 * time.Second

	if cfg.SnapshotDir != "" {
		if err := os.MkdirAll(cfg.SnapshotDir, 0o700); err != nil {
			return nil, fmt.Errorf("create serf snapshot dir: %w", err)
		}
		sc.SnapshotPath = filepath.Join(cfg.SnapshotDir, "local.snapshot")
	}
	if err := setupEncryption(sc, cfg.Encryption, logger); err != nil {
		return nil, err
	}
	in := make(chan serf.Event, cfg.EventBuffer)
	sc.EventCh = in

	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	p := &Pool{serf: s, events: make(chan Event, cfg.EventBuffer), logger: logger, names: known, merge: merge, done: make(chan struct{})}
	go p.forward(in)
	return p, nil
}

// forward records who holds each name and passes every member event on
// to Events, until Shutdown.
func (p *Pool) forward(in <-chan serf.Event) {
	for {
		select {
		case e := <-in:
			if me, ok := e.(serf.MemberEvent); ok {
				p.names.record(me)
			}
			ev, ok := fromSerfEvent(e)
			if !ok {
				continue
			}
			select {
			case p.events <- ev:
			case <-p.done:
				return
			}
		case <-p.done:
			return
		}
	}
}

// Join contacts the given gossip addresses (host:port) and returns how many
// were reached. It has discover.JoinFunc's shape.
// A join refused for a duplicate name returns the merge delegate's error,
// which wraps ErrDuplicateName: Serf would flatten it into text.
func (p *Pool) Join(addrs []string) (int, error) {
	p.merge.refused.Store(nil)
	n, err := p.serf.Join(addrs, true)
	if err != nil && n == 0 {
		if refusal := p.merge.refused.Load(); refusal != nil {
			return 0, *refusal
		}
		return 0, err
	}
	return n, nil
}

// Events is the stream of member events. The channel is buffered; read it
// promptly, or events queue up behind it (and Serf drops events once its
// own buffer is full).
func (p *Pool) Events() <-chan Event { return p.events }

// Members returns every member this node knows, in any state.
func (p *Pool) Members() []Member { return fromSerfAll(p.serf.Members()) }

// LocalMember returns this node's own member entry.
func (p *Pool) LocalMember() Member { return fromSerf(p.serf.LocalMember()) }

// Addr returns the IP and port this member advertises.
func (p *Pool) Addr() (net.IP, uint16) {
	m := p.serf.LocalMember()
	return m.Addr, m.Port
}

// SetTag sets one tag and gossips the change. Setting TagClusterID also
// tells the merge delegate which cluster this agent is in now.
func (p *Pool) SetTag(key, value string) error {
	if key == TagClusterID {
		p.merge.clusterID.Store(value)
	}
	tags := make(map[string]string)
	for k, v := range p.serf.LocalMember().Tags {
		tags[k] = v
	}
	if tags[key] == value {
		return nil
	}
	tags[key] = value
	return p.serf.SetTags(tags)
}

// ForceLeave marks a failed member as left, so that the leader removes it.
func (p *Pool) ForceLeave(node string) error {
	for _, m := range p.serf.Members() {
		if m.Name == node {
			return p.serf.RemoveFailedNode(node)
		}
	}
	return fmt.Errorf("no member named %q", node)
}

// Stats returns Serf's statistics for /v1/agent/self.
func (p *Pool) Stats() map[string]string { return p.serf.Stats() }

// Leave broadcasts a graceful leave and waits for it to propagate.
func (p *Pool) Leave() error { return p.serf.Leave() }

// AnnounceFailure tells the other members at once that this member is
// going away without leaving: memberlist's own leave, without Serf's leave
// intent, which Serf members record as failed, not left. A server stays in
// the Raft configuration (only a left server is removed), but the others
// stop routing to it now instead of after failure detection (seconds), and
// memberlist lets its name return at another address at once, as a pod
// rescheduled with a new IP does. It waits up to timeout for the message
// to go out. Call it only on the way to Shutdown: the member cannot gossip
// as alive again.
func (p *Pool) AnnounceFailure(timeout time.Duration) error {
	return p.serf.Memberlist().Leave(timeout)
}

// Shutdown stops gossip without leaving; the others will see this member
// fail. It may be called more than once.
func (p *Pool) Shutdown() error {
	err := p.serf.Shutdown()
	p.shutdownOnce.Do(func() { close(p.done) })
	return err
}

// ServerInfo is what a server member's tags say about it.
type ServerInfo struct {
	Name       string
	ID         string
	Datacenter string
	Addr       net.IP
	RaftPort   int
	HTTPPort   int
	Expect     int
	Bootstrap  bool
	HasState   bool
	ClusterID  string
	Version    string
	Status     Status
}

// RaftAddr is the server's Raft address, ip:port.
func (s ServerInfo) RaftAddr() string {
	return net.JoinHostPort(s.Addr.String(), strconv.Itoa(s.RaftPort))
}

// ParseServer reads a member's tags; ok is false when the member is not a
// Conclave server or its tags are malformed.
func ParseServer(m Member) (ServerInfo, bool) {
	if m.Tags[TagRole] != RoleServer {
		return ServerInfo{}, false
	}
	port, err := strconv.Atoi(m.Tags[TagRaftPort])
	if err != nil || port <= 0 || m.Tags[TagID] == "" {
		return ServerInfo{}, false
	}
	s := ServerInfo{
		Name:       m.Name,
		ID:         m.Tags[TagID],
		Datacenter: m.Tags[TagDC],
		Addr:       m.Addr,
		RaftPort:   port,
		Bootstrap:  m.Tags[TagBootstrap] == "1",
		HasState:   m.Tags[TagRaftState] == "1",
		ClusterID:  m.Tags[TagClusterID],
		Version:    m.Tags[TagVersion],
		Status:     m.Status,
	}
	s.HTTPPort, _ = strconv.Atoi(m.Tags[TagHTTPPort])
	if e, ok := m.Tags[TagExpect]; ok {
		if s.Expect, err = strconv.Atoi(e); err != nil {
			return ServerInfo{}, false
		}
	}
	return s, true
}

// names records which node ID holds each member name, and whether that
// member has left. It is fed from Serf's member events, so the merge
// delegate can consult it without Serf's locks, which memberlist may be
// holding when it calls the delegate.
type names struct {
	mu     sync.Mutex
	byName map[string]nameHolder
}

type nameHolder struct {
	id   string
	left bool
}

func (n *names) record(e serf.MemberEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range e.Members {
		switch e.Type {
		case serf.EventMemberReap:
			delete(n.byName, m.Name)
		case serf.EventMemberLeave:
			n.byName[m.Name] = nameHolder{id: m.Tags[TagID], left: true}
		default: // join, update, failed: the name stays taken
			n.byName[m.Name] = nameHolder{id: m.Tags[TagID]}
		}
	}
}

// nameOf returns the name of the member that holds node ID id, unless
// none does or it left.
func (n *names) nameOf(id string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, h := range n.byName {
		if h.id == id && !h.left {
			return name, true
		}
	}
	return "", false
}

// holder returns who holds name, unless nobody does or the holder left.
func (n *names) holder(name string) (id string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, found := n.byName[name]
	return h.id, found && !h.left
}

// mergeDelegate refuses members that must not be in this pool:
//
//   - a member whose name is already held by a node with a different ID
//     that has not left: this node's own name, or a name this node knows
//     from the pool, alive or failed. Serf's own name conflict resolution
//     would shut one of them down silently; Conclave refuses loudly
//     instead, on both sides of the join. A failed holder of a name keeps
//     it until an operator runs force-leave on it (or it is reaped); the
//     same node ID coming back, at any address, is always welcome;
//   - a member of another cluster: its cluster_id tag and this agent's are
//     both set and differ. An empty tag (a client, or a server that
//     belongs to no cluster yet) passes;
//   - a member of another datacenter (both dc tags set and different): a
//     pool holds one datacenter, as Consul's LAN pool does;
//   - a member that uses this node's ID, or the ID of a member this node
//     knows that has not left, under another name (a copied data_dir); as
//     with names, a failed holder keeps its ID until force-leave or reap.
//
// Serf calls it for the members of a join or push/pull and for every
// alive message, with Serf's locks possibly held, so it reads only its
// own state.
type mergeDelegate struct {
	name, id, dc string
	clusterID    atomic.Value // string: this agent's cluster ID, "" for none yet
	names        *names
	// refused is the last refusal, for Join to return unflattened.
	refused atomic.Pointer[error]
}

func (d *mergeDelegate) NotifyMerge(members []*serf.Member) error {
	if err := d.check(members); err != nil {
		d.refused.Store(&err)
		return err
	}
	return nil
}

func (d *mergeDelegate) check(members []*serf.Member) error {
	local, _ := d.clusterID.Load().(string)
	for _, m := range members {
		// Serf hands us no alive/failed state here, only "left".
		if m.Status == serf.StatusLeft {
			continue
		}
		id := m.Tags[TagID]
		holder, taken := d.names.holder(m.Name)
		if m.Name == d.name {
			holder, taken = d.id, true
		}
		if taken && holder != id {
			return fmt.Errorf("%w: %q is used by node ID %s; refusing node ID %s at %s (if the holder is gone for good, run force-leave on it first)",
				ErrDuplicateName, m.Name, holder, id, net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
		}
		other, dc := m.Tags[TagClusterID], m.Tags[TagDC]
		if other != "" && local != "" && other != local {
			return fmt.Errorf("%w with node %s (cluster %s, %s): this agent is in cluster %s (%s); two clusters must not be joined, see website/operations.md",
				ErrRefusedMerge, m.Name, other, dc, local, d.dc)
		}
		if dc != "" && d.dc != "" && dc != d.dc {
			return fmt.Errorf("%w with node %s (cluster %s, %s): this agent is in datacenter %s (cluster %s); a gossip pool holds one datacenter, see website/operations.md",
				ErrRefusedMerge, m.Name, clusterName(other), dc, d.dc, clusterName(local))
		}
		if id == "" {
			continue
		}
		if id == d.id && m.Name != d.name {
			return fmt.Errorf("%w with node %s: it uses node ID %s, which is this agent's (%s); give it its own data_dir",
				ErrRefusedMerge, m.Name, id, d.name)
		}
		if holder, ok := d.names.nameOf(id); ok && holder != m.Name {
			return fmt.Errorf("%w with node %s: it uses node ID %s, which is node %s's (if %s is gone for good, run force-leave on it first); give each node its own data_dir",
				ErrRefusedMerge, m.Name, id, holder, holder)
		}
	}
	return nil
}

// clusterName is a cluster ID as the refusals print it.
func clusterName(id string) string {
	if id == "" {
		return "no cluster yet"
	}
	return id
}
