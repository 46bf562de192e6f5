package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testPrivateIP is what {{ GetPrivateIP }} resolves to in tests, so that
// they do not depend on the host's interfaces.
const testPrivateIP = "192.0.2.10"

// inTempDir runs the test in a fresh temporary directory, so that files can
// be named relatively and error messages compared exactly, and pins the
// private IP. Tests that use it cannot run in parallel.
func inTempDir(t *testing.T) {
	t.Helper()
	t.Chdir(t.TempDir())
	old := privateIPTemplate
	privateIPTemplate = `{{ "` + testPrivateIP + `" }}`
	t.Cleanup(func() { privateIPTemplate = old })
}

// writeFiles writes each name → content, creating directories as needed.
func writeFiles(t *testing.T, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if dir := filepath.Dir(name); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parseFlags parses args as the agent command would.
func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	f := new(Flags)
	f.AddTo(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags %q: %v", args, err)
	}
	return f
}

// mustLoad loads paths with the given flags and fails the test on error.
func mustLoad(t *testing.T, flags []string, paths ...string) *LoadResult {
	t.Helper()
	res, err := Load(LoadOptions{Paths: paths, Flags: parseFlags(t, flags...)})
	if err != nil {
		t.Fatalf("Load(%q, flags %q) error:\n%v", paths, flags, err)
	}
	return res
}

// wantTLS is the tls block of a configuration that sets none.
var wantTLS = TLS{InternalRPC: TLSConfig{MinVersion: tls.VersionTLS12}, HTTPS: TLSConfig{MinVersion: tls.VersionTLS12}}

// wantDefault is Default() as Load completes it on a host whose private IP
// is testPrivateIP.
func wantDefault(t *testing.T) *Config {
	t.Helper()
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		NodeName:       hostname,
		Datacenter:     "dc1",
		BindAddr:       "0.0.0.0",
		AdvertiseAddr:  testPrivateIP,
		ClientAddr:     "127.0.0.1",
		Ports:          Ports{HTTP: 8500, HTTPS: -1, SerfLAN: 8301, Server: 8300},
		TLS:            wantTLS,
		RetryInterval:  30 * time.Second,
		LogLevel:       "info",
		Performance:    Performance{RaftMultiplier: DefaultRaftMultiplier},
		KVMaxValueSize: DefaultKVMaxValueSize,
		Limits:         Limits{HTTPMaxConnsPerClient: DefaultHTTPMaxConnsPerClient, TxnMaxReqLen: DefaultTxnMaxReqLen},
		RaftLogStore:   defaultRaftLogStore,

		EncryptVerifyIncoming: true,
		EncryptVerifyOutgoing: true,
	}
}

func TestLoadDefaults(t *testing.T) {
	inTempDir(t)
	res := mustLoad(t, nil)
	if diff := cmp.Diff(wantDefault(t), res.Config); diff != "" {
		t.Errorf("Load() config mismatch (-want +got):\n%s", diff)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("Load() warnings = %q, want none", res.Warnings)
	}
}

func TestLoadServerDefaults(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{"server.hcl": "server = true\ndata_dir = \"data\"\nbootstrap_expect = 3\n"})
	res := mustLoad(t, nil, "server.hcl")

	want := wantDefault(t)
	want.Server = true
	want.DataDir = "data"
	want.BootstrapExpect = 3
	want.SkipLeaveOnInterrupt = true // the server default
	if diff := cmp.Diff(want, res.Config); diff != "" {
		t.Errorf("Load() config mismatch (-want +got):\n%s", diff)
	}
	fi, err := os.Stat("data")
	if err != nil {
		t.Fatalf("data_dir was not created: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("data_dir mode = %v, want 0700", got)
	}
	if entries, _ := os.ReadDir("data"); len(entries) != 0 {
		t.Errorf("data_dir holds %d entries after the write check, want 0", len(entries))
	}
}

func TestLoadAllKeys(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{"all.hcl": `
node_name               = "node-1.example_a"
datacenter              = "EU-West_1"
data_dir                = "state"
server                  = true
bootstrap_expect        = 5
bind_addr               = "127.0.0.2"
advertise_addr          = "192.0.2.7"
client_addr             = "0.0.0.0"
retry_join              = ["10.0.0.1", "provider=aws tag_key=role tag_value=server"]
retry_interval          = "1m30s"
retry_max               = 7
leave_on_terminate      = true
skip_leave_on_interrupt = false
log_level               = "DEBUG"
log_json                = true

ports {
  http     = 18500
  serf_lan = 18301
  server   = 18300
}

performance {
  raft_multiplier = 5
}

kv_max_value_size = 1048576
enable_debug      = true

encrypt                 = "BwcHBwcHBwcHBwcHBwcHBw=="
encrypt_verify_incoming = false
encrypt_verify_outgoing = false
disable_keyring_file    = true

limits {
  http_max_conns_per_client = 50
  txn_max_req_len           = 2097152
}

raft_logstore {
  backend = "boltdb"
  verification {
    enabled  = true
    interval = "30s"
  }
  wal {
    segment_size_mb = 8
  }
}
`})
	res := mustLoad(t, nil, "all.hcl")
	want := &Config{
		NodeName:             "node-1.example_a",
		Datacenter:           "eu-west_1",
		DataDir:              "state",
		Server:               true,
		BootstrapExpect:      5,
		BindAddr:             "127.0.0.2",
		AdvertiseAddr:        "192.0.2.7",
		ClientAddr:           "0.0.0.0",
		Ports:                Ports{HTTP: 18500, HTTPS: -1, SerfLAN: 18301, Server: 18300},
		TLS:                  wantTLS,
		RetryJoin:            []string{"10.0.0.1", "provider=aws tag_key=role tag_value=server"},
		RetryInterval:        90 * time.Second,
		RetryMax:             7,
		LeaveOnTerminate:     true,
		SkipLeaveOnInterrupt: false, // explicit, although this is a server
		LogLevel:             "debug",
		LogJSON:              true,
		Performance:          Performance{RaftMultiplier: 5},
		KVMaxValueSize:       1 << 20,
		Limits:               Limits{HTTPMaxConnsPerClient: 50, TxnMaxReqLen: 2 << 20},
		EnableDebug:          true,
		Encrypt:              GossipKey(bytes.Repeat([]byte{7}, 16)),
		DisableKeyringFile:   true,
		RaftLogStore: RaftLogStore{
			Backend:      "boltdb",
			Verification: LogVerification{Enabled: true, Interval: 30 * time.Second},
			WAL:          WALStore{SegmentSizeMB: 8},
		},
	}
	if diff := cmp.Diff(want, res.Config); diff != "" {
		t.Errorf("Load() config mismatch (-want +got):\n%s", diff)
	}
}

