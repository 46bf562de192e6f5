package consensus

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Tables of the state store. Every table is indexed by "id"; the other
// indexes are named after the field they index.
const (
	// tableKVs holds *Entry rows by Key.
	tableKVs = "kvs"
	// tableTombstones holds *tombstone rows by Key: a deleted key, or the
	// prefix of a delete-tree.
	tableTombstones = "tombstones"
	// tableIndex holds *indexRow rows by Name: the log index of each
	// table's last change (X-Consul-Index), under the table's name, and the
	// store's own bookkeeping under the idx… names below.
	tableIndex = "index"
	// tableMeta is a single row table: the *ClusterMeta.
	tableMeta = "meta"
	// tableAutopilot is a single row table: the *AutopilotConfig.
	tableAutopilot = "autopilot_config"
	// tableSessions holds *Session rows by ID and by Node.
	tableSessions = "sessions"
	// tableACLTokens holds *aclToken rows by AccessorID and by SecretID.
	// No command writes it yet.
	tableACLTokens = "acl_tokens"
	// tableACLPolicies holds *aclPolicy rows by ID and by Name. No command
	// writes it yet.
	tableACLPolicies = "acl_policies"
)

// allTables lists every table.
var allTables = []string{tableKVs, tableTombstones, tableIndex, tableMeta, tableAutopilot,
	tableSessions, tableACLTokens, tableACLPolicies}

// Rows of tableIndex that are not a table's index.
const (
	// idxApplied is the index of the last log entry applied.
	idxApplied = "applied"
	// idxReapThrough is the highest tombstone index reaped so far and
	// idxReapIndex the log index of that reap; see View.PrefixIndex.
	idxReapThrough = "kvs.reap_through"
	idxReapIndex   = "kvs.reap_index"
)

// tombstone is a deleted key, or the prefix of a delete-tree, and the log
// index of the delete.
type tombstone struct {
	Key   string
	Index uint64
}

// indexRow is one named index of tableIndex.
type indexRow struct {
	Name  string
	Value uint64
}

// ClusterMeta is the cluster's identity, written once, by the first
// leader, with OpSetClusterMeta.
type ClusterMeta struct {
	// ClusterID names the cluster; a server of another cluster has
	// another one.
	ClusterID string
	// CreateIndex and ModifyIndex are the log indexes of the write.
	CreateIndex, ModifyIndex uint64
}

// AutopilotConfig is the replicated autopilot configuration: the fields
// of Consul's /v1/operator/autopilot/configuration that raft-autopilot
// uses. It is written with OpSetAutopilotConfig.
type AutopilotConfig struct {
	// CleanupDeadServers removes failed servers from the Raft
	// configuration once a replacement keeps the quorum.
	CleanupDeadServers bool
	// LastContactThreshold is how long a server may go without contact
	// from the leader before it is unhealthy.
	LastContactThreshold time.Duration
	// MaxTrailingLogs is how many log entries a server may lag behind
	// the leader and still be healthy.
	MaxTrailingLogs uint64
	// MinQuorum is the number of servers below which autopilot removes
	// no dead server.
	MinQuorum uint
	// ServerStabilizationTime is how long a new server must be healthy
	// before it becomes a voter.
	ServerStabilizationTime time.Duration
	// CreateIndex and ModifyIndex are the log indexes of the first and the
	// last write. A command's own values are ignored.
	CreateIndex, ModifyIndex uint64
}

// aclToken and aclPolicy reserve their tables and indexes for the work
// that brings their commands; until then no row exists.
type aclToken struct {
	AccessorID string
	SecretID   string
}

type aclPolicy struct {
	ID   string
	Name string
}

// schema is the state store's go-memdb schema.
func schema() *memdb.DBSchema {
	single := func(name string) *memdb.TableSchema {
		return &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, AllowMissing: false,
				Indexer: &memdb.ConditionalIndex{Conditional: func(any) (bool, error) { return true, nil }}},
		}}
	}
	byField := func(name string, fields ...string) *memdb.TableSchema {
		t := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{}}
		for i, f := range fields {
			idx := &memdb.IndexSchema{Name: "id", Unique: true, Indexer: rawStringIndex(f)}
			if i > 0 {
				idx = &memdb.IndexSchema{Name: lowerFirst(f), AllowMissing: true,
					Indexer: &memdb.StringFieldIndex{Field: f}}
			}
			t.Indexes[idx.Name] = idx
		}
		return t
	}
	tables := []*memdb.TableSchema{
		byField(tableKVs, "Key"),
		byField(tableTombstones, "Key"),
		byField(tableIndex, "Name"),
		single(tableMeta),
		single(tableAutopilot),
		byField(tableSessions, "ID", "Node"),
		byField(tableACLTokens, "AccessorID", "SecretID"),
		byField(tableACLPolicies, "ID", "Name"),
	}
	// The holder of each key's lock, for invalidating a session; an
	// unlocked key has no entry (StringFieldIndex skips the empty string).
	tables[0].Indexes["session"] = &memdb.IndexSchema{Name: "session", AllowMissing: true,
		Indexer: &memdb.StringFieldIndex{Field: "Session"}}
	// Secrets and policy names are unique, as in Consul.
	tables[6].Indexes["secretID"].Unique = true
	tables[7].Indexes["name"].Unique = true
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range tables {
		s.Tables[t.Name] = t
	}
	return s
}

func lowerFirst(s string) string { return string(s[0]|0x20) + s[1:] }

// newDB returns an empty state store.
func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is a constant: this is a bug, caught by every test.
		panic(fmt.Sprintf("state store schema: %v", err))
	}
	return db
}

// rawStringIndex indexes a string field by its bytes, without the
// terminator memdb.StringFieldIndex appends, so the index is in plain key
// order, a prefix scan is a radix prefix and the empty string is a key:
// exactly the radix tree the key/value store used before it had tables.
type rawStringIndex string

func (f rawStringIndex) field(obj any) string {
	switch o := obj.(type) {
	case *Entry:
		return o.Key
	case *tombstone:
		return o.Key
	case *indexRow:
		return o.Name
	case *Session:
		return o.ID
	case *aclToken:
		return o.AccessorID
	case *aclPolicy:
		return o.ID
	}
	panic(fmt.Sprintf("rawStringIndex(%s): unexpected row %T", string(f), obj))
}

// FromObject returns the row's key.
func (f rawStringIndex) FromObject(obj any) (bool, []byte, error) {
	return true, []byte(f.field(obj)), nil
}

// FromArgs returns the key of the one string argument.
func (f rawStringIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index %s: want one argument, got %d", string(f), len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("index %s: argument is a %T, not a string", string(f), args[0])
	}
	return []byte(s), nil
}

// PrefixFromArgs is FromArgs: a prefix of the key is a prefix of its bytes.
func (f rawStringIndex) PrefixFromArgs(args ...any) ([]byte, error) { return f.FromArgs(args...) }
