package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/discover"
	"github.com/conclavehq/conclave/gossip"
)

// Version is the Conclave version this agent reports in its build tag.
// The command package sets it at start.
var Version = "0.1.0"

// leaveTimeout bounds a graceful leave: waiting for the leader to remove
// this server from Raft and for the gossip leave to spread.
const leaveTimeout = 10 * time.Second

// Agent is one running Conclave agent: a gossip member and, for servers, a
// Raft node with its bootstrap logic, reconciler and HTTP API.
type Agent struct {
	cfg    *config.Config
	logger hclog.Logger
	id     string

	mux      *mux
	node     *consensus.Node // nil for clients
	pool     *gossip.Pool
	boot     *bootstrapper
	recon    *reconciler
	httpLn   net.Listener
	httpSrv  *http.Server
	fwdSrv   *http.Server
	forward  *forwarder
	router   *serverRouter // how a client agent reaches the servers
	peers    *serverClient
	handler  http.Handler
	joiner   *discover.Joiner
	pilot    *pilot // nil for clients
	leaving  atomic.Bool
	started  atomic.Bool // Start has run; see notReady
	stopping atomic.Bool // Shutdown has begun
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errMu    sync.Mutex
	err      error
	shutMu   sync.Mutex
	shutdown bool
	shutCh   chan struct{}
}

// New opens the agent's storage and listeners: the node ID, Raft (servers
// only), gossip and the HTTP listener. It starts no background work; Start
// does. On error everything opened so far is closed again.
func New(cfg *config.Config, logger hclog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, logger: logger, shutCh: make(chan struct{})}
	if err := a.open(); err != nil {
		a.closeAll(false)
		return nil, err
	}
	return a, nil
}

