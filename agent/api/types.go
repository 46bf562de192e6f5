// Package api holds the JSON wire types of Conclave's HTTP API and a thin
// client for it. The shapes follow Consul's HTTP API so that Consul's own
// clients and scripts work unchanged.
package api

import "time"

// Member is one gossip pool member, as GET /v1/agent/members returns it.
// Status is Serf's numeric member status (see the MemberStatus constants).
type Member struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

// Serf member status values, as they appear in Member.Status.
const (
	MemberStatusNone    = 0
	MemberStatusAlive   = 1
	MemberStatusLeaving = 2
	MemberStatusLeft    = 3
	MemberStatusFailed  = 4
)

// MemberStatusString returns the human name of a Serf member status.
func MemberStatusString(s int) string {
	switch s {
	case MemberStatusAlive:
		return "alive"
	case MemberStatusLeaving:
		return "leaving"
	case MemberStatusLeft:
		return "left"
	case MemberStatusFailed:
		return "failed"
	default:
		return "none"
	}
}

// Member tag keys set by Conclave agents.
const (
	TagRole      = "role"       // RoleServer or RoleClient (Consul's values)
	TagID        = "id"         // node ID (UUID), the Raft server ID
	TagDC        = "dc"         // datacenter
	TagRaftPort  = "port"       // Raft RPC port
	TagHTTPPort  = "http_port"  // HTTP API port
	TagExpect    = "expect"     // bootstrap_expect, absent when 0
	TagVersion   = "build"      // Conclave version
	TagRaftState = "raft_state" // "1" when the server has Raft state
	TagBootstrap = "bootstrap"  // "1" when bootstrap = true
	TagProtocol  = "vsn"        // agent protocol version, Consul's
)

// Role tag values, Consul's: a server is "consul", a client agent "node".
// Servers of Conclave releases before these said "server".
const (
	RoleServer       = "consul"
	RoleClient       = "node"
	RoleLegacyServer = "server"
)

// MemberType is a member's type as Consul's members command prints it:
// "server" for a server, "client" for a client agent, "unknown" otherwise.
func MemberType(m *Member) string {
	switch m.Tags[TagRole] {
	case RoleServer, RoleLegacyServer:
		return "server"
	case RoleClient, "client":
		return "client"
	}
	return "unknown"
}

// RaftServer is one server in the Raft configuration.
type RaftServer struct {
	ID              string
	Node            string
	Address         string
	Leader          bool
	Voter           bool
	ProtocolVersion string
	// LastIndex is the server's last log index in the leader's autopilot
	// view, as Consul reports it; 0 when the answer came from a server
	// that is not the leader (?stale) or before the view's first round.
	LastIndex uint64
}

// RaftConfiguration is the answer of GET /v1/operator/raft/configuration.
type RaftConfiguration struct {
	Servers []*RaftServer
	Index   uint64
}

// Bootstrap states reported by GET /v1/operator/bootstrap.
const (
	BootstrapWaiting       = "waiting"        // waiting for bootstrap_expect servers
	BootstrapBootstrapped  = "bootstrapped"   // this cluster was bootstrapped (see By, At)
	BootstrapJoined        = "joined"         // this server joined an existing cluster
	BootstrapExistingState = "existing-state" // this server restarted with Raft state
	BootstrapDisabled      = "disabled"       // client, or server without bootstrap_expect
)

// BootstrapStatus is the answer of GET /v1/operator/bootstrap: why there is,
// or is not yet, a cluster.
type BootstrapStatus struct {
	// State is one of the Bootstrap* constants.
	State string
	// Expect is the configured bootstrap_expect (0 when disabled).
	Expect int
	// Seen lists the names of the alive servers this node counts, sorted.
	Seen []string
	// By is the name of the server that bootstrapped the cluster, when known.
	By string `json:",omitempty"`
	// At is when the cluster was bootstrapped, when known.
	At *time.Time `json:",omitempty"`
	// Reason explains the state in one line, for example what bootstrap is
	// waiting for or which peer blocks it.
	Reason string
	// ClusterID is the ID of the cluster this server belongs to, when it
	// knows one.
	ClusterID string `json:",omitempty"`
}

// Self is the answer of GET /v1/agent/self.
type Self struct {
	Config SelfConfig
	Member Member
	Stats  map[string]map[string]string
}

// SelfConfig is the part of the configuration /v1/agent/self reports.
type SelfConfig struct {
	Datacenter      string
	NodeName        string
	NodeID          string
	Server          bool
	Version         string
	BootstrapExpect int
	DataDir         string
	// ClusterID is the ID of the cluster this server belongs to; empty on
	// a client and on a server that knows none yet.
	ClusterID string
}

// KVPair is one key/value entry, as GET /v1/kv/<key> returns it in a JSON
// array. Value travels as base64 in JSON; encoding/json does that for a
// []byte. An empty value arrives as null and decodes to nil.
type KVPair struct {
	// Key is the full key, without a leading "/".
	Key string
	// CreateIndex is the Raft index at which the key was created.
	CreateIndex uint64
	// ModifyIndex is the Raft index of the last write to the key. Give it
	// back as KVPair.ModifyIndex to KVCAS or KVDeleteCAS, or as
	// QueryOptions.WaitIndex to wait for the next change.
	ModifyIndex uint64
	// LockIndex counts the lock acquisitions of the key (Consul sessions).
	LockIndex uint64
	// Flags is an opaque number the writer stores with the value.
	Flags uint64
	// Value is the stored value, possibly binary.
	Value []byte
	// Session is the ID of the session holding the key's lock, if any.
	Session string `json:",omitempty"`
}

