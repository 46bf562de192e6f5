package consensus

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

var (
	// ErrNotLeader is returned by operations that only the leader can do.
	ErrNotLeader = errors.New("node is not the leader")
	// ErrAlreadyBootstrapped is returned by Bootstrap when the node already
	// has Raft state: a cluster is bootstrapped at most once per data_dir.
	ErrAlreadyBootstrapped = errors.New("raft state already exists")
	// ErrShutdown is returned by operations on a node that was shut down.
	ErrShutdown = errors.New("raft is shut down")
	// ErrOutcomeUnknown is returned, with ErrNotLeader, when this node
	// lost leadership after a command entered its log: the next leader
	// may still commit it, or not.
	ErrOutcomeUnknown = errors.New("leadership lost while committing; the outcome is unknown")
	// ErrInvalidKey is returned (wrapped) by Apply for a key that is empty
	// where one is needed, is not valid UTF-8 or begins with "/". The
	// command never reaches the log.
	ErrInvalidKey = errors.New("invalid key")
	// ErrValueTooLarge is matched by the *ValueTooLargeError that Apply
	// returns for a value over Config.MaxValueSize. The command never
	// reaches the log; the HTTP API answers 413.
	ErrValueTooLarge = errors.New("value too large")
	// ErrInvalidCommand is returned (wrapped) for a command that is not
	// well formed: an unknown operation or verb, a reap without an index,
	// or a write in View.ReadTxn.
	ErrInvalidCommand = errors.New("invalid command")
	// ErrCorruptSnapshot is returned (wrapped) by Restore,
	// RestoreSnapshot and InspectSnapshot for a stream that is not a
	// complete, intact snapshot. A stream that ends early also matches
	// io.ErrUnexpectedEOF.
	ErrCorruptSnapshot = errors.New("corrupt snapshot")
	// ErrSnapshotTooNew is returned (wrapped) by Restore, RestoreSnapshot
	// and InspectSnapshot for a snapshot of a format version newer than
	// this release reads: restore it with a newer Conclave. The error
	// matches ErrCorruptSnapshot too.
	ErrSnapshotTooNew = errors.New("snapshot too new")
	// ErrNoKVStore is returned by Apply, SaveSnapshot and RestoreSnapshot
	// on a node that runs an application's state machine (Config.FSM)
	// instead of the key/value store.
	ErrNoKVStore = errors.New("no key/value store: the node runs an application state machine")
	// ErrNoStateMachine is returned by ApplyBytes on a node that runs the
	// key/value store, which takes only Commands.
	ErrNoStateMachine = errors.New("no application state machine: the node runs the key/value store")
	// ErrInvalidSession is matched by the error Apply returns for a
	// session-create or session-destroy refused before the log; its text
	// is Consul's ("Invalid Behavior setting 'x'", "Invalid Session TTL
	// ..."). It matches ErrInvalidCommand too.
	ErrInvalidSession = errors.New("invalid session settings")
	// ErrUnknownSession is returned (wrapped, as Consul's `invalid
	// session "id"`) when a lock names a session that does not exist.
	ErrUnknownSession = errors.New("invalid session")
)

// Config configures a Node. Every field is required unless it says otherwise.
type Config struct {
	// ID is the permanent Raft server ID (the node ID from data_dir/node-id).
	ID string
	// Name is the node name, used in logs only.
	Name string
	// Stream carries Raft's connections: its Addr is the advertised Raft
	// address, Accept yields inbound connections and Dial opens outbound
	// ones. NewTCPStream makes a plain TCP one; the agent passes a stream
	// that shares the server port with request forwarding.
	Stream StreamLayer
	// DataDir is the agent's data_dir; Raft keeps its log and stable
	// store in data_dir/raft/wal (or data_dir/raft/raft.db with boltdb, see
	// LogStore) and its snapshots in data_dir/raft/snapshots. Ignored when
	// InMemory is set.
	DataDir string
	// InMemory keeps the log, stable store and snapshots in memory (dev mode
	// and tests). Nothing survives a restart.
	InMemory bool
	// Multiplier scales all Raft timeouts (see TimingFor). Default 1.
	Multiplier int
	// AddressProvider resolves a server ID to its current Raft address, so a
	// server that comes back on a new IP stays reachable under its old ID.
	// Optional; without it the address in the configuration is used.
	AddressProvider AddressProvider
	// TrailingLogs is how many log entries Raft keeps after a snapshot;
	// a server further behind catches up from the snapshot plus this tail.
	// 0 means Raft's default (10240).
	TrailingLogs uint64
	// Logger is the parent logger; the node logs as "raft". Optional.
	Logger hclog.Logger
	// MaxValueSize is the largest value, in bytes, that Apply accepts for a
	// set or cas (Consul's kv_max_value_size); a larger one fails with
	// ErrValueTooLarge before it reaches the log. Required for the
	// key/value store (the agent passes config's kv_max_value_size, whose
	// default, config.DefaultKVMaxValueSize, is the one home of the
	// limit); unused with FSM.
	MaxValueSize int
	// LogStore selects the on-disk log store and log verification. The
	// zero value keeps the data_dir's backend (wal for a new one) and does
	// not verify. Only Verification applies in memory.
	LogStore LogStoreConfig
	// OnFatal is called, once and from its own goroutine, when this
	// server finds that its store is damaged while it runs (log
	// verification failed). Raft is already stopped by then; the agent
	// shuts down and exits non-zero. Optional.
	OnFatal func(error)
	// FSM is an application's own state machine, run instead of the
	// key/value store: commands reach it through ApplyBytes, and the
	// snapshots are what it writes. The key/value methods then see an
	// empty store, and Apply, SaveSnapshot and RestoreSnapshot fail with
	// ErrNoKVStore. Optional; nil runs the key/value store.
	FSM StateMachine
}

