package gossip

import "strconv"

// Member tag keys, in Consul's names where Consul has one, so that Consul's
// CLI and scripts read them (consul members shows role, build, dc and vsn).
// Every agent sets role, id, dc, build and the vsn tags; servers also set
// port, http_port, expect (when bootstrap_expect > 0), bootstrap (when
// bootstrap = true), raft_state and cluster_id (once they know their
// cluster's ID). http_port, raft_state and cluster_id are Conclave's own.
const (
	TagRole      = "role"
	TagID        = "id"
	TagDC        = "dc"
	TagRaftPort  = "port"
	TagHTTPPort  = "http_port"
	TagExpect    = "expect"
	TagVersion   = "build"
	TagRaftState = "raft_state"
	TagBootstrap = "bootstrap"
	TagClusterID = "cluster_id"

	// TagProtocol, TagProtocolMin and TagProtocolMax are Consul's vsn,
	// vsn_min and vsn_max: the agent protocol versions, which Consul's
	// members command prints. Conclave reports Consul's current ones.
	TagProtocol    = "vsn"
	TagProtocolMin = "vsn_min"
	TagProtocolMax = "vsn_max"
	// TagRaftVersion is Consul's raft_vsn, the Raft protocol version.
	TagRaftVersion = "raft_vsn"

	// RoleServer and RoleClient are Consul's role values.
	RoleServer = "consul"
	RoleClient = "node"

	// legacyRoleServer is the role tag of servers before Conclave used
	// Consul's values; ParseServer still accepts it, so that servers of
	// both kinds see each other during a rolling upgrade.
	legacyRoleServer = "server"
)

// ProtocolTags are the version tags every agent sets: vsn 2 (vsn_min 2,
// vsn_max 3) and raft_vsn 3, the values of a current Consul agent.
func ProtocolTags() map[string]string {
	return map[string]string{TagProtocol: "2", TagProtocolMin: "2", TagProtocolMax: "3", TagRaftVersion: "3"}
}

// LocalTags is what an agent says about itself in its tags.
type LocalTags struct {
	// ID is its permanent node ID, Datacenter its datacenter and Version
	// its build.
	ID, Datacenter, Version string
	// Server is true on a server; the fields below are a server's only.
	Server bool
	// RaftPort is its server port, HTTPPort its HTTP API's (plain HTTP's,
	// else HTTPS's).
	RaftPort, HTTPPort int
	// Expect is its bootstrap_expect, 0 for none; Bootstrap its bootstrap.
	Expect    int
	Bootstrap bool
	// HasState is true when it has Raft state.
	HasState bool
	// ClusterID is its cluster's ID, "" while it knows none.
	ClusterID string
}

// Map returns the tags: ProtocolTags, role, id, dc and build, and on a
// server port, http_port, and expect, bootstrap, raft_state and cluster_id
// when set.
func (l LocalTags) Map() map[string]string {
	tags := ProtocolTags()
	tags[TagRole] = RoleClient
	tags[TagID] = l.ID
	tags[TagDC] = l.Datacenter
	tags[TagVersion] = l.Version
	if !l.Server {
		return tags
	}
	tags[TagRole] = RoleServer
	tags[TagRaftPort] = strconv.Itoa(l.RaftPort)
	tags[TagHTTPPort] = strconv.Itoa(l.HTTPPort)
	if l.Expect > 0 {
		tags[TagExpect] = strconv.Itoa(l.Expect)
	}
	if l.Bootstrap {
		tags[TagBootstrap] = "1"
	}
	if l.HasState {
		tags[TagRaftState] = "1"
	}
	if l.ClusterID != "" {
		tags[TagClusterID] = l.ClusterID
	}
	return tags
}
