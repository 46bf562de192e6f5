package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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
	// ErrInvalidSession is matched by the error Apply returns for a
	// session-create or session-destroy refused before the log; its text
	// is Consul's ("Invalid Behavior setting 'x'", "Invalid Session TTL
	// ..."). It matches ErrInvalidCommand too.
	ErrInvalidSession = errors.New("invalid session settings")
	// ErrUnknownSession is returned (wrapped, as Consul's `invalid
	// session "id"`) when a lock names a session that does not exist.
	ErrUnknownSession = errors.New("invalid session")
)

// Base Raft timing for raft_multiplier = 1; every value is multiplied by the
// configured multiplier. At the default multiplier of 2 a follower suspects
// the leader after 400-800 ms of silence, while the leader sends a
// heartbeat every 40-80 ms, so five to ten heartbeats must be lost in a row
// before anyone campaigns.
const (
	baseHeartbeatTimeout = 200 * time.Millisecond
	baseElectionTimeout  = 200 * time.Millisecond
	baseLeaderLease      = 100 * time.Millisecond
	baseCommitTimeout    = 10 * time.Millisecond
)

// Timing holds the Raft timeouts derived from a raft_multiplier.
type Timing struct {
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	LeaderLease      time.Duration
}

// TimingFor returns the Raft timeouts for multiplier m (values below 1 count as 1).
func TimingFor(m int) Timing {
	if m < 1 {
		m = 1
	}
	d := time.Duration(m)
	return Timing{
		HeartbeatTimeout: baseHeartbeatTimeout * d,
		ElectionTimeout:  baseElectionTimeout * d,
		LeaderLease:      baseLeaderLease * d,
	}
}

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
	// ErrValueTooLarge before it reaches the log. Optional; 0 means
	// DefaultMaxValueSize (512 KiB).
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
	if cfg.MaxValueSize <= 0 {
		cfg.MaxValueSize = DefaultMaxValueSize
	}
	logger := cfg.Logger.Named("raft")
	n := &Node{cfg: cfg, logger: logger, fsm: NewFSM(), leaderCh: make(chan bool, 8), shutdownCh: make(chan struct{})}

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.InMemory {
		store := raft.NewInmemStore()
		logs, stable, snaps = store, store, raft.NewInmemSnapshotStore()
		n.verify, logs = newVerification(n, cfg.LogStore.Verification, logs)
		if c, ok := logs.(io.Closer); ok { // the verifier's goroutine
			n.store = &logStore{closers: []io.Closer{c}}
		}
	} else {
		dir := filepath.Join(cfg.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create raft dir: %w", err)
		}
		store, err := openLogStore(cfg.LogStore, dir, logger)
		if err != nil {
			return nil, err
		}
		n.store = store
		var verified raft.LogStore
		n.verify, verified = newVerification(n, cfg.LogStore.Verification, store.logs)
		if vs, ok := verified.(io.Closer); ok && verified != store.logs {
			store.closers = append([]io.Closer{vs}, store.closers...)
		}
		cache, err := raft.NewLogCache(512, verified)
		if err != nil {
			n.closeStores()
			return nil, fmt.Errorf("create log cache: %w", err)
		}
		logs, stable = cache, store.stable
		fss, err := openSnapshots(dir, store, logger.Named("snapshot"))
		if err != nil {
			n.closeStores()
			return nil, err
		}
		snaps = fss
		logger.Info("opened raft store", "backend", string(store.backend), "path", store.path)
	}

	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: raftAddressProvider(cfg.AddressProvider),
		Logger:                logger.Named("transport"),
		Stream:                raftStream{cfg.Stream},
		MaxPool:               3,
		Timeout:               10 * time.Second,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = logger
	t := TimingFor(cfg.Multiplier)
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLease
	rc.CommitTimeout = baseCommitTimeout
	rc.NotifyCh = n.leaderCh
	// A server removed from the configuration while it is still running
	// stays up, so the leader's reconciler can add it back once it is alive
	// in gossip again (Consul and Nomad do the same).
	rc.ShutdownOnRemove = false
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256

	r, err := newRaft(rc, checkpointFilter{n.fsm}, logs, stable, snaps, n.transport, n.cfg)
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

// Apply checks cmd (see Command.Validate), replicates it through the log
// and returns once it is applied to this leader's state machine, with what
// it did: the log index, whether a cas, delete-cas or transaction went
// through, and a transaction's results or errors. A failed check is a
// Result with OK false, not an error; so is an acquire during its key's
// lock delay, answered without the log. Only the leader can do this.
func (n *Node) Apply(ctx context.Context, cmd Command) (Result, error) {
	if err := cmd.Validate(n.cfg.MaxValueSize); err != nil {
		return Result{}, err
	}
	if res, answered := n.lockDelayed(cmd); answered {
		return res, nil
	}
	b, err := cmd.encode()
	if err != nil {
		return Result{}, err
	}
	f := n.raft.Apply(b, timeoutOf(ctx))
	if err := n.wait(ctx, f); err != nil {
		return Result{}, err
	}
	res := Result{Index: f.Index()}
	switch r := f.Response().(type) {
	case error:
		return res, r
	case bool:
		res.OK = r
	case *Result:
		res.OK, res.Results, res.Errors = r.OK, r.Results, r.Errors
	}
	return res, nil
}

