package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
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

// openStores opens Raft's log, stable and snapshot stores: in memory, or
// under data_dir/raft with the configured log store and its verifier. On
// error it has closed what it opened.
func (n *Node) openStores() (logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, err error) {
	if n.cfg.InMemory {
		store := raft.NewInmemStore()
		logs, stable, snaps = store, store, raft.NewInmemSnapshotStore()
		n.verify, logs = newVerification(n, n.cfg.LogStore.Verification, logs)
		if c, ok := logs.(io.Closer); ok { // the verifier's goroutine
			n.store = &logStore{closers: []io.Closer{c}}
		}
	} else {
		dir := filepath.Join(n.cfg.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, nil, fmt.Errorf("create raft dir: %w", err)
		}
		store, err := openLogStore(n.cfg.LogStore, dir, n.logger)
		if err != nil {
			return nil, nil, nil, err
		}
		n.store = store
		var verified raft.LogStore
		n.verify, verified = newVerification(n, n.cfg.LogStore.Verification, store.logs)
		if vs, ok := verified.(io.Closer); ok && verified != store.logs {
			store.closers = append([]io.Closer{vs}, store.closers...)
		}
		cache, err := raft.NewLogCache(512, verified)
		if err != nil {
			n.closeStores()
			return nil, nil, nil, fmt.Errorf("create log cache: %w", err)
		}
		logs, stable = cache, store.stable
		fss, err := openSnapshots(dir, store, n.logger.Named("snapshot"))
		if err != nil {
			n.closeStores()
			return nil, nil, nil, err
		}
		snaps = fss
		n.logger.Info("opened raft store", "backend", string(store.backend), "path", store.path)
	}
	return logs, stable, snaps, nil
}

// newTransport is Raft's network transport over the configured stream.
func newTransport(cfg Config, logger hclog.Logger) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: raftAddressProvider(cfg.AddressProvider),
		Logger:                logger.Named("transport"),
		Stream:                raftStream{cfg.Stream},
		MaxPool:               3,
		Timeout:               10 * time.Second,
	})
}

// raftConfig is Raft's configuration for cfg: the timing of its
// multiplier and the settings every server shares.
func raftConfig(cfg Config, logger hclog.Logger, leaderCh chan bool) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = logger
	t := TimingFor(cfg.Multiplier)
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLease
	rc.CommitTimeout = baseCommitTimeout
	rc.NotifyCh = leaderCh
	// A server removed from the configuration while it is still running
	// stays up, so the leader's reconciler can add it back once it is alive
	// in gossip again (Consul and Nomad do the same).
	rc.ShutdownOnRemove = false
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	return rc
}
