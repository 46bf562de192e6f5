package gossip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
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
	if !IsServerRole(m.Tags[TagRole]) {
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

// IsServerRole reports whether a role tag is a server's: Consul's "consul",
// or "server" from a Conclave server of an earlier release.
func IsServerRole(role string) bool { return role == RoleServer || role == legacyRoleServer }

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