// QueryOptions are the read options of Consul's query API. A nil
// *QueryOptions means the defaults: a read answered by the leader, not
// blocking.
type QueryOptions struct {
	// Stale lets any server answer from its own state (?stale), which works
	// without a leader but may be out of date. See QueryMeta.LastContact.
	Stale bool
	// Consistent makes the leader confirm with a quorum that it still leads
	// before it answers (?consistent). It cannot be combined with Stale.
	Consistent bool
	// WaitIndex, when not 0, makes the read a blocking query (?index): the
	// agent answers once the index of what was read is past WaitIndex, or
	// when WaitTime has passed. Use QueryMeta.LastIndex of a previous read.
	WaitIndex uint64
	// WaitTime bounds a blocking query (?wait). 0 means the agent's default
	// (5 minutes, as in Consul); the agent caps it at 10 minutes. The client
	// waits that long plus a margin before it gives up.
	WaitTime time.Duration
}

// QueryMeta is what the agent says about a read in its X-Consul-* answer
// headers.
type QueryMeta struct {
	// LastIndex is X-Consul-Index: the index at which what was read last
	// changed. Pass it as QueryOptions.WaitIndex to block for the next
	// change.
	LastIndex uint64
	// KnownLeader is X-Consul-KnownLeader: whether the answering server knew
	// of a leader.
	KnownLeader bool
	// LastContact is X-Consul-LastContact: for a stale read, how long ago
	// the answering server last heard from the leader (0 on the leader). It
	// is negative when the agent reports that it has never heard from one.
	LastContact time.Duration
}

// KVOp is the verb of a KV operation in a transaction (KVTxnOp.Verb).
type KVOp string

// The KV verbs of Consul's transaction API that Conclave accepts (all of
// Consul's but get-or-empty).
const (
	// KVOpSet sets Key to Value and Flags.
	KVOpSet KVOp = "set"
	// KVOpCAS sets Key if its ModifyIndex is Index (0: if it does not exist).
	KVOpCAS KVOp = "cas"
	// KVOpGet reads Key; the transaction fails if it does not exist.
	KVOpGet KVOp = "get"
	// KVOpGetTree reads every key under the prefix Key.
	KVOpGetTree KVOp = "get-tree"
	// KVOpCheckIndex fails the transaction unless Key's ModifyIndex is Index.
	KVOpCheckIndex KVOp = "check-index"
	// KVOpCheckNotExists fails the transaction if Key exists.
	KVOpCheckNotExists KVOp = "check-not-exists"
	// KVOpDelete deletes Key.
	KVOpDelete KVOp = "delete"
	// KVOpDeleteCAS deletes Key if its ModifyIndex is Index.
	KVOpDeleteCAS KVOp = "delete-cas"
	// KVOpDeleteTree deletes every key under the prefix Key.
	KVOpDeleteTree KVOp = "delete-tree"
	// KVOpLock acquires Key for Session, as ?acquire= does.
	KVOpLock KVOp = "lock"
	// KVOpUnlock releases Key held by Session, as ?release= does.
	KVOpUnlock KVOp = "unlock"
	// KVOpCheckSession fails the transaction unless Session holds Key.
	KVOpCheckSession KVOp = "check-session"
)

// TxnOp is one operation of a transaction (PUT /v1/txn). Only KV
// operations exist.
type TxnOp struct {
	KV *KVTxnOp
}

// KVTxnOp is a KV operation in a transaction. Which fields count depends on
// Verb (see the KVOp constants).
type KVTxnOp struct {
	Verb  KVOp
	Key   string
	Value []byte
	Flags uint64
	// Index is the ModifyIndex that cas, delete-cas and check-index expect.
	Index uint64
	// Session is the session ID of lock, unlock and check-session.
	Session string `json:",omitempty"`
}

// SessionEntry is one session, as /v1/session/info, /node and /list
// return it in a JSON array (Consul's shape).
type SessionEntry struct {
	// ID is the session's UUID.
	ID string
	// Name is the operator's label.
	Name string
	// Node is the node the session belongs to.
	Node string
	// LockDelay is how long a key the session held cannot be acquired
	// after the session is invalidated (nanoseconds in JSON).
	LockDelay time.Duration
	// Behavior is what invalidation does to the keys held: "release" or
	// "delete".
	Behavior string
	// TTL is the session's time to live, a Go duration ("15s"), or ""
	// when it has none.
	TTL string
	// NodeChecks are the node's checks whose failure invalidates the
	// session: "serfHealth" (its gossip health), or none.
	NodeChecks []string
	// CreateIndex and ModifyIndex are the log index of the create.
	CreateIndex, ModifyIndex uint64
}

// TxnResult is one entry returned by a successful transaction. As in
// Consul, only the operations that return an entry (reads and sets, not
// deletes) add results, in the order of the operations.
type TxnResult struct {
	KV *KVPair
}

// TxnError says why one operation made a transaction fail.
type TxnError struct {
	// OpIndex is the position of the failed operation, from 0.
	OpIndex int
	// What is the reason, for people.
	What string
}

// TxnResponse is the answer of PUT /v1/txn: Results when the transaction
// was applied (200), Errors when it was rolled back (409).
type TxnResponse struct {
	Results []*TxnResult
	Errors  []*TxnError
}