// TestLoadJSONEquivalence checks that a JSON file means the same as the HCL
// file with the same keys.
func TestLoadJSONEquivalence(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{
		"a.hcl": `
node_name        = "n1"
server           = true
data_dir         = "data"
bootstrap_expect = 3
bind_addr        = "127.0.0.1"
retry_join       = ["a", "b"]
retry_interval   = "5s"
ports {
  http = 0
}
performance {
  raft_multiplier = 1
}
`,
		"a.json": `{
  "node_name": "n1",
  "server": true,
  "data_dir": "data",
  "bootstrap_expect": 3,
  "bind_addr": "127.0.0.1",
  "retry_join": ["a", "b"],
  "retry_interval": "5s",
  "ports": {"http": 0},
  "performance": {"raft_multiplier": 1}
}`,
	})
	fromHCL := mustLoad(t, nil, "a.hcl")
	fromJSON := mustLoad(t, nil, "a.json")
	if diff := cmp.Diff(fromHCL, fromJSON); diff != "" {
		t.Errorf("Load(a.json) differs from Load(a.hcl) (-hcl +json):\n%s", diff)
	}
	if fromHCL.Config.Ports.HTTP != 0 || fromHCL.Config.Ports.SerfLAN != 8301 {
		t.Errorf("Load(a.hcl) ports = %+v, want http 0 and the other defaults", fromHCL.Config.Ports)
	}
}

// TestLoadLayering checks the order of sources: files in command-line order,
// directories in lexical order, flags last.
func TestLoadLayering(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{
		"base.hcl": `
node_name  = "base"
datacenter = "base"
log_level  = "warn"
retry_join = ["base-1", "base-2"]
ports {
  http     = 1001
  serf_lan = 1002
}
`,
		// Read in lexical order: 10-… before 20-…, and the .txt and the
		// subdirectory are skipped.
		"conf.d/20-last.json":       `{"datacenter": "dir-20", "retry_join": ["dir-20"]}`,
		"conf.d/10-first.hcl":       "datacenter = \"dir-10\"\nlog_level = \"error\"\nports {\n  http = 2001\n}\n",
		"conf.d/notes.txt":          `this is not configuration`,
		"conf.d/sub.hcl/inner.hcl":  `datacenter = "subdirectory"`,
		"conf.d/sub/ignored.hcl":    `datacenter = "subdirectory"`,
		"override.hcl":              "log_level = \"debug\"\nretry_max = 3\n",
		"conf.d/30-null.hcl":        "log_level = null\n",
		"conf.d/40-empty.hcl":       "",
		"conf.d/50-only-ports.json": `{"ports": {"server": 3003}}`,
	})

	tests := []struct {
		name  string
		paths []string
		flags []string
		want  func(c *Config)
	}{
		{
			name:  "one file",
			paths: []string{"base.hcl"},
			want: func(c *Config) {
				c.NodeName, c.Datacenter, c.LogLevel = "base", "base", "warn"
				c.RetryJoin = []string{"base-1", "base-2"}
				c.Ports.HTTP, c.Ports.SerfLAN = 1001, 1002
			},
		},
		{
			name:  "directory after file",
			paths: []string{"base.hcl", "conf.d"},
			want: func(c *Config) {
				c.NodeName, c.Datacenter, c.LogLevel = "base", "dir-20", "error"
				c.RetryJoin = []string{"dir-20"} // replaced, not appended
				c.Ports = Ports{HTTP: 2001, HTTPS: -1, SerfLAN: 1002, Server: 3003}
			},
		},
		{
			name:  "file after directory",
			paths: []string{"conf.d", "base.hcl", "override.hcl"},
			want: func(c *Config) {
				c.NodeName, c.Datacenter, c.LogLevel = "base", "base", "debug"
				c.RetryJoin = []string{"base-1", "base-2"}
				c.RetryMax = 3
				c.Ports = Ports{HTTP: 1001, HTTPS: -1, SerfLAN: 1002, Server: 3003}
			},
		},
		{
			name:  "flags override files",
			paths: []string{"base.hcl", "conf.d"},
			flags: []string{"-datacenter", "flag", "-http-port=0", "-retry-join", "f1", "-retry-join=f2", "-log-level", "TRACE"},
			want: func(c *Config) {
				c.NodeName, c.Datacenter, c.LogLevel = "base", "flag", "trace"
				c.RetryJoin = []string{"f1", "f2"}
				c.Ports = Ports{HTTP: 0, HTTPS: -1, SerfLAN: 1002, Server: 3003}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := wantDefault(t)
			tc.want(want)
			res := mustLoad(t, tc.flags, tc.paths...)
			if diff := cmp.Diff(want, res.Config); diff != "" {
				t.Errorf("Load(%q, flags %q) mismatch (-want +got):\n%s", tc.paths, tc.flags, diff)
			}
		})
	}
}

