package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/agent/httpapi"
	"github.com/conclavehq/conclave/agent/serverport"
	"github.com/conclavehq/conclave/agent/tlsutil"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/discover"
	"github.com/conclavehq/conclave/gossip"
)

// Options are what New builds an agent from.
type Options struct {
	// Config is the agent's validated configuration (config.Load builds
	// it). Required.
	Config *config.Config
	// Logger is the root logger; each part logs under its own name.
	// Required.
	Logger hclog.Logger
	// Version is the Conclave version the agent reports in its build tag
	// and in /v1/agent/self.
	Version string
	// FSM is an embedding application's own replicated state machine,
	// which the servers run instead of the key/value store: its commands
	// go through Node().ApplyBytes. The API then serves no key/value,
	// transaction or snapshot routes, and the leader reaps no tombstones.
	// Optional; nil runs the key/value store (conclave agent).
	FSM consensus.StateMachine
	// Routes are the application's own HTTP routes, served on the HTTP
	// API next to Conclave's, behind the same placement: a Leader route
	// that reaches a follower is forwarded to the leader. Optional; New
	// fails for a route httpapi.CheckRoutes refuses.
	Routes []httpapi.Route
	// Reload, if set, is what Agent.Reload runs before reloading the TLS
	// files: the command re-reads the configuration files and applies the
	// log level. Its error is reported, and the rest is reloaded anyway.
	Reload func() error
}

// Agent is one running Conclave agent: a gossip member and, for servers, a
// Raft node with its bootstrap logic, reconciler and HTTP API.
type Agent struct {
	cfg     *config.Config
	logger  hclog.Logger
	version string
	fsm     consensus.StateMachine // nil: the key/value store
	routes  []httpapi.Route
	id      string

	fileClusterID string       // data_dir/cluster-id at start, "" when absent
	clusterID     atomic.Value // string: the cluster's ID as this server knows it

	http   httpapi.Listeners // the HTTP API's, HTTP and HTTPS
	mux    *serverport.Mux   // nil for clients
	node   *consensus.Node   // nil for clients
	pool   *gossip.Pool
	peers  *serverport.Client
	boot   *cluster.Bootstrapper
	recon  *cluster.Reconciler  // nil for clients
	pilot  *consensus.Autopilot // nil for clients
	sess   *cluster.SessionDuty // nil for clients
	joiner *discover.Joiner     // nil without retry_join
	api    *httpapi.Service

	// TLS (tls.go).
	rpcTLS       *tlsutil.Configurator // nil: the server port is plain TCP
	httpsTLS     *tlsutil.Configurator // nil without ports.https
	reloadConfig func() error          // Options.Reload

	httpSrv *http.Server
	fwdSrv  *http.Server

	leaving  atomic.Bool
	started  atomic.Bool // Start has run; see NotReady
	stopping atomic.Bool // Shutdown has begun
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errMu    sync.Mutex
	err      error
	shutMu   sync.Mutex
	shutdown bool
	shutCh   chan struct{}
}

// New opens the agent's storage and listeners, in this order: the node ID,
// the HTTP listener, the server port and Raft (servers only), gossip, then
// the parts that use them. It starts no background work; Start does. On
// error everything opened so far is closed again, so a failed start leaks
// no listener.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil {
		return nil, errors.New("agent: missing config")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if err := httpapi.CheckRoutes(opts.Routes); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a := &Agent{
		cfg: opts.Config, logger: opts.Logger, version: opts.Version, reloadConfig: opts.Reload,
		fsm: opts.FSM, routes: opts.Routes, shutCh: make(chan struct{}),
	}
	for _, open := range []func() error{a.openNodeID, a.openTLS, a.openHTTP, a.openServerPort, a.openConsensus, a.openClusterID, a.openGossip, a.openCluster} {
		if err := open(); err != nil {
			a.closeAll(false)
			return nil, err
		}
	}
	return a, nil
}

// openNodeID loads the permanent node ID, or makes one.
func (a *Agent) openNodeID() (err error) {
	if a.cfg.DevMode || a.cfg.DataDir == "" {
		// Dev servers and clients without a data_dir keep nothing on disk:
		// they get a fresh ID on every start.
		a.id = uuid.NewString()
	} else {
		a.id, err = cluster.LoadOrCreateNodeID(a.cfg.DataDir)
	}
	return err
}

// openHTTP binds the HTTP API's listeners on client_addr: plain HTTP
// unless ports.http is -1, and HTTPS with httpsTLS (see tls.go); Start
// serves them.
func (a *Agent) openHTTP() (err error) {
	a.http, err = httpapi.Listen(a.cfg.ClientAddr, a.cfg.Ports.HTTP, a.cfg.Ports.HTTPS, a.httpsTLS)
	return err
}