// open does New's work; on error New closes whatever it opened.
func (a *Agent) open() (err error) {
	cfg, logger := a.cfg, a.logger
	if cfg.KVMaxValueSize == 0 { // a Config built in code rather than loaded
		cfg.KVMaxValueSize = config.DefaultKVMaxValueSize
	}

	if cfg.DevMode || cfg.DataDir == "" {
		// Dev servers and clients without a data_dir keep nothing on disk:
		// they get a fresh ID on every start.
		a.id, err = newDevID()
	} else {
		a.id, err = loadOrCreateNodeID(cfg.DataDir)
	}
	if err != nil {
		return err
	}
	tags := map[string]string{
		gossip.TagRole:    gossip.RoleClient,
		gossip.TagID:      a.id,
		gossip.TagDC:      cfg.Datacenter,
		gossip.TagVersion: Version,
	}

	a.httpLn, err = net.Listen("tcp", net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.HTTP)))
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s:%d: %w", cfg.ClientAddr, cfg.Ports.HTTP, err)
	}

	if cfg.Server {
		a.mux, err = newMux(net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Ports.Server)), cfg.AdvertiseAddr, logger)
		if err != nil {
			return err
		}
		a.node, err = consensus.New(consensus.Config{
			ID:              a.id,
			Name:            cfg.NodeName,
			Stream:          raftStream{a.mux.raft},
			DataDir:         cfg.DataDir,
			InMemory:        cfg.DevMode,
			Multiplier:      cfg.Performance.RaftMultiplier,
			AddressProvider: addrProvider{a},
			MaxValueSize:    cfg.KVMaxValueSize,
			Logger:          logger,
			LogStore:        logStoreConfig(cfg.RaftLogStore),
			OnFatal:         a.fail, // a damaged store: shut down, exit non-zero
		})
		if err != nil {
			return err
		}
		tags[gossip.TagRole] = gossip.RoleServer
		tags[gossip.TagRaftPort] = strconv.Itoa(a.mux.advertise.(*net.TCPAddr).Port)
		tags[gossip.TagHTTPPort] = strconv.Itoa(a.httpLn.Addr().(*net.TCPAddr).Port)
		if cfg.BootstrapExpect > 0 {
			tags[gossip.TagExpect] = strconv.Itoa(cfg.BootstrapExpect)
		}
		if cfg.Bootstrap {
			tags[gossip.TagBootstrap] = "1"
		}
		if a.node.HasState() {
			tags[gossip.TagRaftState] = "1"
		}
	}

	gcfg := gossip.Config{
		NodeName:      cfg.NodeName,
		NodeID:        a.id,
		BindAddr:      cfg.BindAddr,
		BindPort:      cfg.Ports.SerfLAN,
		AdvertiseAddr: cfg.AdvertiseAddr,
		Tags:          tags,
		Logger:        logger,
		Local:         isLoopback(cfg.AdvertiseAddr),
	}
	if !cfg.DevMode && cfg.DataDir != "" {
		gcfg.SnapshotDir = filepath.Join(cfg.DataDir, "serf")
	}
	if a.pool, err = gossip.New(gcfg); err != nil {
		return err
	}

	a.peers = newServerClient()
	a.router = &serverRouter{pool: a.pool, dc: cfg.Datacenter, client: a.peers}
	var rn raftNode // stays a nil interface for clients
	if a.node != nil {
		rn = a.node
	}
	a.boot = newBootstrapper(logger, a.pool, a.peers, rn, cfg.NodeName, a.id, cfg.Datacenter, cfg.BootstrapExpect, cfg.Bootstrap)
	if a.node != nil {
		a.recon = newReconciler(logger, a.node, a.pool, a.id, cfg.Datacenter)
		a.recon.tasks = append(a.recon.tasks, func(ctx context.Context) {
			reapTombstones(ctx, logger.Named("tombstones"), a.node)
		})
		a.forward = &forwarder{node: a.node, client: a.peers}
		delegate := newAutopilotDelegate(logger.Named("autopilot"), a.node, a.pool, a.id, cfg.Datacenter,
			cfg.Performance.RaftMultiplier, a.peers.fetchRaftStats)
		a.pilot = newPilot(logger, a.node, delegate)
		a.recon.tasks = append(a.recon.tasks, a.pilot.run)
	}
	if len(cfg.RetryJoin) > 0 {
		a.joiner, err = discover.NewJoiner(discover.JoinerConfig{
			Entries:     cfg.RetryJoin,
			DefaultPort: a.joinPort(),
			Interval:    cfg.RetryInterval,
			MaxAttempts: cfg.RetryMax,
			Join:        a.retryJoin,
			Logger:      logger.Named("retry_join"),
		})
		if err != nil {
			return fmt.Errorf("retry_join: %w", err)
		}
	}
	a.handler = a.routes()
	return nil
}

// Start starts the background work: the HTTP API, the Serf event loop,
// retry_join, the bootstrap loop and the leader loop. It returns at once.
func (a *Agent) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)

	a.httpSrv = &http.Server{Handler: a.handler, ReadHeaderTimeout: 10 * time.Second}
	a.goFunc(func() {
		if err := a.httpSrv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.fail(fmt.Errorf("http server: %w", err))
		}
	})
	if a.mux != nil {
		a.fwdSrv = &http.Server{Handler: a.internalRoutes(), ReadHeaderTimeout: 10 * time.Second}
		a.goFunc(a.mux.Serve)
		a.goFunc(func() { a.fwdSrv.Serve(a.mux.forward) })
	}
	a.goFunc(func() { a.eventLoop(ctx) })
	a.goFunc(func() { a.boot.Run(ctx) })
	if a.recon != nil {
		a.goFunc(func() { a.recon.Run(ctx) })
	}
	if a.joiner != nil {
		a.goFunc(func() {
			if err := a.joiner.Run(ctx); err != nil && ctx.Err() == nil {
				a.fail(err)
			}
		})
	}
	a.started.Store(true)
	a.logger.Info("agent started", "node", a.cfg.NodeName, "node_id", a.id, "server", a.cfg.Server,
		"http_addr", a.HTTPAddr(), "serf_addr", a.serfAddr(), "raft_addr", a.RaftAddr())
}