func TestLoadRetryJoinCleared(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{
		"a.hcl": `retry_join = ["a"]`,
		"b.hcl": `retry_join = []`,
	})
	res := mustLoad(t, nil, "a.hcl", "b.hcl")
	if got := res.Config.RetryJoin; len(got) != 0 {
		t.Errorf("Load(a.hcl, b.hcl) RetryJoin = %q, want empty", got)
	}
}

func TestLoadFlags(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{"a.hcl": "server = true\nlog_json = true\nbootstrap_expect = 3\ndata_dir = \"d\"\n"})
	res := mustLoad(t, []string{
		"-node=flag-node", "-datacenter=dc2", "-data-dir=flagdata", "-server=true",
		"-bootstrap-expect=5", "-bind=127.0.0.1", "-advertise=127.0.0.3", "-client=127.0.0.4",
		"-http-port=1", "-serf-lan-port=2", "-server-port=3", "-retry-join=x",
		"-retry-interval=2s", "-retry-max=4", "-log-level=warn", "-log-json=false", "-enable-debug",
	}, "a.hcl")
	want := &Config{
		NodeName:             "flag-node",
		Datacenter:           "dc2",
		DataDir:              "flagdata",
		Server:               true,
		BootstrapExpect:      5,
		BindAddr:             "127.0.0.1",
		AdvertiseAddr:        "127.0.0.3",
		ClientAddr:           "127.0.0.4",
		Ports:                Ports{HTTP: 1, HTTPS: -1, SerfLAN: 2, Server: 3},
		TLS:                  wantTLS,
		RetryJoin:            []string{"x"},
		RetryInterval:        2 * time.Second,
		RetryMax:             4,
		SkipLeaveOnInterrupt: true,
		LogLevel:             "warn",
		LogJSON:              false,
		Performance:          Performance{RaftMultiplier: DefaultRaftMultiplier},
		KVMaxValueSize:       DefaultKVMaxValueSize,
		Limits:               Limits{HTTPMaxConnsPerClient: DefaultHTTPMaxConnsPerClient, TxnMaxReqLen: DefaultTxnMaxReqLen},
		EnableDebug:          true,
		RaftLogStore:         defaultRaftLogStore,

		EncryptVerifyIncoming: true,
		EncryptVerifyOutgoing: true,
	}
	if diff := cmp.Diff(want, res.Config); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadDev(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		flags []string
		want  func(c *Config)
	}{
		{
			name:  "defaults",
			flags: []string{"-dev"},
			want:  func(*Config) {},
		},
		{
			name:  "flag overrides dev",
			flags: []string{"-dev", "-http-port", "0", "-serf-lan-port=0", "-server-port=0"},
			want:  func(c *Config) { c.Ports = Ports{HTTPS: -1} },
		},
		{
			name:  "file overrides dev",
			files: map[string]string{"dev.hcl": "bind_addr = \"127.0.0.2\"\nlog_level = \"debug\"\n"},
			flags: []string{"-dev"},
			want: func(c *Config) {
				c.BindAddr, c.AdvertiseAddr, c.LogLevel = "127.0.0.2", "127.0.0.2", "debug"
			},
		},
		{
			name:  "data_dir still allowed",
			flags: []string{"-dev", "-data-dir", "devdata"},
			want:  func(c *Config) { c.DataDir = "devdata" },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inTempDir(t)
			writeFiles(t, tc.files)
			var paths []string
			for name := range tc.files {
				paths = append(paths, name)
			}
			want := Dev()
			tc.want(want)
			res := mustLoad(t, tc.flags, paths...)
			if diff := cmp.Diff(want, res.Config); diff != "" {
				t.Errorf("Load(-dev) mismatch (-want +got):\n%s", diff)
			}
			if len(res.Warnings) != 0 {
				t.Errorf("Load(-dev) warnings = %q, want none", res.Warnings)
			}
		})
	}
}

func TestDev(t *testing.T) {
	c := Dev()
	if !c.DevMode || !c.Server || !c.Bootstrap || c.DataDir != "" || c.Ports.HTTP != 8500 {
		t.Errorf("Dev() = %+v, want a bootstrapping dev server without data_dir on port 8500", c)
	}
	for _, addr := range []string{c.BindAddr, c.AdvertiseAddr, c.ClientAddr} {
		if addr != "127.0.0.1" {
			t.Errorf("Dev() address = %q, want 127.0.0.1", addr)
		}
	}
	if _, err := c.Validate(); err != nil {
		t.Errorf("Dev().Validate() error: %v", err)
	}
}