// openServerPort binds a server's server port: Raft and the internal
// HTTP channel share it.
func (a *Agent) openServerPort() (err error) {
	a.peers = serverport.NewTLSClient(a.rpcTLS)
	if !a.cfg.Server {
		return nil
	}
	bind := net.JoinHostPort(a.cfg.BindAddr, strconv.Itoa(a.cfg.Ports.Server))
	a.mux, err = serverport.Listen(bind, a.cfg.AdvertiseAddr, a.rpcTLS, a.logger)
	return err
}

// openConsensus opens a server's Raft, on the server port.
func (a *Agent) openConsensus() (err error) {
	if !a.cfg.Server {
		return nil
	}
	cfg := a.cfg
	a.node, err = consensus.New(consensus.Config{
		ID:              a.id,
		Name:            cfg.NodeName,
		Stream:          a.mux.Raft(),
		DataDir:         cfg.DataDir,
		InMemory:        cfg.DevMode,
		Multiplier:      cfg.Performance.RaftMultiplier,
		AddressProvider: addrProvider{a},
		MaxValueSize:    cmp.Or(cfg.KVMaxValueSize, config.DefaultKVMaxValueSize), // 0: a Config built by hand
		FSM:             a.fsm,
		Logger:          a.logger,
		LogStore:        logStoreConfig(cfg.RaftLogStore),
		OnFatal:         a.fail, // a damaged store: shut down, exit non-zero
	})
	return err
}

// logStoreConfig turns the raft_logstore block into consensus's terms.
func logStoreConfig(c config.RaftLogStore) consensus.LogStoreConfig {
	return consensus.LogStoreConfig{
		Backend:        consensus.Backend(c.Backend),
		WALSegmentSize: c.WAL.SegmentSizeMB << 20,
		Verification: consensus.VerificationConfig{
			Enabled:  c.Verification.Enabled,
			Interval: c.Verification.Interval,
		},
	}
}

// openGossip joins nothing yet: it starts this agent's gossip member with
// the tags that say who it is.
func (a *Agent) openGossip() (err error) {
	cfg := a.cfg
	gcfg := gossip.Config{
		NodeName:      cfg.NodeName,
		NodeID:        a.id,
		BindAddr:      cfg.BindAddr,
		BindPort:      cfg.Ports.SerfLAN,
		AdvertiseAddr: cfg.AdvertiseAddr,
		Tags:          a.tags(),
		Logger:        a.logger,
		Local:         isLoopback(cfg.AdvertiseAddr),
	}
	if !cfg.DevMode && cfg.DataDir != "" {
		gcfg.SnapshotDir = filepath.Join(cfg.DataDir, "serf")
	}
	gcfg.Encryption = gossip.Encryption{
		Key:             cfg.Encrypt,
		AcceptPlaintext: !cfg.EncryptVerifyIncoming,
		SendPlaintext:   !cfg.EncryptVerifyOutgoing,
	}
	if gcfg.SnapshotDir != "" && !cfg.DisableKeyringFile {
		gcfg.Encryption.KeyringFile = filepath.Join(gcfg.SnapshotDir, gossip.KeyringFileName)
	}
	a.pool, err = gossip.New(gcfg)
	return err
}

// tags are this agent's gossip tags (see gossip/DESIGN.md).
func (a *Agent) tags() map[string]string {
	cfg := a.cfg
	t := gossip.LocalTags{ID: a.id, Datacenter: cfg.Datacenter, Version: a.version}
	if a.node != nil {
		t.Server, t.RaftPort, t.HTTPPort = true, a.mux.Advertise().Port, a.http.Port()
		t.Expect, t.Bootstrap, t.HasState = cfg.BootstrapExpect, cfg.Bootstrap, a.node.HasState()
		t.ClusterID = a.ClusterID()
	}
	return t.Map()
}

