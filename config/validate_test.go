package config

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidate checks Validate on Configs built in code, whose errors carry
// no position.
func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		base     *Config         // default: Dev()
		mod      func(c *Config) // applied to base
		want     func(c *Config) // the completed Config; nil when an error is expected
		warnings []string
		err      string
	}{
		{
			name: "dev",
			mod:  func(*Config) {},
			want: func(*Config) {},
		},
		{
			name: "normalizes",
			mod: func(c *Config) {
				c.LogLevel, c.Datacenter = "WARN", "DC-East"
				c.BindAddr = `{{ "127.0.0.2" }}`
				c.AdvertiseAddr = ""
				c.ClientAddr = "::ffff:127.0.0.1"
			},
			want: func(c *Config) {
				c.LogLevel, c.Datacenter = "warn", "dc-east"
				c.BindAddr, c.AdvertiseAddr, c.ClientAddr = "127.0.0.2", "127.0.0.2", "::ffff:127.0.0.1"
			},
		},
		{
			name: "bootstrap_expect 1",
			mod: func(c *Config) {
				c.Bootstrap, c.BootstrapExpect, c.DevMode, c.DataDir = false, 1, false, "data"
			},
			want: func(c *Config) {
				c.Bootstrap, c.BootstrapExpect, c.DevMode, c.DataDir = true, 0, false, "data"
			},
			warnings: []string{"Single-server bootstrap; bootstrap_expect = 1 is the same as bootstrap = true: this server elects itself without waiting for others."},
		},
		{
			name: "bootstrap_expect 6",
			mod:  func(c *Config) { c.Bootstrap, c.BootstrapExpect = false, 6 },
			want: func(c *Config) { c.Bootstrap, c.BootstrapExpect = false, 6 },
			warnings: []string{"Even bootstrap_expect; bootstrap_expect = 6 tolerates the failure of 2 servers, " +
				"the same as 5: an even number of servers adds no fault tolerance. Consider 7."},
		},
		{
			name: "negative bootstrap_expect",
			mod:  func(c *Config) { c.Bootstrap, c.BootstrapExpect = false, -1 },
			err:  "Invalid bootstrap_expect; bootstrap_expect must be at least 1, got -1.",
		},
		{
			name: "bootstrap with bootstrap_expect",
			mod:  func(c *Config) { c.BootstrapExpect = 3 },
			err: "Conflicting bootstrap settings; bootstrap cannot be used together with bootstrap_expect: bootstrap makes " +
				"this server elect itself at once, bootstrap_expect waits for that many servers. Remove one of them.",
		},
		{
			name: "client with bootstrap and bootstrap_expect",
			mod:  func(c *Config) { c.Server, c.Bootstrap, c.BootstrapExpect = false, false, 3 },
			err:  "Server-only setting; bootstrap_expect is only valid on servers, and this agent is a client; set server = true or remove bootstrap_expect.",
		},
		{
			name: "server without data_dir",
			mod:  func(c *Config) { c.DevMode = false },
			err:  "Missing data_dir; data_dir is required for servers outside dev mode, to keep the Raft log and snapshots; set data_dir or -data-dir.",
		},
		{
			name: "unresolved advertise_addr",
			mod:  func(c *Config) { c.AdvertiseAddr = "0.0.0.0" },
			err:  "Invalid advertise_addr; advertise_addr must be an address other nodes can reach, not 0.0.0.0.",
		},
		{
			name: "IPv6 unspecified collides with IPv4",
			mod: func(c *Config) {
				c.BindAddr, c.AdvertiseAddr = "::", "::1"
				c.Ports.Server = c.Ports.HTTP
			},
			err: "Port collision; ports.http (on client_addr 127.0.0.1) and ports.server (on bind_addr ::) both use port 8500; give each its own port.",
		},
		{
			name: "different addresses do not collide",
			mod: func(c *Config) {
				c.BindAddr, c.AdvertiseAddr = "127.0.0.2", "127.0.0.2"
				c.Ports.HTTP = c.Ports.SerfLAN
			},
			want: func(c *Config) {
				c.BindAddr, c.AdvertiseAddr = "127.0.0.2", "127.0.0.2"
				c.Ports.HTTP = c.Ports.SerfLAN
			},
		},
		{
			name: "port 0 never collides",
			mod:  func(c *Config) { c.Ports = Ports{HTTPS: -1} },
			want: func(c *Config) { c.Ports = Ports{HTTPS: -1} },
		},
		{
			name: "all three ports equal",
			mod:  func(c *Config) { c.Ports = Ports{HTTP: 9000, HTTPS: -1, SerfLAN: 9000, Server: 9000} },
			err: "Port collision; ports.http (on client_addr 127.0.0.1) and ports.serf_lan (on bind_addr 127.0.0.1) both use port 9000; give each its own port.\n" +
				"Port collision; ports.http (on client_addr 127.0.0.1) and ports.server (on bind_addr 127.0.0.1) both use port 9000; give each its own port.\n" +
				"Port collision; ports.serf_lan and ports.server both use port 9000 on bind_addr 127.0.0.1; give each its own port.",
		},
		{
			name: "zero Config",
			base: &Config{BindAddr: "127.0.0.1", ClientAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1"},
			mod:  func(*Config) {},
			err: "Invalid node_name; node_name must not be empty.\n" +
				"Invalid datacenter; datacenter must not be empty.\n" +
				`Invalid log_level; log_level must be one of trace, debug, info, warn or error, got "".` + "\n" +
				"Missing HTTPS certificate; ports.https is 0, but no certificate is configured for HTTPS; set tls.https.cert_file and key_file (or tls.defaults.cert_file and key_file), or set ports.https = -1.\n" +
				"Invalid retry_interval; retry_interval must be positive, got 0s.\n" +
				"Invalid performance.raft_multiplier; performance.raft_multiplier must be between 1 and 10, got 0.\n" +
				"Invalid kv_max_value_size; kv_max_value_size must be between 1 and 67108864 bytes, got 0.\n" +
				"Invalid limits.txn_max_req_len; limits.txn_max_req_len must be between 1 and 67108864 bytes, got 0.\n" +
				"Invalid raft_logstore.verification.interval; raft_logstore.verification.interval must be positive, got 0s.\n" +
				"Invalid raft_logstore.wal.segment_size_mb; raft_logstore.wal.segment_size_mb must be between 1 and 1024, got 0.",
		},
		{
			name: "non-ASCII node_name",
			mod:  func(c *Config) { c.NodeName = "nœud" },
			err:  `Invalid node_name; node_name "nœud" contains 'œ': only letters, digits, '-', '_' and '.' are allowed.`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // for data_dir
			c := tc.base
			if c == nil {
				c = Dev()
			}
			tc.mod(c)
			warnings, err := c.Validate()
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Validate() error:\n got: %v\nwant: %s", err, tc.err)
				}
				var e *Error
				if !errors.As(err, &e) || e.Filename != "" || e.Line != 0 {
					t.Errorf("Validate() first error = %#v, want an *Error without position", e)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() error: %v", err)
			}
			want := Dev()
			tc.want(want)
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("Validate() config mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warnings); diff != "" {
				t.Errorf("Validate() warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Filename: "a.hcl", Line: 3, Column: 5, Summary: "S", Detail: "D."}, "a.hcl:3:5: S; D."},
		{Error{Filename: "flag -node", Summary: "S", Detail: "D."}, "flag -node: S; D."},
		{Error{Summary: "S", Detail: "D."}, "S; D."},
		{Error{Filename: "a.hcl", Line: 1, Column: 1, Summary: "S"}, "a.hcl:1:1: S"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%#v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"0.0.0.0", "127.0.0.1", true},
		{"10.0.0.1", "0.0.0.0", true},
		{"0.0.0.0", "::1", false},
		{"::", "127.0.0.1", true},
		{"::", "::1", true},
		{"::ffff:127.0.0.1", "127.0.0.1", true},
		{"::1", "127.0.0.1", false},
	}
	for _, tc := range tests {
		if got := overlap(mustAddr(t, tc.a), mustAddr(t, tc.b)); got != tc.want {
			t.Errorf("overlap(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