func TestLoadTemplates(t *testing.T) {
	tests := []struct {
		name                    string
		file                    string
		bind, advertise, client string
	}{
		{
			name:      "interface filter",
			file:      `bind_addr = "{{ GetAllInterfaces | include \"name\" \"^lo$\" | include \"type\" \"IPv4\" | attr \"address\" }}"`,
			bind:      "127.0.0.1",
			advertise: "127.0.0.1",
			client:    "127.0.0.1",
		},
		{
			name:      "literal in template",
			file:      "bind_addr = \"{{ \\\"127.0.0.5\\\" }}\"\nclient_addr = \"{{ GetAllInterfaces | include \\\"flags\\\" \\\"loopback\\\" | include \\\"type\\\" \\\"IPv4\\\" | attr \\\"address\\\" }}\"\n",
			bind:      "127.0.0.5",
			advertise: "127.0.0.5",
			client:    "127.0.0.1",
		},
		{
			name:      "advertise template",
			file:      `advertise_addr = "{{ \"192.0.2.99\" }}"`,
			bind:      "0.0.0.0",
			advertise: "192.0.2.99",
			client:    "127.0.0.1",
		},
		{
			name:      "unspecified bind advertises the private IP",
			file:      `bind_addr = "0.0.0.0"`,
			bind:      "0.0.0.0",
			advertise: testPrivateIP,
			client:    "127.0.0.1",
		},
		{
			name:      "unspecified IPv6 bind advertises the private IP",
			file:      `bind_addr = "::"`,
			bind:      "::",
			advertise: testPrivateIP,
			client:    "127.0.0.1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inTempDir(t)
			writeFiles(t, map[string]string{"t.hcl": tc.file})
			c := mustLoad(t, nil, "t.hcl").Config
			got := [3]string{c.BindAddr, c.AdvertiseAddr, c.ClientAddr}
			if want := [3]string{tc.bind, tc.advertise, tc.client}; got != want {
				t.Errorf("Load() bind, advertise, client = %q, want %q", got, want)
			}
		})
	}
}