// openCluster builds what runs on top of gossip and Raft: the
// bootstrapper, the leader's duties, retry_join and the HTTP API. It opens
// nothing that needs closing.
func (a *Agent) openCluster() error {
	cfg, logger := a.cfg, a.logger
	boot := cluster.BootstrapConfig{
		Logger: logger, Pool: a.pool, Peers: a.peers,
		Name: cfg.NodeName, ID: a.id, Datacenter: cfg.Datacenter,
		Expect: cfg.BootstrapExpect, Single: cfg.Bootstrap,
	}
	if a.node != nil { // a nil *Node must not become a non-nil interface
		boot.Node = a.node
		var reconOpts []cluster.ReconcilerOption
		if a.fsm == nil {
			// The cluster ID lives in the key/value store's tables: an
			// application's state machine has none, so its leader could
			// admit no one by it.
			reconOpts = append(reconOpts, cluster.WithIdentity(a.identity, a.probeIdentity))
		}
		a.recon = cluster.NewReconciler(logger, a.node, a.pool, a.id, cfg.Datacenter, reconOpts...)
		delegate := cluster.NewAutopilotDelegate(logger.Named("autopilot"), a.node.RaftStats, a.pool, a.id, cfg.Datacenter, a.fetchRaftStats)
		a.pilot = consensus.NewAutopilot(a.node, consensus.AutopilotOptions{
			Delegate: delegate, Multiplier: cfg.Performance.RaftMultiplier, Logger: logger.Named("autopilot"),
			Stored: func() (consensus.AutopilotConfig, bool) { return a.node.View().AutopilotConfig() },
		})
		a.sess = cluster.NewSessionDuty(logger, a.node, a.pool)
	}
	a.boot = cluster.NewBootstrapper(boot)
	if len(cfg.RetryJoin) > 0 {
		var err error
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
	a.api = httpapi.New(a.apiConfig())
	return nil
}

// apiConfig tells the HTTP API what it serves from.
func (a *Agent) apiConfig() httpapi.Config {
	cfg := a.cfg
	c := httpapi.Config{
		Name: cfg.NodeName, ID: a.id, Datacenter: cfg.Datacenter, Version: a.version, DataDir: cfg.DataDir,
		Server: cfg.Server, BootstrapExpect: cfg.BootstrapExpect, BootstrapMode: cfg.Bootstrap, EnableDebug: cfg.EnableDebug,
		RaftMultiplier: cfg.Performance.RaftMultiplier, JoinPort: a.joinPort(), HTTPSAddr: a.HTTPSAddr(),
		Logger: a.logger,
		Agent:  apiAgent{a}, Pool: a.pool, Bootstrap: a.boot, Reloader: a, Identity: a.identity,
		Router: serverport.NewRouter(a.pool, cfg.Datacenter, a.peers),
		Routes: a.routes, NoKV: a.fsm != nil,
	}
	c.Keyring = a.pool
	if sinks, ok := a.logger.(hclog.InterceptLogger); ok {
		c.Logs = sinks
	}
	if a.node != nil {
		c.Store, c.Autopilot, c.Peers = a.node, a.pilot, a.peers
		c.Sessions = a.sess
		c.Leader = serverport.NewForwarder(a.node, a.peers)
	}
	return c
}

// fetchRaftStats asks the server whose server port is at addr for its
// Raft stats, for the leader's autopilot.
func (a *Agent) fetchRaftStats(ctx context.Context, addr string) (consensus.RaftStats, error) {
	var out consensus.RaftStats
	err := a.peers.Get(ctx, addr, cluster.RaftStatsPath, &out)
	return out, err
}

// Start starts the background work: the HTTP API, the server port, the
// gossip event loop, the bootstrap loop, the leader's duties and
// retry_join. It returns at once.
func (a *Agent) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.httpSrv = a.api.PublicServer()
	a.httpSrv.RegisterOnShutdown(a.api.Close) // ends the monitor streams
	for _, ln := range a.http.All() {
		a.goFunc(func() {
			if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.fail(fmt.Errorf("http server: %w", err))
			}
		})
	}
	if a.mux != nil {
		// Only servers of this datacenter may claim a bootstrap, answer for
		// Raft stats, or send a follower's forwarded request (ServersOnly,
		// with verify_server_hostname).
		internal := a.mux.ServersOnly(a.api.Internal(), cluster.ClaimPath, cluster.ReleasePath, cluster.RaftStatsPath)
		a.fwdSrv = a.api.InternalServer(internal)
		a.goFunc(a.mux.Serve)
		a.goFunc(func() { a.fwdSrv.Serve(a.mux.Internal()) })
	}
	a.goFunc(func() { a.eventLoop(ctx) })
	a.goFunc(func() { a.boot.Run(ctx) })
	if a.node != nil {
		a.goFunc(func() { a.runLeader(ctx) })
		a.goFunc(func() { a.watchClusterID(ctx) })
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
		"http_addr", a.HTTPAddr(), "https_addr", a.HTTPSAddr(), "serf_addr", a.serfAddr(), "raft_addr", a.RaftAddr())
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

// ShutdownCh is closed when the agent has shut down.
func (a *Agent) ShutdownCh() <-chan struct{} { return a.shutCh }

// HTTPAddr is the address the plain HTTP API listens on, with the port
// bound, or "" with ports.http = -1.
func (a *Agent) HTTPAddr() string { return a.http.HTTPAddr() }

// RaftAddr is the advertised Raft address, empty for clients.
func (a *Agent) RaftAddr() string {
	if a.node == nil {
		return ""
	}
	return a.node.RaftAddr()
}

// Node is this server's Raft node, through which an embedding application
// applies its commands (ApplyBytes), and asks IsLeader, Leader,
// AppliedIndex or Barrier. It is nil on a client agent.
func (a *Agent) Node() *consensus.Node { return a.node }

// NodeID is this agent's permanent node ID.
func (a *Agent) NodeID() string { return a.id }

func isLoopback(ip string) bool {
	p := net.ParseIP(ip)
	return p != nil && p.IsLoopback()
}
