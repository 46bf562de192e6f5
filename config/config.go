package config

import (
	"os"
	"time"
)

// Config is the complete, validated configuration of one Conclave agent.
// Load builds it from defaults, then files in order, then flags.
type Config struct {
	// NodeName is the unique name of this node in the gossip pool: letters,
	// digits, '-', '_' and '.', at most 128 characters.
	// Default: the host name. Key: node_name, flag: -node.
	NodeName string

	// Datacenter is the datacenter this agent belongs to; only servers of the
	// same datacenter are counted for bootstrap. Letters, digits, '-' and
	// '_', lowercased by Validate. Default "dc1".
	// Key: datacenter, flag: -datacenter.
	Datacenter string

	// DataDir holds the node ID, Raft state and the Serf snapshot. Required
	// for servers outside dev mode. Key: data_dir, flag: -data-dir.
	DataDir string

	// Server makes this agent a Raft server; otherwise it is a client that
	// only gossips. Default false. Key: server, flag: -server.
	Server bool

	// BootstrapExpect is the number of servers to wait for before the cluster
	// bootstraps itself. 0 disables automatic bootstrap. A value of 1 is
	// turned into Bootstrap = true (with a warning) by Load.
	// Key: bootstrap_expect, flag: -bootstrap-expect.
	BootstrapExpect int

	// Bootstrap makes a single server bootstrap itself at once, on an empty
	// data_dir only. Key: bootstrap, flag: -bootstrap.
	Bootstrap bool

	// BindAddr is the address gossip and Raft listen on. Accepts go-sockaddr
	// templates; resolved by Load. Default "0.0.0.0". Key: bind_addr, flag: -bind.
	BindAddr string

	// AdvertiseAddr is the address other nodes use to reach this one. Accepts
	// go-sockaddr templates; resolved by Load. Default: BindAddr, or the
	// private IP when BindAddr is unspecified (0.0.0.0 / ::).
	// Key: advertise_addr, flag: -advertise.
	AdvertiseAddr string

	// ClientAddr is the address the HTTP API listens on. Accepts go-sockaddr
	// templates. Default "127.0.0.1". Key: client_addr, flag: -client.
	ClientAddr string

	// Ports are the listening ports.
	Ports Ports

	// RetryJoin lists addresses, DNS names or go-discover strings to join at
	// start, retried until one succeeds. A later file, or the flags, replace
	// the list rather than append to it. Key: retry_join, flag: -retry-join.
	RetryJoin []string

	// RetryInterval is the time between join attempts. Default 30s.
	// Key: retry_interval, flag: -retry-interval.
	RetryInterval time.Duration

	// RetryMax is the number of failed join attempts after which the agent
	// exits; 0 retries forever. Key: retry_max, flag: -retry-max.
	RetryMax int

	// LeaveOnTerminate makes SIGTERM leave the pool gracefully. Default false.
	// Key: leave_on_terminate.
	LeaveOnTerminate bool

	// SkipLeaveOnInterrupt makes SIGINT shut down without leaving. Default
	// true for servers, false for clients (Consul's defaults).
	// Key: skip_leave_on_interrupt.
	SkipLeaveOnInterrupt bool

	// LogLevel is one of trace, debug, info, warn, error, in any case;
	// Validate lowercases it. Default "info". Key: log_level, flag: -log-level.
	LogLevel string

	// LogJSON writes logs as JSON. Key: log_json, flag: -log-json.
	LogJSON bool

	// Performance tunes Raft timing.
	Performance Performance

	// TLS holds the certificates and the verification settings of the
	// server port and of the HTTPS listener. Key: tls.
	TLS TLS

	// Encrypt is the gossip encryption key: the base64 of encrypt, decoded,
	// 16, 24 or 32 bytes. It seeds the keyring file on the first start;
	// once data_dir/serf/local.keyring exists, that file wins. Empty: gossip
	// is not encrypted (unless a keyring file exists). It prints as
	// "[redacted]". Key: encrypt.
	Encrypt GossipKey

	// EncryptVerifyIncoming refuses gossip that is not encrypted, and
	// EncryptVerifyOutgoing encrypts the gossip this agent sends, when
	// there is a key. Both default to true; set them to false, then back,
	// with rolling restarts, to turn encryption on in a running cluster.
	// Keys: encrypt_verify_incoming, encrypt_verify_outgoing.
	EncryptVerifyIncoming bool
	EncryptVerifyOutgoing bool

	// DisableKeyringFile keeps the gossip keyring in memory only: encrypt
	// is the key on every start and keyring changes are lost on restart.
	// Default false. Key: disable_keyring_file.
	DisableKeyringFile bool

	// KVMaxValueSize is the largest value, in bytes, a key/value write may
	// carry; larger ones are refused with 413. Default 524288 (512 KiB),
	// range 1 to 64 MiB. Keys: kv_max_value_size, or Consul's
	// limits.kv_max_value_size.
	KVMaxValueSize int

	// Limits bound what one client may cost the agent. Key: limits.
	Limits Limits

	// EnableDebug serves Go's runtime profiles (net/http/pprof) on the
	// HTTP API under /debug/pprof/, as Consul's enable_debug does. Anyone
	// who can reach the HTTP API can then read them, so leave it off
	// unless you are profiling. Default false.
	// Key: enable_debug, flag: -enable-debug.
	EnableDebug bool

	// RaftLogStore selects and checks the store of the Raft log (Consul's
	// raft_logstore). Servers only; dev mode keeps Raft in memory.
	RaftLogStore RaftLogStore

	// DevMode runs one server with in-memory Raft and no data_dir. Flag: -dev.
	DevMode bool
}