func TestLoadWarnings(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		flags  []string
		want   []string
		update func(c *Config)
	}{
		{
			name: "bootstrap_expect 1 becomes bootstrap",
			file: "server = true\ndata_dir = \"d\"\nbootstrap_expect = 1\n",
			want: []string{"w.hcl:3:1: Single-server bootstrap; bootstrap_expect = 1 is the same as bootstrap = true: this server elects itself without waiting for others."},
			update: func(c *Config) {
				c.Bootstrap = true
				c.BootstrapExpect = 0
			},
		},
		{
			name:   "bootstrap_expect 2",
			file:   "server = true\ndata_dir = \"d\"\nbootstrap_expect = 2\n",
			want:   []string{"w.hcl:3:1: Even bootstrap_expect; bootstrap_expect = 2 tolerates the failure of 0 servers, the same as 1: an even number of servers adds no fault tolerance. Consider 3."},
			update: func(c *Config) { c.BootstrapExpect = 2 },
		},
		{
			name:   "bootstrap_expect 4 by flag",
			file:   "server = true\ndata_dir = \"d\"\n",
			flags:  []string{"-bootstrap-expect=4"},
			want:   []string{"flag -bootstrap-expect: Even bootstrap_expect; bootstrap_expect = 4 tolerates the failure of 1 server, the same as 3: an even number of servers adds no fault tolerance. Consider 5."},
			update: func(c *Config) { c.BootstrapExpect = 4 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inTempDir(t)
			writeFiles(t, map[string]string{"w.hcl": tc.file})
			res := mustLoad(t, tc.flags, "w.hcl")
			if diff := cmp.Diff(tc.want, res.Warnings); diff != "" {
				t.Errorf("Load() warnings mismatch (-want +got):\n%s", diff)
			}
			want := wantDefault(t)
			want.Server, want.DataDir, want.SkipLeaveOnInterrupt = true, "d", true
			tc.update(want)
			if diff := cmp.Diff(want, res.Config); diff != "" {
				t.Errorf("Load() config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	const server = "server = true\ndata_dir = \"data\"\n"
	tests := []struct {
		name  string
		files map[string]string
		paths []string // default: every file in files, sorted
		flags []string
		want  string
	}{
		// Reading.
		{
			name:  "missing file",
			paths: []string{"missing.hcl"},
			want:  "missing.hcl: Failed to read configuration; The path could not be read: no such file or directory.",
		},

		// Syntax.
		{
			name:  "HCL syntax",
			files: map[string]string{"bad.hcl": "server = true = 3\n"},
			want:  "bad.hcl:1:15: Missing newline after argument; An argument definition must end with a newline.",
		},
		{
			name:  "HCL unclosed block",
			files: map[string]string{"bad.hcl": "ports {\n  http = 1\n"},
			want:  "bad.hcl:1:7: Unclosed configuration block; There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file.",
		},
		{
			name:  "JSON syntax",
			files: map[string]string{"bad.json": "{\n  \"server\": true,\n}"},
			want: "bad.json:2:17: Trailing comma in object; JSON does not permit a trailing comma after the final property in an object.\n" +
				"bad.json:1:1: Root value must be object; The root value in a JSON-based configuration must be either a JSON object or a JSON array of objects.",
		},
		{
			name:  "HCL duplicate key",
			files: map[string]string{"dup.hcl": "server = true\nserver = false\n"},
			want:  "dup.hcl:2:1: Attribute redefined; The argument \"server\" was already set at dup.hcl:1,1-7. Each argument may be set only once.",
		},
		{
			name:  "JSON duplicate key",
			files: map[string]string{"dup.json": `{"server": true, "server": false}`},
			want:  "dup.json:1:18: Duplicate argument; The argument \"server\" was already set at dup.json:1,2-16.",
		},

		// Unknown keys.
		{
			name:  "HCL unknown key",
			files: map[string]string{"server.hcl": "server = true\ndata_dir = \"data\"\nbootstrap_expec = 3\n"},
			want:  `server.hcl:3:1: Unsupported argument; An argument named "bootstrap_expec" is not expected here. Did you mean "bootstrap_expect"?`,
		},
		{
			name:  "HCL unknown key in block",
			files: map[string]string{"p.hcl": "ports {\n  htp = 1\n}\n"},
			want:  `p.hcl:2:3: Unsupported argument; An argument named "htp" is not expected here. Did you mean "http"?`,
		},
		{
			name:  "HCL unknown block",
			files: map[string]string{"p.hcl": "port {\n  http = 1\n}\n"},
			want:  `p.hcl:1:1: Unsupported block type; Blocks of type "port" are not expected here. Did you mean "ports"?`,
		},
		{
			name:  "JSON unknown key",
			files: map[string]string{"server.json": "{\n  \"server\": true,\n  \"bootstrap_expec\": 3\n}"},
			want:  `server.json:3:3: Extraneous JSON object property; No argument or block type is named "bootstrap_expec". Did you mean "bootstrap_expect"?`,
		},
		{
			name:  "JSON unknown key in block",
			files: map[string]string{"p.json": `{"ports": {"serf_lam": 1}}`},
			want:  `p.json:1:12: Extraneous JSON object property; No argument or block type is named "serf_lam". Did you mean "serf_lan"?`,
		},

		// Types.
		{
			name:  "string for number",
			files: map[string]string{"t.hcl": "server = true\nbootstrap_expect = \"three\"\n"},
			want:  `t.hcl:2:20: Incorrect attribute value type; Inappropriate value for attribute "bootstrap_expect": a number is required.`,
		},
		{
			name:  "number for bool",
			files: map[string]string{"t.hcl": "server = 3\n"},
			want:  `t.hcl:1:10: Incorrect attribute value type; Inappropriate value for attribute "server": bool required, but have number.`,
		},
		{
			name:  "string for list",
			files: map[string]string{"t.hcl": "retry_join = \"a\"\n"},
			want:  `t.hcl:1:14: Incorrect attribute value type; Inappropriate value for attribute "retry_join": list of string required, but have string.`,
		},
		{
			name:  "fraction for int",
			files: map[string]string{"t.hcl": "ports {\n  http = 80.5\n}\n"},
			want:  `t.hcl:2:10: Incorrect attribute value type; Inappropriate value for attribute "ports.http": value must be a whole number, between -9223372036854775808 and 9223372036854775807.`,
		},
		{
			name:  "JSON string for number",
			files: map[string]string{"t.json": `{"retry_max": "many"}`},
			want:  `t.json:1:15: Incorrect attribute value type; Inappropriate value for attribute "retry_max": a number is required.`,
		},
		{
			name:  "block as attribute",
			files: map[string]string{"t.hcl": "ports = { http = 1 }\n"},
			want:  `t.hcl:1:1: Unsupported argument; An argument named "ports" is not expected here. Did you mean to define a block of type "ports"?`,
		},
		{
			name:  "duplicate block",
			files: map[string]string{"t.hcl": "ports {}\nports {}\n"},
			want:  "t.hcl:2:1: Duplicate ports block; Only one ports block is allowed. Another was defined at t.hcl:1,1-6.",
		},
		{
			name:  "variable",
			files: map[string]string{"t.hcl": "node_name = \"${name}\"\n"},
			want:  "t.hcl:1:16: Variables not allowed; Variables may not be used here.",
		},
		{
			name:  "bad duration",
			files: map[string]string{"t.hcl": "retry_interval = \"5 parsecs\"\n"},
			want:  `t.hcl:1:18: Invalid retry_interval; retry_interval must be a duration such as "30s" or "1m30s", got "5 parsecs".`,
		},
		{
			name:  "every decode error in every file",
			files: map[string]string{"1.hcl": "retry_max = \"x\"\nserver = 1\n", "2.json": `{"log_levl": "info"}`},
			want: `1.hcl:1:13: Incorrect attribute value type; Inappropriate value for attribute "retry_max": a number is required.` + "\n" +
				`1.hcl:2:10: Incorrect attribute value type; Inappropriate value for attribute "server": bool required, but have number.` + "\n" +
				`2.json:1:2: Extraneous JSON object property; No argument or block type is named "log_levl". Did you mean "log_level"?`,
		},

		// bootstrap and bootstrap_expect.
		{
			name:  "bootstrap_expect 0",
			files: map[string]string{"b.hcl": server + "bootstrap_expect = 0\n"},
			want:  "b.hcl:3:20: Invalid bootstrap_expect; bootstrap_expect must be at least 1, got 0; leave it unset to disable automatic bootstrap.",
		},
		{
			name:  "bootstrap_expect negative",
			files: map[string]string{"b.json": `{"server": true, "bootstrap_expect": -2}`},
			want:  "b.json:1:38: Invalid bootstrap_expect; bootstrap_expect must be at least 1, got -2; leave it unset to disable automatic bootstrap.",
		},
		{
			name:  "bootstrap_expect 0 by flag",
			files: map[string]string{"b.hcl": server},
			flags: []string{"-bootstrap-expect=0"},
			want:  "flag -bootstrap-expect: Invalid bootstrap_expect; bootstrap_expect must be at least 1, got 0; leave it unset to disable automatic bootstrap.",
		},
		{
			name:  "bootstrap with bootstrap_expect",
			files: map[string]string{"b.hcl": server + "bootstrap = true\nbootstrap_expect = 3\n"},
			want:  "b.hcl:4:1: Conflicting bootstrap settings; bootstrap_expect cannot be used together with bootstrap (set at b.hcl:3:1): bootstrap makes this server elect itself at once, bootstrap_expect waits for that many servers. Remove one of them.",
		},
		{
			name:  "bootstrap_expect in dev mode",
			files: map[string]string{"b.hcl": "bootstrap_expect = 3\n"},
			flags: []string{"-dev"},
			want:  "b.hcl:1:1: Conflicting bootstrap settings; bootstrap_expect cannot be used together with bootstrap (set by flag -dev): bootstrap makes this server elect itself at once, bootstrap_expect waits for that many servers. Remove one of them.",
		},
		{
			name:  "bootstrap flag after bootstrap_expect",
			files: map[string]string{"b.hcl": server + "bootstrap_expect = 3\n"},
			flags: []string{"-bootstrap"},
			want:  "flag -bootstrap: Conflicting bootstrap settings; bootstrap cannot be used together with bootstrap_expect (set at b.hcl:3:1): bootstrap makes this server elect itself at once, bootstrap_expect waits for that many servers. Remove one of them.",
		},
		{
			name:  "bootstrap_expect on a client",
			files: map[string]string{"client.hcl": "server = false\nbootstrap_expect = 3\n"},
			want:  "client.hcl:2:1: Server-only setting; bootstrap_expect is only valid on servers, and this agent is a client; set server = true or remove bootstrap_expect.",
		},
		{
			name:  "bootstrap on a client",
			flags: []string{"-bootstrap"},
			want:  "flag -bootstrap: Server-only setting; bootstrap is only valid on servers, and this agent is a client; set server = true or remove bootstrap.",
		},
		{
			name:  "server turned off after bootstrap_expect",
			files: map[string]string{"client.json": "{\n\"server\": true,\n\"bootstrap_expect\": 3\n}"},
			flags: []string{"-server=false"},
			want:  "client.json:3:1: Server-only setting; bootstrap_expect is only valid on servers, and this agent is a client; set server = true or remove bootstrap_expect.",
		},

		// data_dir.
		{
			name:  "server without data_dir",
			files: map[string]string{"s.hcl": "node_name = \"s1\"\nserver = true\n"},
			want:  "s.hcl:2:1: Missing data_dir; data_dir is required for servers outside dev mode, to keep the Raft log and snapshots; set data_dir or -data-dir.",
		},
		{
			name:  "server flag without data_dir",
			flags: []string{"-server"},
			want:  "flag -server: Missing data_dir; data_dir is required for servers outside dev mode, to keep the Raft log and snapshots; set data_dir or -data-dir.",
		},
		{
			name:  "data_dir is a file",
			files: map[string]string{"d.hcl": "data_dir = \"d.hcl\"\n"},
			want:  `d.hcl:1:12: Invalid data_dir; data_dir "d.hcl" exists but is not a directory.`,
		},
		{
			name:  "data_dir cannot be created",
			files: map[string]string{"d.hcl": "data_dir = \"d.hcl/sub\"\n"},
			want:  `d.hcl:1:12: Invalid data_dir; data_dir "d.hcl/sub" could not be created: not a directory.`,
		},

		// Ports.
		{
			name:  "port out of range",
			files: map[string]string{"p.hcl": "ports {\n  serf_lan = 65536\n  server = -1\n}\n"},
			want: "p.hcl:2:14: Invalid ports.serf_lan; ports.serf_lan must be between 0 and 65535, got 65536.\n" +
				"p.hcl:3:12: Invalid ports.server; ports.server must be between 0 and 65535, got -1.",
		},
		{
			name:  "serf_lan and server collide",
			files: map[string]string{"p.hcl": "ports {\n  server = 8301\n}\n"},
			want:  "p.hcl:2:12: Port collision; ports.serf_lan and ports.server both use port 8301 on bind_addr 0.0.0.0; give each its own port.",
		},
		{
			name:  "http and server collide on overlapping addresses",
			files: map[string]string{"p.hcl": "ports {\n  http = 8300\n}\n"},
			want:  "p.hcl:2:10: Port collision; ports.http (on client_addr 127.0.0.1) and ports.server (on bind_addr 0.0.0.0) both use port 8300; give each its own port.",
		},
		{
			name:  "http collides by flag",
			files: map[string]string{"p.hcl": "bind_addr = \"127.0.0.1\"\n"},
			flags: []string{"-http-port=8301"},
			want:  "flag -http-port: Port collision; ports.http (on client_addr 127.0.0.1) and ports.serf_lan (on bind_addr 127.0.0.1) both use port 8301; give each its own port.",
		},

		// Names, logging, retry, performance.
		{
			name:  "empty node_name",
			files: map[string]string{"n.hcl": "node_name = \"\"\n"},
			want:  "n.hcl:1:13: Invalid node_name; node_name must not be empty.",
		},
		{
			name:  "bad node_name",
			flags: []string{"-node", "web 1"},
			want:  `flag -node: Invalid node_name; node_name "web 1" contains ' ': only letters, digits, '-', '_' and '.' are allowed.`,
		},
		{
			name:  "long node_name",
			files: map[string]string{"n.hcl": `node_name = "` + strings.Repeat("n", 129) + `"`},
			want:  "n.hcl:1:13: Invalid node_name; node_name must be at most 128 characters long, got 129.",
		},
		{
			name:  "bad datacenter",
			files: map[string]string{"n.hcl": "datacenter = \"eu.west\"\n"},
			want:  `n.hcl:1:14: Invalid datacenter; datacenter "eu.west" contains '.': only letters, digits, '-' and '_' are allowed.`,
		},
		{
			name:  "bad log_level",
			files: map[string]string{"l.hcl": "log_level = \"Verbose\"\n"},
			want:  `l.hcl:1:13: Invalid log_level; log_level must be one of trace, debug, info, warn or error, got "verbose".`,
		},
		{
			name:  "long value cut short",
			files: map[string]string{"l.hcl": `log_level = "` + strings.Repeat("x", 100) + `"`},
			want:  `l.hcl:1:13: Invalid log_level; log_level must be one of trace, debug, info, warn or error, got "` + strings.Repeat("x", 64) + `…".`,
		},
		{
			name:  "zero retry_interval",
			files: map[string]string{"r.hcl": "retry_interval = \"0s\"\n"},
			want:  "r.hcl:1:18: Invalid retry_interval; retry_interval must be positive, got 0s.",
		},
		{
			name:  "negative retry_interval by flag",
			flags: []string{"-retry-interval=-5s"},
			want:  "flag -retry-interval: Invalid retry_interval; retry_interval must be positive, got -5s.",
		},
		{
			name:  "negative retry_max",
			files: map[string]string{"r.hcl": "retry_max = -1\n"},
			want:  "r.hcl:1:13: Invalid retry_max; retry_max must be 0 (retry forever) or more, got -1.",
		},
		{
			name:  "empty retry_join entry",
			files: map[string]string{"r.hcl": "retry_join = [\"a\", \" \"]\n"},
			want:  "r.hcl:1:14: Invalid retry_join; retry_join entry 2 is empty.",
		},
		{
			name:  "raft_multiplier too high",
			files: map[string]string{"p.hcl": "performance {\n  raft_multiplier = 11\n}\n"},
			want:  "p.hcl:2:21: Invalid performance.raft_multiplier; performance.raft_multiplier must be between 1 and 10, got 11.",
		},
		{
			name:  "kv_max_value_size zero",
			files: map[string]string{"k.hcl": "kv_max_value_size = 0\n"},
			want:  "k.hcl:1:21: Invalid kv_max_value_size; kv_max_value_size must be between 1 and 67108864 bytes, got 0.",
		},
		{
			name:  "kv_max_value_size wrong type",
			files: map[string]string{"k.hcl": "kv_max_value_size = \"big\"\n"},
			want:  "k.hcl:1:21: Incorrect attribute value type; Inappropriate value for attribute \"kv_max_value_size\": a number is required.",
		},
		{
			name:  "limits.kv_max_value_size too large",
			files: map[string]string{"l.hcl": "limits {\n  kv_max_value_size = 67108865\n}\n"},
			want:  "l.hcl:2:23: Invalid kv_max_value_size; kv_max_value_size must be between 1 and 67108864 bytes, got 67108865.",
		},
		{
			name:  "txn_max_req_len zero",
			files: map[string]string{"l.hcl": "limits {\n  txn_max_req_len = 0\n}\n"},
			want:  "l.hcl:2:21: Invalid limits.txn_max_req_len; limits.txn_max_req_len must be between 1 and 67108864 bytes, got 0.",
		},
		{
			name:  "http_max_conns_per_client negative",
			files: map[string]string{"l.hcl": "limits {\n  http_max_conns_per_client = -1\n}\n"},
			want:  "l.hcl:2:31: Invalid limits.http_max_conns_per_client; limits.http_max_conns_per_client must be 0 (no limit) or more, got -1.",
		},
		{
			name:  "limits.rpc_rate",
			files: map[string]string{"l.hcl": "limits {\n  rpc_rate = 10\n}\n"},
			want:  `l.hcl:2:3: Consul setting "limits.rpc_rate" is not supported by Conclave; Conclave has no rate limit on forwarded requests; they would not be limited as this asks. Remove the setting.`,
		},
		{
			name:  "enable_debug wrong type",
			files: map[string]string{"d.hcl": "enable_debug = 1\n"},
			want:  `d.hcl:1:16: Incorrect attribute value type; Inappropriate value for attribute "enable_debug": bool required, but have number.`,
		},
		{
			name:  "raft_multiplier zero",
			files: map[string]string{"p.json": `{"performance": {"raft_multiplier": 0}}`},
			want:  "p.json:1:37: Invalid performance.raft_multiplier; performance.raft_multiplier must be between 1 and 10, got 0.",
		},

		// Addresses.
		{
			name:  "template without result",
			files: map[string]string{"a.hcl": `bind_addr = "{{ GetInterfaceIP \"no-such-interface\" }}"`},
			want:  `a.hcl:1:13: Invalid bind_addr; bind_addr template "{{ GetInterfaceIP \"no-such-interface\" }}" resolved to no address.`,
		},
		{
			name:  "template with several results",
			files: map[string]string{"a.hcl": `client_addr = "{{ \"127.0.0.1 127.0.0.2\" }}"`},
			want:  `a.hcl:1:15: Invalid client_addr; client_addr template "{{ \"127.0.0.1 127.0.0.2\" }}" resolved to 2 addresses (127.0.0.1, 127.0.0.2); it must resolve to exactly one.`,
		},
		{
			name:  "bad template",
			files: map[string]string{"a.hcl": `advertise_addr = "{{ GetPrivateIPz }}"`},
			want:  `a.hcl:1:18: Invalid advertise_addr; advertise_addr is not a valid go-sockaddr template: unable to parse template "{{ GetPrivateIPz }}": template: sockaddr.Parse:1: function "GetPrivateIPz" not defined.`,
		},
		{
			name:  "template resolving to a name",
			files: map[string]string{"a.hcl": `bind_addr = "{{ \"localhost\" }}"`},
			want:  `a.hcl:1:13: Invalid bind_addr; bind_addr template "{{ \"localhost\" }}" resolved to "localhost", which is not an IP address.`,
		},
		{
			name:  "host name",
			flags: []string{"-client", "localhost"},
			want:  `flag -client: Invalid client_addr; client_addr "localhost" is not an IP address.`,
		},
		{
			name:  "empty address",
			files: map[string]string{"a.json": `{"bind_addr": ""}`},
			want:  `a.json:1:15: Invalid bind_addr; bind_addr must not be empty.`,
		},
		{
			name:  "unspecified advertise_addr",
			flags: []string{"-advertise", "::"},
			want:  `flag -advertise: Invalid advertise_addr; advertise_addr must be an address other nodes can reach, not ::.`,
		},

		// Several problems at once, each at its source.
		{
			name: "every validation error",
			files: map[string]string{
				"a.hcl": "node_name = \"a b\"\nserver = true\n",
				"b.hcl": "log_level = \"loud\"\nports {\n  http = 70000\n}\n",
			},
			want: "a.hcl:1:13: Invalid node_name; node_name \"a b\" contains ' ': only letters, digits, '-', '_' and '.' are allowed.\n" +
				"b.hcl:1:13: Invalid log_level; log_level must be one of trace, debug, info, warn or error, got \"loud\".\n" +
				"b.hcl:3:10: Invalid ports.http; ports.http must be between 0 and 65535, or -1 for off, got 70000.\n" +
				"a.hcl:2:1: Missing data_dir; data_dir is required for servers outside dev mode, to keep the Raft log and snapshots; set data_dir or -data-dir.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inTempDir(t)
			writeFiles(t, tc.files)
			paths := tc.paths
			if paths == nil {
				for name := range tc.files {
					paths = append(paths, name)
				}
				slices.Sort(paths)
			}
			res, err := Load(LoadOptions{Paths: paths, Flags: parseFlags(t, tc.flags...)})
			if err == nil {
				t.Fatalf("Load(%q, flags %q) = %+v, want error %q", paths, tc.flags, res.Config, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Load(%q, flags %q) error:\n got: %s\nwant: %s", paths, tc.flags, got, tc.want)
			}
			var first *Error
			if !errors.As(err, &first) {
				t.Errorf("Load() error %T does not hold a *config.Error", err)
			} else if line, _, _ := strings.Cut(tc.want, "\n"); first.Error() != line {
				t.Errorf("first *Error = %q, want %q", first.Error(), line)
			}
		})
	}
}

func TestLoadDataDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write to any directory")
	}
	inTempDir(t)
	if err := os.Mkdir("ro", 0o500); err != nil {
		t.Fatal(err)
	}
	_, err := Load(LoadOptions{Flags: parseFlags(t, "-data-dir=ro")})
	want := `flag -data-dir: Invalid data_dir; data_dir "ro" is not writable: permission denied.`
	if err == nil || err.Error() != want {
		t.Errorf("Load(-data-dir=ro) error = %v, want %q", err, want)
	}
}

func TestLoadNoPrivateIP(t *testing.T) {
	inTempDir(t)
	privateIPTemplate = `{{ GetInterfaceIP "no-such-interface" }}`
	_, err := Load(LoadOptions{})
	want := `No address to advertise; bind_addr is 0.0.0.0, so this agent advertises its private IP, but {{ GetInterfaceIP "no-such-interface" }} found none (template "{{ GetInterfaceIP \"no-such-interface\" }}" resolved to no address); set advertise_addr.`
	if err == nil || err.Error() != want {
		t.Errorf("Load() error = %v, want %q", err, want)
	}
}