// Server is one member of a Raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Node is one Raft server: its log and stable store, snapshot store,
// TCP transport and state machine.
type Node struct {
	cfg       Config
	logger    hclog.Logger
	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *logStore // in memory: nil, or only the verifier to close
	verify    *verification
	fsm       *FSM
	leaderCh  chan bool

	shutdownOnce sync.Once
	shutdownErr  error
	// shutdownCh is closed by Shutdown. Raft may queue a request on a
	// buffered channel that nobody reads once it has stopped, so waits
	// watch this channel too.
	shutdownCh chan struct{}
}

// New opens the Raft storage, starts the transport and returns a running
// Raft follower. It never bootstraps: a node with no state waits until it is
// told to bootstrap or until a leader adds it.
func New(cfg Config) (*Node, error) {
	if cfg.ID == "" {
		return nil, errors.New("consensus: missing server ID")
	}
	if cfg.Stream == nil {
		return nil, errors.New("consensus: missing stream layer")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.FSM == nil && cfg.MaxValueSize <= 0 {
		return nil, errors.New("consensus: missing MaxValueSize, the largest value the key/value store accepts")
	}
	logger := cfg.Logger.Named("raft")
	n := &Node{cfg: cfg, logger: logger, fsm: NewFSM(), leaderCh: make(chan bool, 8), shutdownCh: make(chan struct{})}

	logs, stable, snaps, err := n.openStores()
	if err != nil {
		return nil, err
	}
	n.transport = newTransport(cfg, logger)
	if err := recoverFromPeersFile(cfg, logger, logs, stable, snaps, n.transport); err != nil {
		n.transport.Close()
		n.closeStores()
		return nil, err
	}
	var fsm raft.FSM = checkpointFilter{n.fsm}
	if cfg.FSM != nil {
		fsm = appFSM{cfg.FSM}
	}
	r, err := newRaft(raftConfig(cfg, logger, n.leaderCh), fsm, logs, stable, snaps, n.transport, n.cfg)
	if err != nil {
		n.transport.Close()
		n.closeStores()
		return nil, err
	}
	n.raft = r
	go n.verify.run()
	return n, nil
}

func (n *Node) closeStores() {
	n.store.Close()
}

// RaftAddr is the address other servers use to reach this node's Raft
// transport: the advertised IP with the port actually bound.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// ID returns the Raft server ID of this node.
func (n *Node) ID() string { return n.cfg.ID }

// HasState reports whether this node has any Raft state: a log entry, a
// current term or a snapshot. A node with state must never bootstrap.
func (n *Node) HasState() bool {
	// The running raft keeps its own view; LastIndex covers logs and
	// snapshots, and a node that has voted or been contacted has a term.
	if n.raft.LastIndex() > 0 {
		return true
	}
	term, _ := strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	return term > 0
}

// Bootstrap writes the initial configuration: every server in servers is a
// voter. It fails with ErrAlreadyBootstrapped when the node has state.
func (n *Node) Bootstrap(servers []Server) error {
	if n.HasState() {
		return ErrAlreadyBootstrapped
	}
	var conf raft.Configuration
	for _, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(s.ID),
			Address:  raft.ServerAddress(s.Address),
		})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return ErrAlreadyBootstrapped
	}
	return err
}

// AddVoter adds a voter, or updates the address of a known ID in place (it
// keeps its vote). Only the leader can do this.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.wait(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)))
}

// RemoveServer removes a server from the configuration. Only the leader can
// do this.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx)))
}

// Configuration returns the latest Raft configuration and a Raft index at
// which it is current: this node's applied index. (hashicorp/raft v1.7
// no longer reports the configuration entry's own index.)
func (n *Node) Configuration() ([]Server, uint64, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, 0, mapErr(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, n.raft.AppliedIndex(), nil
}

// WaitRemoved waits until the server id is no longer in this node's Raft
// configuration. It returns ctx's error when ctx ends first, and nil when
// the server is gone or the configuration cannot be read (this node is
// shut down).
func (n *Node) WaitRemoved(ctx context.Context, id string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		servers, _, err := n.Configuration()
		if err != nil {
			return nil
		}
		present := false
		for _, s := range servers {
			present = present || s.ID == id
		}
		if !present {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Leader returns the Raft address and ID of the current leader, or empty
// strings when there is none.
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCh delivers true when this node becomes leader and false when it
// stops being leader. The channel is buffered; read it promptly.
func (n *Node) LeaderCh() <-chan bool { return n.leaderCh }

// VerifyLeader confirms with a quorum that this node is still the leader.
func (n *Node) VerifyLeader(ctx context.Context) error {
	return n.wait(ctx, n.raft.VerifyLeader())
}

// LastContact is the time of the last contact with a leader (zero when
// this node is the leader or has never heard from one).
func (n *Node) LastContact() time.Time { return n.raft.LastContact() }

// Stats returns Raft's internal statistics, for /v1/agent/self.
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// AppliedIndex is the index of the last log entry the local state machine
// applied (with Config.FSM, the last one Raft handed it).
func (n *Node) AppliedIndex() uint64 {
	if n.cfg.FSM != nil {
		return n.raft.AppliedIndex()
	}
	return n.fsm.AppliedIndex()
}

// Shutdown stops Raft and closes the transport and storage. It may be
// called more than once.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		close(n.shutdownCh)
		n.shutdownErr = n.raft.Shutdown().Error()
		if err := n.transport.Close(); err != nil && n.shutdownErr == nil {
			n.shutdownErr = err
		}
		if err := n.store.Close(); err != nil && n.shutdownErr == nil {
			n.shutdownErr = err
		}
	})
	return n.shutdownErr
}
