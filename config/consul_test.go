package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestConsulServerConfig loads a typical Consul server.hcl: every Consul
// setting Conclave does not implement is a warning at its file:line:column,
// and none is an error.
func TestConsulServerConfig(t *testing.T) {
	old := privateIPTemplate
	privateIPTemplate = `{{ "192.0.2.10" }}`
	t.Cleanup(func() { privateIPTemplate = old })

	dataDir := t.TempDir()
	path := filepath.Join("testdata", "consul-server.hcl")
	res, err := Load(LoadOptions{Paths: []string{path}, Flags: &Flags{DataDir: &dataDir}})
	if err != nil {
		t.Fatalf("Load(%s) error = %v", path, err)
	}
	want := []string{
		`testdata/consul-server.hcl:21:1: Consul setting "ui_config" is not supported by Conclave; Conclave has no web UI. The setting is ignored.`,
		`testdata/consul-server.hcl:25:1: Consul setting "connect" is not supported by Conclave; Conclave has no service catalog, so there is no service for Connect to secure. The setting is ignored.`,
		`testdata/consul-server.hcl:30:3: Consul setting "addresses.grpc" is not supported by Conclave; Conclave has no gRPC listener. The setting is ignored.`,
		`testdata/consul-server.hcl:31:3: Consul setting "addresses.dns" is not supported by Conclave; Conclave has no DNS interface. The setting is ignored.`,
		`testdata/consul-server.hcl:36:3: Consul setting "ports.grpc" is not supported by Conclave; Conclave has no gRPC listener. The setting is ignored.`,
		`testdata/consul-server.hcl:37:3: Consul setting "ports.grpc_tls" is not supported by Conclave; Conclave has no gRPC listener. The setting is ignored.`,
		`testdata/consul-server.hcl:38:3: Consul setting "ports.dns" is not supported by Conclave; Conclave has no DNS interface. The setting is ignored.`,
		`testdata/consul-server.hcl:40:3: Consul setting "ports.serf_wan" is not supported by Conclave; Conclave has no WAN gossip pool. The setting is ignored.`,
		`testdata/consul-server.hcl:46:3: Consul setting "performance.leave_drain_time" is not supported by Conclave; Conclave has no client connections to drain on leave. The setting is ignored.`,
		`testdata/consul-server.hcl:49:1: Consul setting "telemetry" is not supported by Conclave; Conclave sends no metrics to external sinks. The setting is ignored.`,
		`testdata/consul-server.hcl:54:1: Consul setting "dns_config" is not supported by Conclave; Conclave has no DNS interface. The setting is ignored.`,
		`testdata/consul-server.hcl:59:1: Consul setting "recursors" is not supported by Conclave; Conclave has no DNS interface. The setting is ignored.`,
		`testdata/consul-server.hcl:60:1: Consul setting "domain" is not supported by Conclave; Conclave has no DNS interface. The setting is ignored.`,
		`testdata/consul-server.hcl:61:1: Consul setting "disable_update_check" is not supported by Conclave; Conclave never checks for updates. The setting is ignored.`,
		`testdata/consul-server.hcl:62:1: Consul setting "enable_script_checks" is not supported by Conclave; Conclave has no health checks, so it runs no scripts. The setting is ignored.`,
		`testdata/consul-server.hcl:63:1: Consul setting "raft_protocol" is not supported by Conclave; Conclave always speaks Raft protocol 3. The setting is ignored.`,
		`testdata/consul-server.hcl:64:1: Consul setting "log_file" is not supported by Conclave; Logs go to stdout; let the service manager write them to a file. The setting is ignored.`,
		`testdata/consul-server.hcl:65:1: Consul setting "log_rotate_max_files" is not supported by Conclave; Logs go to stdout; see log_file. The setting is ignored.`,
		`testdata/consul-server.hcl:67:1: Consul setting "node_meta" is not supported by Conclave; Conclave has no node metadata. The setting is ignored.`,
	}
	if diff := cmp.Diff(want, res.Warnings); diff != "" {
		t.Errorf("Load(%s) warnings (-want +got):\n%s", path, diff)
	}
	// The settings Conclave has still apply.
	c := res.Config
	if c.NodeName != "consul-server-1" || !c.Server || c.BootstrapExpect != 3 || c.Ports.HTTP != 8500 || !c.LeaveOnTerminate || c.Limits.HTTPMaxConnsPerClient != 200 {
		t.Errorf("Load(%s) = %+v, want the file's node_name, server, bootstrap_expect, ports.http, leave_on_terminate, limits", path, c)
	}
}