// RaftLogStore is the raft_logstore block.
type RaftLogStore struct {
	// Backend is "wal" (hashicorp/raft-wal, data_dir/raft/wal) or "boltdb"
	// (raft-boltdb, data_dir/raft/raft.db). Default "": the backend the
	// data_dir was created with, and "wal" for a new data_dir. When set it
	// must match an existing data_dir: the agent refuses to start rather
	// than begin a second, empty log. Key: raft_logstore.backend.
	Backend string

	// Verification runs Consul's log verification.
	Verification LogVerification

	// WAL tunes the wal backend.
	WAL WALStore
}

// LogVerification is the raft_logstore.verification block: the leader
// appends a checkpoint every Interval and every server checks that its
// store returns the entries since the last one as the leader wrote them. A
// server that fails a check logs it and stops, and does not start again
// until an operator acts.
type LogVerification struct {
	// Enabled turns verification on. Default false.
	// Key: raft_logstore.verification.enabled.
	Enabled bool
	// Interval is the time between checkpoints. Default 60s; must be
	// positive. Key: raft_logstore.verification.interval.
	Interval time.Duration
}

// WALStore is the raft_logstore.wal block.
type WALStore struct {
	// SegmentSizeMB is the size, in MiB, of each wal segment file. Each
	// file is preallocated at this size when it is created, so an idle
	// server already uses this much disk. Range 1 to 1024, default 64
	// (Consul's). Key: raft_logstore.wal.segment_size_mb.
	SegmentSizeMB int
}

// Raft log store defaults and limits.
const (
	DefaultLogVerificationInterval = 60 * time.Second
	DefaultWALSegmentSizeMB        = 64
	MaxWALSegmentSizeMB            = 1024
)

// Ports are the ports the agent listens on.
type Ports struct {
	// HTTP is the HTTP API port, or -1 to serve no plain HTTP. Default
	// 8500. Key: ports.http, flag: -http-port.
	HTTP int
	// HTTPS is the port of the HTTP API over TLS, on client_addr, or -1 for
	// none. It needs a certificate (tls.https or tls.defaults). Default -1;
	// Consul's usual value is 8501. Key: ports.https.
	HTTPS int
	// SerfLAN is the gossip port (TCP and UDP). Default 8301.
	// Key: ports.serf_lan, flag: -serf-lan-port.
	SerfLAN int
	// Server is the Raft RPC port. Default 8300. Key: ports.server, flag: -server-port.
	Server int
}

// Performance holds the knobs that trade speed against stability.
type Performance struct {
	// RaftMultiplier scales every Raft timeout. 1 is the tightest timing,
	// suitable for a quiet LAN; higher values tolerate slow or busy hosts.
	// Range 1 to 10. Default 2 (DefaultRaftMultiplier).
	// Key: performance.raft_multiplier.
	RaftMultiplier int
}

// DefaultRaftMultiplier is the raft_multiplier used when none is configured.
const DefaultRaftMultiplier = 2

// DefaultSerfLANPort is the gossip port (ports.serf_lan) when none is
// configured, Consul's 8301. It is the one home of the number: discover
// takes the port from its caller, and the agent and `conclave operator
// discover` pass this one when they have no other.
const DefaultSerfLANPort = 8301

// DefaultKVMaxValueSize is the kv_max_value_size used when none is
// configured, and MaxKVMaxValueSize its upper bound. This is the one home
// of the default: consensus takes the limit from its caller.
const (
	DefaultKVMaxValueSize = 512 << 10
	MaxKVMaxValueSize     = 64 << 20
)

// Default returns the configuration of a client agent before any file or
// flag is applied. AdvertiseAddr is left empty: Validate derives it from
// BindAddr. NodeName is the host name, or empty if that cannot be found, in
// which case Validate asks for one.
func Default() *Config {
	hostname, _ := os.Hostname()
	return &Config{
		NodeName:   hostname,
		Datacenter: "dc1",
		BindAddr:   "0.0.0.0",
		ClientAddr: "127.0.0.1",
		Ports: Ports{
			HTTP:    8500,
			HTTPS:   -1,
			SerfLAN: DefaultSerfLANPort,
			Server:  8300,
		},
		TLS: TLS{
			InternalRPC: defaultTLSConfig(),
			HTTPS:       defaultTLSConfig(),
		},
		RetryInterval:  30 * time.Second,
		LogLevel:       "info",
		KVMaxValueSize: DefaultKVMaxValueSize,
		Limits: Limits{
			HTTPMaxConnsPerClient: DefaultHTTPMaxConnsPerClient,
			TxnMaxReqLen:          DefaultTxnMaxReqLen,
		},
		EncryptVerifyIncoming: true,
		EncryptVerifyOutgoing: true,
		Performance: Performance{
			RaftMultiplier: DefaultRaftMultiplier,
		},
		RaftLogStore: RaftLogStore{
			Verification: LogVerification{Interval: DefaultLogVerificationInterval},
			WAL:          WALStore{SegmentSizeMB: DefaultWALSegmentSizeMB},
		},
	}
}

// Dev returns the configuration of dev mode: a single server that
// bootstraps itself at once, keeps Raft in memory, needs no data_dir and
// listens on 127.0.0.1 only. Load starts from it when -dev is given.
func Dev() *Config {
	c := Default()
	c.DevMode = true
	c.Server = true
	c.Bootstrap = true
	c.SkipLeaveOnInterrupt = true
	c.BindAddr = "127.0.0.1"
	c.AdvertiseAddr = "127.0.0.1"
	c.ClientAddr = "127.0.0.1"
	return c
}
