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
	TagRole      = "role"       // "server" or "client"
	TagID        = "id"         // node ID (UUID), the Raft server ID
	TagDC        = "dc"         // datacenter
	TagRaftPort  = "port"       // Raft RPC port
	TagHTTPPort  = "http_port"  // HTTP API port
	TagExpect    = "expect"     // bootstrap_expect, absent when 0
	TagVersion   = "build"      // Conclave version
	TagRaftState = "raft_state" // "1" when the server has Raft state
	TagBootstrap = "bootstrap"  // "1" when bootstrap = true
)

// RaftServer is one server in the Raft configuration.
type RaftServer struct {
	ID              string
	Node            string
	Address         string
	Leader          bool
	Voter           bool
	ProtocolVersion string
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
}