// TestConsulSettingErrors checks the Consul settings whose absence would
// change what the agent does: they are errors that say so, at the key.
func TestConsulSettingErrors(t *testing.T) {
	tests := []struct {
		name, file, src, want string
	}{
		{
			name: "acl block",
			file: "server.hcl",
			src:  "server = true\nacl {\n  enabled = true\n  default_policy = \"deny\"\n}\n",
			want: `server.hcl:2:1: Consul setting "acl" is not supported by this Conclave version yet; Without ACLs every request would be allowed, which is not what an acl block asks for. Remove the setting until Conclave supports it.`,
		},
		{
			name: "empty acl block",
			file: "server.hcl",
			src:  "acl {}\n",
			want: `server.hcl:1:1: Consul setting "acl" is not supported by this Conclave version yet; Without ACLs every request would be allowed, which is not what an acl block asks for. Remove the setting until Conclave supports it.`,
		},
		{
			name: "legacy verify_incoming",
			file: "server.hcl",
			src:  "server = true\nverify_incoming = true\n",
			want: `server.hcl:2:1: Consul setting "verify_incoming" is not supported by Conclave; A legacy TLS key that Conclave does not read; set tls.defaults.verify_incoming instead. Remove the setting.`,
		},
		{
			name: "addresses.http",
			file: "server.hcl",
			src:  "addresses {\n  grpc = \"127.0.0.1\"\n  http = \"0.0.0.0\"\n}\n",
			want: `server.hcl:3:3: Consul setting "addresses.http" is not supported by Conclave; The HTTP API would bind to client_addr instead; set client_addr to this address. Remove the setting.`,
		},
		{
			name: "addresses as an object",
			file: "server.hcl",
			src:  "addresses = { http = \"0.0.0.0\" }\n",
			want: `server.hcl:1:15: Consul setting "addresses.http" is not supported by Conclave; The HTTP API would bind to client_addr instead; set client_addr to this address. Remove the setting.`,
		},
		{
			name: "retry_join_wan",
			file: "server.hcl",
			src:  "retry_join_wan = [\"10.1.0.1\"]\n",
			want: `server.hcl:1:1: Consul setting "retry_join_wan" is not supported by Conclave; Conclave has no WAN federation, so these servers would never be joined. Remove the setting.`,
		},
		{
			name: "JSON legacy ca_file",
			file: "server.json",
			src:  `{"server": true, "ca_file": "ca.pem"}`,
			want: `server.json:1:18: Consul setting "ca_file" is not supported by Conclave; A legacy TLS key that Conclave does not read; set tls.defaults.ca_file instead. Remove the setting.`,
		},
		{
			name: "JSON addresses.http",
			file: "server.json",
			src:  `{"addresses": {"http": "0.0.0.0"}}`,
			want: `server.json:1:16: Consul setting "addresses.http" is not supported by Conclave; The HTTP API would bind to client_addr instead; set client_addr to this address. Remove the setting.`,
		},
		{
			name: "JSON addresses.https",
			file: "server.json",
			src:  `{"ports": {"http": 8500}, "addresses": {"https": "0.0.0.0"}}`,
			want: `server.json:1:41: Consul setting "addresses.https" is not supported by Conclave; The HTTPS API would bind to client_addr instead; set client_addr to this address. Remove the setting.`,
		},
		{
			name: "JSON array of objects",
			file: "server.json",
			src:  `[{"server": true}, {"acl": {}}]`,
			want: `server.json:1:21: Consul setting "acl" is not supported by this Conclave version yet; Without ACLs every request would be allowed, which is not what an acl block asks for. Remove the setting until Conclave supports it.`,
		},
		{
			// A key that is neither Conclave's nor Consul's is still a typo.
			name: "typo",
			file: "server.hcl",
			src:  "ui_confg {}\n",
			want: `server.hcl:1:1: Unsupported block type; Blocks of type "ui_confg" are not expected here.`,
		},
		{
			// A Consul nested key at the top level is not that key.
			name: "grpc at the top level",
			file: "server.hcl",
			src:  "grpc = 8502\n",
			want: `server.hcl:1:1: Unsupported argument; An argument named "grpc" is not expected here.`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(LoadOptions{Paths: []string{path}})
			if err == nil {
				t.Fatalf("Load() error = nil, want %q", tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load() error = %#v, want a *Error", err)
			}
			ce.Filename = filepath.Base(ce.Filename)
			if got := ce.Error(); got != tc.want {
				t.Errorf("Load() first error =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestConsulSettingsDocumented keeps the table in website/configuration.md
// equal to consulSettings, which the loader uses.
func TestConsulSettingsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "website", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := consulTable()
	if !strings.Contains(string(doc), want) {
		t.Errorf("website/configuration.md does not contain the table of Consul settings; put this in it:\n%s", want)
	}
	for i := 1; i < len(consulSettings); i++ {
		if consulSettings[i-1].key >= consulSettings[i].key {
			t.Errorf("consulSettings not sorted: %q before %q", consulSettings[i-1].key, consulSettings[i].key)
		}
	}
}

// consulTable returns consulSettings as the Markdown table the
// configuration reference shows.
func consulTable() string {
	verdicts := map[consulVerdict]string{
		consulIgnore: "warning: ignored",
		consulRefuse: "error",
		consulNotYet: "error: not yet",
	}
	var b strings.Builder
	b.WriteString("| Consul setting | Conclave | Why |\n| --- | --- | --- |\n")
	for _, s := range consulSettings {
		b.WriteString("| `" + s.key + "` | " + verdicts[s.verdict] + " | " + s.reason + " |\n")
	}
	return b.String()
}
