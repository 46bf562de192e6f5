package httpapi

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/cluster"
	"github.com/conclavehq/conclave/consensus"
	"github.com/conclavehq/conclave/gossip"
)

// Store is the part of consensus.Node the API uses.
type Store interface {
	Leader() (addr, id string)
	IsLeader() bool
	State() consensus.State
	LastContact() time.Time
	VerifyLeader(ctx context.Context) error
	Stats() map[string]string
	RaftStats() consensus.RaftStats
	RaftAddr() string
	Configuration() ([]consensus.Server, uint64, error)
	RemoveServer(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context, id, addr string) error

	View() consensus.View
	WaitKey(ctx context.Context, key string, minIndex uint64) (consensus.View, error)
	WaitPrefix(ctx context.Context, prefix string, minIndex uint64) (consensus.View, error)
	WaitSessions(ctx context.Context, minIndex uint64) (consensus.View, error)
	Apply(ctx context.Context, cmd consensus.Command) (consensus.Result, error)
	AppliedIndex() uint64
	MaxValueSize() int
	SaveSnapshot(w io.Writer) (consensus.SnapshotInfo, error)
	RestoreSnapshot(ctx context.Context, r io.Reader) (consensus.SnapshotInfo, error)
	SaveArchive(w io.Writer) (consensus.SnapshotInfo, error)
	RestoreArchive(ctx context.Context, r io.Reader) (consensus.SnapshotInfo, error)
}

// Pool is the part of gossip.Pool the API uses.
type Pool interface {
	Members() []gossip.Member
	LocalMember() gossip.Member
	Stats() map[string]string
	ForceLeave(node string) error
}

// Agent is what the API asks of the agent that runs it.
type Agent interface {
	// Join joins the gossip pool at addrs (host:port).
	Join(addrs []string) (int, error)
	// Leave leaves the cluster gracefully; Shutdown stops the agent.
	Leave() error
	Shutdown() error
	// NotReady says why the agent is not ready, or "" when it is.
	NotReady() string
	// HTTPAddr is the address the HTTP API listens on.
	HTTPAddr() string
}

// Bootstrap is the part of cluster.Bootstrapper the API uses.
type Bootstrap interface {
	Status() api.BootstrapStatus
	Answer(c cluster.Claim) cluster.ClaimAnswer
	Release(c cluster.Claim)
}

// Autopilot is the leader's view of the servers' health.
type Autopilot interface {
	State() *consensus.AutopilotState
}

// Forwarder sends a request to another agent and copies its answer; on
// error it has written nothing. serverport.Forwarder and serverport.Router
// implement it.
type Forwarder interface {
	Forward(w http.ResponseWriter, r *http.Request) error
}

// Sender sends a request to a server port (serverport.Client).
type Sender interface {
	Send(req *http.Request) (*http.Response, error)
}

// Config configures a Service. The interfaces that only servers have are
// nil on a client agent.
type Config struct {
	// Name, ID, Datacenter, Version and DataDir describe this agent for
	// /v1/agent/self and the health checks.
	Name, ID, Datacenter, Version, DataDir string
	// Server is true on a server; BootstrapExpect is its bootstrap_expect.
	Server          bool
	BootstrapExpect int
	// BootstrapMode is the server's bootstrap = true, reported as
	// consul.bootstrap in /v1/agent/self.
	BootstrapMode bool
	// EnableDebug serves Go's profiles under /debug/pprof/.
	EnableDebug bool
	// RaftMultiplier sets the rollout gate's last-contact threshold.
	RaftMultiplier int
	// JoinPort is the gossip port assumed for a join address without one.
	JoinPort int
	// Limits bound request bodies and connections (limits.go).
	Limits Limits
	// HTTPSAddr is the address of the HTTPS API, shown in /v1/agent/self;
	// "" without ports.https.
	HTTPSAddr string
	// Logger is the parent logger. Required.
	Logger hclog.Logger
	// Logs is the agent's root logger as an hclog.InterceptLogger, whose
	// lines /v1/agent/monitor streams; nil answers the monitor with 500.
	Logs LogSinks

	Agent     Agent
	Pool      Pool
	Bootstrap Bootstrap
	// Reloader answers PUT /v1/agent/reload.
	Reloader Reloader
	// Identity is this agent's node ID, cluster ID, datacenter and Raft
	// state, for the server port's identity route, /v1/agent/self and
	// /v1/operator/bootstrap. Nil answers ID and Datacenter, with no
	// cluster ID.
	Identity func() cluster.Identity
	// Router sends a client agent's server requests to a server.
	Router Forwarder
	// Keyring manages the gossip pool's encryption keys.
	Keyring Keyring

	// Store is this server's Raft and state machine; nil on a client.
	Store Store
	// Leader forwards to the leader; nil on a client.
	Leader Forwarder
	// Autopilot is the leader's health view; nil on a client.
	Autopilot Autopilot
	// Peers asks the leader for its health view; nil on a client.
	Peers Sender
	// Sessions is the leader's set of session TTL timers; nil on a client.
	Sessions SessionTimers

	// Routes are an embedding application's own routes (see Route and
	// CheckRoutes), served next to the API's. Optional.
	Routes []Route
	// NoKV leaves out the key/value, transaction and snapshot routes: the
	// servers run an application's state machine, not the key/value
	// store.
	NoKV bool
}

// Service is the HTTP API of one agent: Public serves the HTTP port,
// Internal the server port's HTTP channel.
type Service struct {
	cfg    Config
	store  Store // nil on a client
	logger hclog.Logger
	disc   *discoverer

	// closed is closed by Close, which ends the streaming handlers.
	closed    chan struct{}
	closeOnce sync.Once
}

// New returns the API of the agent cfg describes.
func New(cfg Config) *Service {
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Identity == nil {
		id, dc := cfg.ID, cfg.Datacenter
		cfg.Identity = func() cluster.Identity { return cluster.Identity{NodeID: id, Datacenter: dc} }
	}
	return &Service{
		cfg: cfg, store: cfg.Store, logger: cfg.Logger, disc: newDiscoverer(cfg.Logger.Named("discover")),
		closed: make(chan struct{}),
	}
}