// Get reads key from the local state machine.
func (n *Node) Get(key string) (Entry, bool) { return n.fsm.Get(key) }

// List returns the local entries under prefix, sorted by key.
func (n *Node) List(prefix string) []Entry { return n.fsm.List(prefix) }

// Keys returns the local keys under prefix, cut at separator (see
// View.Keys).
func (n *Node) Keys(prefix, separator string) []string { return n.fsm.Keys(prefix, separator) }

// View returns the current version of the local state machine, for reads
// that must agree with each other and with the index they report.
func (n *Node) View() View { return n.fsm.View() }

// WaitKey is a blocking query on key; see FSM.WaitKey.
func (n *Node) WaitKey(ctx context.Context, key string, minIndex uint64) (View, error) {
	return n.fsm.WaitKey(ctx, key, minIndex)
}

// WaitPrefix is a blocking query on prefix; see FSM.WaitPrefix.
func (n *Node) WaitPrefix(ctx context.Context, prefix string, minIndex uint64) (View, error) {
	return n.fsm.WaitPrefix(ctx, prefix, minIndex)
}

// AppliedIndex is the index of the last log entry the local state machine
// applied.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// SaveSnapshot writes the local state machine to w as a snapshot stream
// and describes what it wrote. It reads one immutable version, so it
// neither blocks writes nor forces a Raft snapshot. For an up-to-date
// backup call it on the leader after VerifyLeader.
func (n *Node) SaveSnapshot(w io.Writer) (SnapshotInfo, error) {
	return writeSnapshot(w, n.fsm.View())
}

// RestoreSnapshot replaces the state of the whole cluster with the
// snapshot stream read from r, through Raft's user restore. Only the
// leader can do this.
//
// Raft panics if the state machine fails to restore a user snapshot, so
// the stream is first copied to a temporary file (in data_dir/raft, or
// the system's temporary directory in memory mode) and checked in full;
// only an intact stream reaches Raft. Raft moves its log index past the
// stream's highest index, so later writes get higher indexes than any in
// the stream. Blocking-query indexes can still go back to the stream's, as
// in Consul after a restore.
func (n *Node) RestoreSnapshot(ctx context.Context, r io.Reader) (SnapshotInfo, error) {
	select {
	case <-n.shutdownCh:
		return SnapshotInfo{}, ErrShutdown
	default:
	}
	if !n.IsLeader() {
		return SnapshotInfo{}, ErrNotLeader
	}
	dir := os.TempDir()
	if !n.cfg.InMemory {
		dir = filepath.Join(n.cfg.DataDir, "raft")
	}
	tmp, err := os.CreateTemp(dir, "restore-*.snap")
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("create restore file: %w", err)
	}
	cleanup := func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}
	info, err := InspectSnapshot(io.TeeReader(r, tmp))
	if err != nil {
		cleanup()
		return info, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return info, fmt.Errorf("rewind restore file: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: info.Index, Size: info.Size}
	// raft.Restore is a call, not a future; the goroutine owns the file
	// until Raft is done with it, even if ctx ends first.
	done := make(chan error, 1)
	go func() {
		defer cleanup()
		done <- n.raft.Restore(meta, tmp, timeoutOf(ctx))
	}()
	select {
	case err := <-done:
		return info, mapErr(err)
	case <-ctx.Done():
		return info, ctx.Err()
	case <-n.shutdownCh:
		return info, ErrShutdown
	}
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

// wait waits for f, for ctx, or for Shutdown, whichever comes first. The
// goroutine it leaves behind on ctx or Shutdown ends when Raft answers f or
// never; it holds only f.
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	select {
	case <-n.shutdownCh:
		return ErrShutdown
	default:
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return mapErr(err)
	case <-ctx.Done():
		return ctx.Err()
	case <-n.shutdownCh:
		return ErrShutdown
	}
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", ErrNotLeader, ErrOutcomeUnknown)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return err
}

// timeoutOf converts a context deadline into the timeout Raft's futures
// take; 0 means no timeout.
func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if t := time.Until(d); t > 0 {
			return t
		}
		return time.Millisecond
	}
	return 0
}

// tcpStream is a StreamLayer over a listener opened here, so that a
// bind port of 0 advertises the port actually bound.
type tcpStream struct {
	net.Listener
	advertise net.Addr
}

// NewTCPStream listens on bind (host:port, port 0 for any) and returns a
// stream layer that advertises advertiseIP with the port actually bound.
func NewTCPStream(bind, advertiseIP string) (StreamLayer, error) {
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	ip := net.ParseIP(advertiseIP)
	if ip == nil || ip.IsUnspecified() {
		l.Close()
		return nil, fmt.Errorf("raft advertise address %q is not a usable IP", advertiseIP)
	}
	return &tcpStream{Listener: l, advertise: &net.TCPAddr{IP: ip, Port: port}}, nil
}

func (s *tcpStream) Addr() net.Addr { return s.advertise }

func (s *tcpStream) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}
