// Package consensus owns Raft: its BoltDB log and stable store, the file
// snapshot store, the TCP transport and the replicated state machine.
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
// Shutdown stops Raft, then closes the transport and the stores.
package consensus
