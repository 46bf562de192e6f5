// Package consensus owns Raft: its log and stable store (raft-wal, or
// raft-boltdb for data_dirs created with it), the file snapshot store, the
// TCP transport and the replicated state machine. A damaged store is found
// at start and reported with the file and the remedy; log verification
// (raft-wal's verifier) finds one that changes while it runs.
//
// A Node is created with New, which opens the storage and starts Raft as a
// follower. New never bootstraps. The agent decides when a cluster is born
// and then calls Bootstrap exactly once, on exactly one server; every other
// server is added later by the leader with AddVoter. A node whose data_dir
// holds Raft state (HasState) refuses to bootstrap with
// ErrAlreadyBootstrapped.
//
// The transport asks an AddressProvider (backed by the gossip pool) for the
// current address of a server ID before each dial, so a server that comes
// back with a new IP is reachable under its old ID without a configuration
// change.
//
// Timing scales with the raft_multiplier; see TimingFor.
//
// The replicated state machine (FSM) is one go-memdb store of tables:
// Consul's key/value store with its tombstones, the cluster's metadata, the
// autopilot configuration, Consul's sessions, and tables reserved for ACLs.
// The leader's Apply checks a Command (set, cas, delete, delete-cas,
// delete-tree, a transaction of Consul's /v1/txn KV verbs, set-cluster-meta,
// set-autopilot-config, session-create, session-destroy, lock or unlock;
// the type leads its log entry), appends it to
// the log as one compact binary entry, and returns its Result once applied:
// the log index, whether a check-and-set or transaction went through, and a
// transaction's results or errors. Every server applies the same entries in
// the same order, so each one's entries carry the same CreateIndex and
// ModifyIndex.
//
// Reads are local and take no lock: Get, List and Keys, or a View, one
// immutable version of the store whose KeyIndex and PrefixIndex give the
// index a Consul blocking query reports (tombstones keep it moving forward
// across deletes). WaitKey and WaitPrefix block until that index passes a
// given one, on watch channels that cost nothing to drop.
//
// A session holds locks on keys (Consul's ?acquire= and ?release=): a new
// holder increments the key's LockIndex, and invalidating the session
// releases or deletes what it holds and starts each key's lock delay,
// which this server keeps in memory and the leader checks before an
// acquire enters the log. The TTL timers are the agent's (agent/sessions).
//
// Snapshots stream every table record by record, in a versioned format
// (this release writes version 3 and still reads 1 and 2). SaveSnapshot and
// RestoreSnapshot move the same stream in and out of a running cluster.
//
// Shutdown stops Raft, then closes the transport and the stores.
package consensus