// defaultSerfPort is Consul's gossip port.
const defaultSerfPort = 8301

// joinPort is the port assumed for join and retry_join entries without
// one: this agent's own gossip port, since a pool's agents normally share
// their configuration, or 8301 when this agent picks a free port.
func (a *Agent) joinPort() int {
	if p := a.cfg.Ports.SerfLAN; p > 0 {
		return p
	}
	return defaultSerfPort
}

// join is the JoinFunc for retry_join and the join endpoint. A duplicate
// node name is fatal: retrying cannot fix it.
func (a *Agent) join(addrs []string) (int, error) {
	n, err := a.pool.Join(addrs)
	if err != nil && strings.Contains(err.Error(), gossip.ErrDuplicateName.Error()) {
		a.fail(fmt.Errorf("join refused: %w", err))
	}
	return n, err
}

// errOnlySelf fails a retry_join attempt whose entries resolved to this
// agent's own address and nothing else.
var errOnlySelf = errors.New("resolved only to this agent's own address")

// retryJoin is the JoinFunc for retry_join. It leaves this agent's own
// address out: joining oneself "succeeds" and would end the retries, so a
// pod that reads the headless Service's DNS before its peers are in it
// would stop looking and could form a pool of its own. An attempt that
// finds no one else fails and is retried, unless another agent has joined
// this one meanwhile, or this is a server configured to be alone
// (bootstrap = true), which has no one to find.
func (a *Agent) retryJoin(addrs []string) (int, error) {
	self := a.serfAddr()
	others := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		if addr != self {
			others = append(others, addr)
		}
	}
	if len(others) > 0 {
		return a.join(others)
	}
	if a.cfg.Server && (a.cfg.Bootstrap || a.cfg.BootstrapExpect == 1) {
		return 1, nil
	}
	for _, m := range a.pool.Members() {
		if m.Name != a.cfg.NodeName && m.Status == serf.StatusAlive {
			return 1, nil // another agent has joined this one meanwhile
		}
	}
	return 0, errOnlySelf
}

func (a *Agent) goFunc(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// fail records a fatal error and shuts the agent down; Err returns it.
func (a *Agent) fail(err error) {
	a.errMu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.errMu.Unlock()
	a.logger.Error("agent stopping on error", "error", err)
	go a.Shutdown()
}

// Err returns the error that stopped the agent, if one did.
func (a *Agent) Err() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.err
}

// eventLoop drains Serf's events: member changes poke the bootstrapper and
// the reconciler.
func (a *Agent) eventLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-a.pool.Events():
			switch e := e.(type) {
			case serf.MemberEvent:
				for _, m := range e.Members {
					a.logger.Debug("member event", "event", e.EventType().String(), "member", m.Name)
				}
				if a.recon != nil && e.EventType() == serf.EventMemberReap {
					a.recon.Reaped(e.Members)
				}
				a.boot.Poke()
				if a.recon != nil {
					a.recon.Poke()
				}
			}
		}
	}
}

// Leave leaves the cluster gracefully: a server is removed from the Raft
// configuration first (by itself when it is the leader, else by the leader
// once it sees the gossip leave), then the gossip leave spreads.
func (a *Agent) Leave() error {
	if !a.leaving.CompareAndSwap(false, true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	a.logger.Info("leaving cluster")
	// The last server of a cluster cannot remove itself; it just goes.
	alone := true
	if a.node != nil {
		if servers, _, err := a.node.Configuration(); err == nil {
			for _, s := range servers {
				alone = alone && s.ID == a.id
			}
		}
	}
	if a.node != nil && !alone && a.node.IsLeader() {
		if err := a.node.RemoveServer(ctx, a.id); err != nil {
			a.logger.Error("failed to remove self from raft configuration", "error", err)
		}
	}
	if err := a.pool.Leave(); err != nil {
		return fmt.Errorf("leave gossip pool: %w", err)
	}
	if a.node != nil && !alone {
		a.waitRemoved(ctx)
	}
	return nil
}

// waitRemoved waits until this server is no longer in its own Raft
// configuration, or ctx ends.
func (a *Agent) waitRemoved(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		servers, _, err := a.node.Configuration()
		if err != nil {
			return
		}
		present := false
		for _, s := range servers {
			present = present || s.ID == a.id
		}
		if !present {
			return
		}
		select {
		case <-ctx.Done():
			a.logger.Warn("timed out waiting to be removed from the raft configuration")
			return
		case <-t.C:
		}
	}
}

