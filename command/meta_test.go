package command

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// httpEnv lists every environment variable the HTTP API flags fall back to.
var httpEnv = []string{
	api.HTTPAddrEnv, api.ConsulHTTPAddrEnv,
	api.HTTPTokenEnv, api.HTTPTokenFileEnv,
	api.ConsulHTTPTokenEnv, api.ConsulHTTPTokenFileEnv,
	api.CACertEnv, api.ConsulCACertEnv, api.CAPathEnv, api.ConsulCAPathEnv,
	api.ClientCertEnv, api.ConsulClientCertEnv, api.ClientKeyEnv, api.ConsulClientKeyEnv,
	api.HTTPSSLEnv, api.ConsulHTTPSSLEnv, api.HTTPSSLVerifyEnv, api.ConsulHTTPSSLVerifyEnv,
	api.TLSServerNameEnv, api.ConsulTLSServerNameEnv,
}

// clearHTTPEnv unsets, for the test, the variables of httpEnv that the
// environment of the test run may have set.
func clearHTTPEnv(t *testing.T) {
	t.Helper()
	for _, k := range httpEnv {
		t.Setenv(k, "")
	}
}

// kvAgent is a fake agent that answers "conclave kv get k".
func kvAgent(t *testing.T) *fakeAgent {
	t.Helper()
	return newFakeAgent(t, map[string]reply{
		"GET /v1/kv/k": ok(`[{"Key":"k","Value":"dg=="}]`),
	})
}

// runKVGet runs "conclave kv get" with args and fails the test unless it
// prints the value of k.
func runKVGet(t *testing.T, args ...string) {
	t.Helper()
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &KVGetCommand{Meta: Meta{Ui: ui}}, append(args, "k")...)
	if code != 0 || stdout != "v\n" {
		t.Fatalf("kv get %s = %d, stdout %q, stderr %q; want 0, \"v\\n\"", strings.Join(args, " "), code, stdout, stderr)
	}
}

func TestHTTPAddrPrecedence(t *testing.T) {
	tests := []struct {
		name                   string
		flag, conclave, consul bool
		want                   string
	}{
		{name: "flag over both variables", flag: true, conclave: true, consul: true, want: "flag"},
		{name: "CONCLAVE_HTTP_ADDR over CONSUL_HTTP_ADDR", conclave: true, consul: true, want: "conclave"},
		{name: "CONSUL_HTTP_ADDR alone", consul: true, want: "consul"},
		{name: "flag over CONSUL_HTTP_ADDR", flag: true, consul: true, want: "flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearHTTPEnv(t)
			agents := map[string]*fakeAgent{"flag": kvAgent(t), "conclave": kvAgent(t), "consul": kvAgent(t)}
			var args []string
			if tc.flag {
				args = append(args, "-http-addr", agents["flag"].addr)
			}
			if tc.conclave {
				t.Setenv(api.HTTPAddrEnv, agents["conclave"].addr)
			}
			if tc.consul {
				t.Setenv(api.ConsulHTTPAddrEnv, "http://"+agents["consul"].addr)
			}
			runKVGet(t, args...)
			for name, a := range agents {
				if got, want := len(a.requests()), 0; name == tc.want {
					want = 1
					if got != want {
						t.Errorf("agent %q got %d requests, want %d", name, got, want)
					}
				} else if got != want {
					t.Errorf("agent %q got %d requests, want none", name, got)
				}
			}
		})
	}
}

