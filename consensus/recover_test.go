package consensus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

func TestParsePeers(t *testing.T) {
	good := `[{"id": "a", "address": "10.0.0.1:8300", "non_voter": false},
		{"id": "b", "address": "10.0.0.2:8300", "non_voter": true}]`
	conf, err := ParsePeers([]byte(good), "a")
	if err != nil {
		t.Fatalf("ParsePeers(good): %v", err)
	}
	want := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "a", Address: "10.0.0.1:8300"},
		{Suffrage: raft.Nonvoter, ID: "b", Address: "10.0.0.2:8300"},
	}}
	if diff := cmp.Diff(want, conf); diff != "" {
		t.Errorf("ParsePeers(good) (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name, data, want string
	}{
		{"not json", `[{`, "not a JSON array of servers: unexpected end of JSON input"},
		{"object", `{"id": "a"}`, `not a JSON array of servers: write [{"id": "<node-id>", "address": "<host:port>", "non_voter": false}, ...]`},
		{"empty file", ``, `not a JSON array of servers: write [{"id": "<node-id>", "address": "<host:port>", "non_voter": false}, ...]`},
		{"empty", `[]`, "no servers: the array is empty"},
		{"old format", `["10.0.0.1:8300"]`, `entry 0 is a plain address string: the old format (a list of addresses) is not supported; write [{"id": "<node-id>", "address": "<host:port>", "non_voter": false}, ...]`},
		{"wrong type", `[{"id": 7, "address": "10.0.0.1:8300"}]`, `entry 0: json: cannot unmarshal number into Go struct field RecoveryPeer.id of type string`},
		{"unknown field", `[{"id": "a", "address": "10.0.0.1:8300", "voter": true}]`, `entry 0: json: unknown field "voter"`},
		{"missing id", `[{"address": "10.0.0.1:8300"}]`, "entry 0: missing id"},
		{"bad address", `[{"id": "a", "address": "10.0.0.1"}]`, `entry 0 (id "a"): address "10.0.0.1" is not host:port`},
		{"no port", `[{"id": "a", "address": "10.0.0.1:"}]`, `entry 0 (id "a"): address "10.0.0.1:" is not host:port`},
		{"no host", `[{"id": "a", "address": ":8300"}]`, `entry 0 (id "a"): address ":8300" is not host:port`},
		{"bad port", `[{"id": "a", "address": "10.0.0.1:http"}]`, `entry 0 (id "a"): address "10.0.0.1:http" is not host:port`},
		{"port out of range", `[{"id": "a", "address": "10.0.0.1:70000"}]`, `entry 0 (id "a"): address "10.0.0.1:70000" is not host:port`},
		{"not an object", `[42]`, `entry 0 is not an object: write {"id": "<node-id>", "address": "<host:port>", "non_voter": false}`},
		{"duplicate id", `[{"id": "a", "address": "10.0.0.1:1"}, {"id": "a", "address": "10.0.0.2:1"}]`, `entry 1: id "a" appears twice`},
		{"duplicate address", `[{"id": "a", "address": "10.0.0.1:1"}, {"id": "b", "address": "10.0.0.1:1"}]`, `entry 1: address "10.0.0.1:1" appears twice`},
		{"no voter", `[{"id": "a", "address": "10.0.0.1:1", "non_voter": true}]`, "no voter: at least one server must have non_voter false"},
		{"not local", `[{"id": "b", "address": "10.0.0.1:1"}]`, `this server's node ID "a" is not in the file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePeers([]byte(tc.data), "a")
			if err == nil || err.Error() != tc.want {
				t.Errorf("ParsePeers(%s) = %v, want %q", tc.data, err, tc.want)
			}
		})
	}
}

// TestRecoverLostMajority runs three servers on disk, stops them all and
// brings back one alone with a peers.json that names only itself: it
// leads by itself, keeps every key, takes new writes, and the file is gone.
func TestRecoverLostMajority(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var nodes []*Node
	var servers []Server
	for i, dir := range dirs {
		n := newTestNode(t, fmt.Sprintf("node-%d", i+1), func(c *Config) { c.DataDir = dir })
		nodes = append(nodes, n)
		servers = append(servers, self(n))
	}
	if err := nodes[0].Bootstrap(servers); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	leader := waitForLeader(t, nodes...)
	ctx := ctxFor(t)
	for i := range 20 {
		if _, err := leader.Apply(ctx, set(fmt.Sprintf("key-%02d", i), strconv.Itoa(i))); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	// The survivor is a follower: it must hold every committed key.
	survivor := 0
	if nodes[0] == leader {
		survivor = 1
	}
	for i := range 20 {
		waitForValue(t, nodes[survivor], fmt.Sprintf("key-%02d", i), strconv.Itoa(i))
	}
	for _, n := range nodes {
		if err := n.Shutdown(); err != nil {
			t.Fatalf("Shutdown(%s): %v", n.ID(), err)
		}
	}

	id := nodes[survivor].ID()
	stream, err := NewTCPStream("127.0.0.1:0", "127.0.0.1")
	if err != nil {
		t.Fatalf("NewTCPStream: %v", err)
	}
	peers := filepath.Join(dirs[survivor], "raft", PeersFile)
	body := fmt.Sprintf(`[{"id": %q, "address": %q, "non_voter": false}]`, id, stream.Addr().String())
	if err := os.WriteFile(peers, []byte(body), 0o600); err != nil {
		t.Fatalf("write peers.json: %v", err)
	}
	n := newTestNode(t, id, func(c *Config) {
		c.Stream.Close()
		c.Stream = stream
		c.DataDir = dirs[survivor]
	})
	waitForLeader(t, n)
	for i := range 20 {
		waitForValue(t, n, fmt.Sprintf("key-%02d", i), strconv.Itoa(i))
	}
	if _, err := n.Apply(ctx, set("after-recovery", "yes")); err != nil {
		t.Fatalf("Apply after recovery: %v", err)
	}
	checkConfiguration(t, n, []Server{{ID: id, Address: stream.Addr().String(), Voter: true}})
	if _, err := os.Stat(peers); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(peers.json) after recovery = %v, want it removed", err)
	}
}

// TestBadPeersFileStopsStart checks a bad peers.json stops New with
// ErrBadPeersFile naming the file, and leaves the file in place.
func TestBadPeersFileStopsStart(t *testing.T) {
	dir := t.TempDir()
	peers := filepath.Join(dir, "raft", PeersFile)
	if err := os.MkdirAll(filepath.Dir(peers), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(peers, []byte(`["127.0.0.1:8300"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	stream, err := NewTCPStream("127.0.0.1:0", "127.0.0.1")
	if err != nil {
		t.Fatalf("NewTCPStream: %v", err)
	}
	defer stream.Close()
	_, err = New(Config{ID: "node-1", Stream: stream, DataDir: dir, Logger: nil,
		LogStore: LogStoreConfig{WALSegmentSize: testSegmentSize}, MaxValueSize: testMaxValueSize})
	if !errors.Is(err, ErrBadPeersFile) || !strings.Contains(err.Error(), peers) {
		t.Fatalf("New with an old-format peers.json = %v, want ErrBadPeersFile naming %s", err, peers)
	}
	if _, err := os.Stat(peers); err != nil {
		t.Errorf("Stat(peers.json) after a refused start: %v, want it kept", err)
	}
}