// Shutdown stops the agent without leaving (call Leave first for a
// graceful exit). Order: HTTP first, so clients learn at once that this
// node is going away; then the background loops; then Raft, so it stops
// replicating; then gossip, so the others see this node fail only once it
// no longer takes part in Raft. It may be called more than once.
func (a *Agent) Shutdown() error {
	a.shutMu.Lock()
	defer a.shutMu.Unlock()
	if a.shutdown {
		return nil
	}
	a.shutdown = true
	a.stopping.Store(true)
	a.logger.Info("shutting down agent")
	if a.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.httpSrv.Shutdown(ctx)
		cancel()
	}
	// A leader that stops without leaving hands leadership over while Raft
	// still runs, so the cluster need not wait an election timeout.
	a.handOffLeadership()
	if a.fwdSrv != nil {
		a.fwdSrv.Close()
	}
	if a.cancel != nil {
		a.cancel()
	}
	err := a.closeAll(!a.leaving.Load())
	a.wg.Wait()
	close(a.shutCh)
	return err
}

// announceTimeout bounds the wait for the shutdown announcement to go out.
const announceTimeout = time.Second

// closeAll closes whatever New opened. With announce, once Raft is down,
// it tells the pool at once that this member is gone, as failed, not left:
// failure detection would take seconds, and until then the others would
// keep routing to it and refuse its name at a new address.
func (a *Agent) closeAll(announce bool) error {
	var errs []error
	if a.httpLn != nil {
		a.httpLn.Close()
	}
	if a.node != nil {
		if err := a.node.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down raft: %w", err))
		}
	}
	if a.mux != nil {
		a.mux.Close()
	}
	if a.pool != nil {
		if announce {
			if err := a.pool.AnnounceFailure(announceTimeout); err != nil {
				a.logger.Warn("could not announce the shutdown to the pool", "error", err)
			}
		}
		if err := a.pool.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down gossip: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ShutdownCh is closed when the agent has shut down.
func (a *Agent) ShutdownCh() <-chan struct{} { return a.shutCh }

// HTTPAddr is the address the HTTP API listens on, with the port bound.
func (a *Agent) HTTPAddr() string { return a.httpLn.Addr().String() }

// RaftAddr is the advertised Raft address, empty for clients.
func (a *Agent) RaftAddr() string {
	if a.node == nil {
		return ""
	}
	return a.node.RaftAddr()
}

// NodeID is this agent's permanent node ID.
func (a *Agent) NodeID() string { return a.id }

func (a *Agent) serfAddr() string {
	ip, port := a.pool.Addr()
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}

// addrProvider resolves a Raft server ID to the address its gossip member
// advertises now, so a server that changed its IP stays reachable.
type addrProvider struct{ a *Agent }

func (p addrProvider) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if p.a.pool == nil {
		return "", errors.New("gossip not started")
	}
	for _, m := range p.a.pool.Members() {
		if s, ok := gossip.ParseServer(m); ok && s.ID == string(id) && m.Status != serf.StatusLeft {
			return raft.ServerAddress(s.RaftAddr()), nil
		}
	}
	return "", fmt.Errorf("no gossip member with id %s", id)
}

func isLoopback(ip string) bool {
	p := net.ParseIP(ip)
	return p != nil && p.IsLoopback()
}