func TestTokenPrecedence(t *testing.T) {
	dir := t.TempDir()
	writeToken := func(name, token string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatalf("write token file: %v", err)
		}
		return path
	}
	flagFile := writeToken("flag", "from-flag-file")
	conclaveFile := writeToken("conclave", "from-conclave-file")
	consulFile := writeToken("consul", "from-consul-file")

	// Each case sets the sources from its index on, so that every source
	// is shown to win over all those after it.
	sources := []struct {
		name  string
		set   func(t *testing.T) []string
		token string
	}{
		{"-token", func(*testing.T) []string { return []string{"-token", "from-flag"} }, "from-flag"},
		{"-token-file", func(*testing.T) []string { return []string{"-token-file", flagFile} }, "from-flag-file"},
		{"CONCLAVE_HTTP_TOKEN", func(t *testing.T) []string { t.Setenv(api.HTTPTokenEnv, "from-conclave"); return nil }, "from-conclave"},
		{"CONCLAVE_HTTP_TOKEN_FILE", func(t *testing.T) []string { t.Setenv(api.HTTPTokenFileEnv, conclaveFile); return nil }, "from-conclave-file"},
		{"CONSUL_HTTP_TOKEN", func(t *testing.T) []string { t.Setenv(api.ConsulHTTPTokenEnv, "from-consul"); return nil }, "from-consul"},
		{"CONSUL_HTTP_TOKEN_FILE", func(t *testing.T) []string { t.Setenv(api.ConsulHTTPTokenFileEnv, consulFile); return nil }, "from-consul-file"},
		{"nothing", func(*testing.T) []string { return nil }, ""},
	}
	for i, winner := range sources {
		t.Run(winner.name, func(t *testing.T) {
			clearHTTPEnv(t)
			agent := kvAgent(t)
			args := []string{"-http-addr", agent.addr}
			for _, s := range sources[i:] {
				args = append(args, s.set(t)...)
			}
			runKVGet(t, args...)
			if diff := cmp.Diff([]string{winner.token}, agent.requestTokens()); diff != "" {
				t.Errorf("X-Consul-Token sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDatacenterFlag(t *testing.T) {
	clearHTTPEnv(t)
	agent := newFakeAgent(t, map[string]reply{"PUT /v1/kv/k": ok("true")})
	ui := cli.NewMockUi()
	code, _, stderr := run(t, ui, &KVPutCommand{Meta: Meta{Ui: ui}}, "-http-addr", agent.addr, "-datacenter", "dc2", "k", "v")
	if code != 0 {
		t.Fatalf("kv put = %d, stderr %q; want 0", code, stderr)
	}
	if diff := cmp.Diff([]string{"PUT /v1/kv/k?dc=dc2"}, agent.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestTokenNeverPrinted runs commands whose request fails, in every way
// that prints an error, and checks that the token shows in none of them.
func TestTokenNeverPrinted(t *testing.T) {
	const token = "d1e7e6a4-secret-token"
	refusing := newFakeAgent(t, map[string]reply{
		"GET /v1/kv/k":          {http.StatusForbidden, "Permission denied: token " + "with AccessorID 1 lacks permission"},
		"GET /v1/agent/members": {http.StatusInternalServerError, "boom"},
	})
	tests := []struct {
		name string
		cmd  func(Meta) cli.Command
		args []string
	}{
		{"refused", func(m Meta) cli.Command { return &KVGetCommand{Meta: m} }, []string{"-http-addr", refusing.addr, "-token", token, "k"}},
		{"server error", func(m Meta) cli.Command { return &MembersCommand{Meta: m} }, []string{"-http-addr", refusing.addr, "-token", token}},
		{"dead agent", func(m Meta) cli.Command { return &MembersCommand{Meta: m} }, []string{"-http-addr", deadAddr(t), "-token", token}},
		{"bad address", func(m Meta) cli.Command { return &MembersCommand{Meta: m} }, []string{"-http-addr", "unix:///x", "-token", token}},
		{"bad flag", func(m Meta) cli.Command { return &MembersCommand{Meta: m} }, []string{"-token", token, "-nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearHTTPEnv(t)
			t.Setenv(api.ConsulHTTPTokenEnv, token)
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, tc.cmd(Meta{Ui: ui}), tc.args...)
			if code != 1 {
				t.Errorf("Run() = %d, want 1", code)
			}
			if stderr == "" {
				t.Error("stderr is empty, want an error")
			}
			if strings.Contains(stdout+stderr, token) {
				t.Errorf("output shows the token:\nstdout: %s\nstderr: %s", stdout, stderr)
			}
		})
	}
}

func TestTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, env, path, want string
	}{
		{"missing file from flag", "", filepath.Join(dir, "missing"), "Error creating client: read token file given by -token-file: open "},
		{"empty file from CONSUL_HTTP_TOKEN_FILE", api.ConsulHTTPTokenFileEnv, empty, "Error creating client: token file " + empty + " given by CONSUL_HTTP_TOKEN_FILE is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearHTTPEnv(t)
			agent := kvAgent(t)
			args := []string{"-http-addr", agent.addr}
			if tc.env != "" {
				t.Setenv(tc.env, tc.path)
			} else {
				args = append(args, "-token-file", tc.path)
			}
			ui := cli.NewMockUi()
			code, _, stderr := run(t, ui, &KVGetCommand{Meta: Meta{Ui: ui}}, append(args, "k")...)
			if code != 1 {
				t.Errorf("Run() = %d, want 1", code)
			}
			checkOneLineError(t, stderr, tc.want)
			if n := len(agent.requests()); n != 0 {
				t.Errorf("agent got %d requests, want none", n)
			}
		})
	}
}

// TestHTTPFlagsInEveryCommand checks that each command that talks to an
// agent takes the HTTP API flags and documents them.
func TestHTTPFlagsInEveryCommand(t *testing.T) {
	ui := cli.NewMockUi()
	for name, factory := range Commands(ui) {
		cmd, err := factory()
		if err != nil {
			t.Fatalf("factory %q: %v", name, err)
		}
		if !slices.ContainsFunc([]string{"agent", "keygen", "validate", "version", "kv", "operator", "operator raft", "operator autopilot", "session", "snapshot", "snapshot inspect",
			"tls", "tls ca", "tls ca create", "tls cert", "tls cert create"}, func(s string) bool { return s == name }) {
			for _, f := range []string{"-datacenter=<name>", "-http-addr=<address>", "-token=<value>", "-token-file=<path>",
				"-ca-file=<path>", "-ca-path=<path>", "-client-cert=<path>", "-client-key=<path>", "-tls-server-name=<name>"} {
				if !strings.Contains(cmd.Help(), "\n  "+f+"\n") {
					t.Errorf("%s: Help() does not document %s", name, f)
				}
			}
		}
	}
}
