package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// PeersFile is the name, under data_dir/raft, of the outage-recovery file
// an operator writes on every surviving server after a majority is lost
// for good (Consul's peers.json).
const PeersFile = "peers.json"

// ErrBadPeersFile is returned (wrapped, naming the file and what is wrong)
// by New when data_dir/raft/peers.json is not a valid recovery
// configuration. Nothing was changed: fix or remove the file and start
// again.
var ErrBadPeersFile = errors.New("invalid peers.json")

// RecoveryPeer is one server in peers.json, in Consul's format.
type RecoveryPeer struct {
	// ID is the server's node ID (data_dir/node-id).
	ID string `json:"id"`
	// Address is the server's Raft address, host:port.
	Address string `json:"address"`
	// NonVoter is true for a server that replicates without a vote.
	NonVoter bool `json:"non_voter"`
}

// ParsePeers parses the content of a peers.json strictly: a JSON array of
// RecoveryPeer with no unknown fields, each id non-empty, each address
// host:port, no id or address twice, at least one voter, and localID among
// the ids. Consul's older format, an array of address strings, is refused.
func ParsePeers(data []byte, localID string) (raft.Configuration, error) {
	if !strings.HasPrefix(strings.TrimSpace(string(data)), "[") {
		return raft.Configuration{}, errors.New(`not a JSON array of servers: write [{"id": "<node-id>", "address": "<host:port>", "non_voter": false}, ...]`)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return raft.Configuration{}, fmt.Errorf("not a JSON array of servers: %v", err)
	}
	if len(raw) == 0 {
		return raft.Configuration{}, errors.New("no servers: the array is empty")
	}
	var conf raft.Configuration
	ids, addrs := map[string]bool{}, map[string]bool{}
	voters, local := 0, false
	for i, r := range raw {
		if s := strings.TrimSpace(string(r)); strings.HasPrefix(s, `"`) {
			return raft.Configuration{}, fmt.Errorf(`entry %d is a plain address string: the old format (a list of addresses) is not supported; write [{"id": "<node-id>", "address": "<host:port>", "non_voter": false}, ...]`, i)
		}
		if !strings.HasPrefix(strings.TrimSpace(string(r)), "{") {
			return raft.Configuration{}, fmt.Errorf(`entry %d is not an object: write {"id": "<node-id>", "address": "<host:port>", "non_voter": false}`, i)
		}
		var p RecoveryPeer
		dec := json.NewDecoder(strings.NewReader(string(r)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return raft.Configuration{}, fmt.Errorf("entry %d: %v", i, err)
		}
		if p.ID == "" {
			return raft.Configuration{}, fmt.Errorf("entry %d: missing id", i)
		}
		if host, port, err := net.SplitHostPort(p.Address); err != nil || host == "" || !validPort(port) {
			return raft.Configuration{}, fmt.Errorf("entry %d (id %q): address %q is not host:port", i, p.ID, p.Address)
		}
		if ids[p.ID] {
			return raft.Configuration{}, fmt.Errorf("entry %d: id %q appears twice", i, p.ID)
		}
		if addrs[p.Address] {
			return raft.Configuration{}, fmt.Errorf("entry %d: address %q appears twice", i, p.Address)
		}
		ids[p.ID], addrs[p.Address] = true, true
		suffrage := raft.Voter
		if p.NonVoter {
			suffrage = raft.Nonvoter
		} else {
			voters++
		}
		local = local || p.ID == localID
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
	}
	if voters == 0 {
		return raft.Configuration{}, errors.New("no voter: at least one server must have non_voter false")
	}
	if !local {
		return raft.Configuration{}, fmt.Errorf("this server's node ID %q is not in the file", localID)
	}
	return conf, nil
}

// recoverFromPeersFile applies data_dir/raft/peers.json, if there is one,
// with raft.RecoverCluster on the stores before Raft starts, then removes
// the file. It does nothing in memory (there is no data_dir) or when the
// file does not exist.
func recoverFromPeersFile(cfg Config, logger hclog.Logger, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) error {
	if cfg.InMemory {
		return nil
	}
	path := filepath.Join(cfg.DataDir, "raft", PeersFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	conf, err := ParsePeers(data, cfg.ID)
	if err != nil {
		return fmt.Errorf("%w: %s: %v; fix or remove the file and start again", ErrBadPeersFile, path, err)
	}
	servers := make([]string, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		servers = append(servers, fmt.Sprintf("%s@%s (%s)", s.ID, s.Address, s.Suffrage))
	}
	logger.Warn("found peers.json: recovering the cluster with a new configuration", "path", path, "servers", strings.Join(servers, ", "))
	// Raft wants a state machine that has applied nothing: it restores the
	// newest snapshot into it, applies the log and snapshots the result.
	// A node with an application state machine has not started it yet.
	var fsm raft.FSM = checkpointFilter{NewFSM()}
	if cfg.FSM != nil {
		fsm = appFSM{cfg.FSM}
	}
	if err := raft.RecoverCluster(raftConfig(cfg, logger, nil), fsm, logs, stable, snaps, trans, conf); err != nil {
		return fmt.Errorf("recover cluster from %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("recovered the cluster but could not remove %s (remove it by hand before the next start): %w", path, err)
	}
	logger.Warn("cluster recovered from peers.json: the Raft configuration was replaced and the file removed; start every other surviving server with the same file", "path", path, "servers", strings.Join(servers, ", "))
	return nil
}

// validPort reports whether s is a TCP port number, 1 to 65535.
func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}
