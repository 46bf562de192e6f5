package command

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

// kvEntryJSON is one entry as the agent answers GET /v1/kv/<key>:
// "aGVsbG8gd29ybGQ=" is "hello world".
const kvEntryJSON = `{"Key":"redis/config/connections","CreateIndex":8,"ModifyIndex":21,"LockIndex":0,"Flags":42,"Value":"aGVsbG8gd29ybGQ="}`

// kvTreeJSON is the answer of GET /v1/kv/redis/?recurse: a value with a
// newline, a held key and an empty one.
const kvTreeJSON = `[
  ` + kvEntryJSON + `,
  {"Key":"redis/config/cpu","CreateIndex":9,"ModifyIndex":9,"LockIndex":2,"Flags":0,"Value":"MTI4Cm1heA==","Session":"b6f2c1a3-3f45-4a8e-9c7e-0d3f1c2b4a5e"},
  {"Key":"redis/empty","CreateIndex":30,"ModifyIndex":30,"LockIndex":0,"Flags":0,"Value":null}
]`

func newKVGetCommand(t *testing.T, routes map[string]reply) (*cli.MockUi, *KVGetCommand, *fakeAgent) {
	t.Helper()
	if routes == nil {
		routes = map[string]reply{
			"GET /v1/kv/redis/config/connections": ok("[" + kvEntryJSON + "]"),
			"GET /v1/kv/redis/":                   ok(kvTreeJSON),
			"GET /v1/kv/":                         ok(kvTreeJSON),
		}
	}
	agent := newFakeAgentWithHeader(t, routes, map[string][]string{"X-Consul-Index": {"30"}})
	ui := cli.NewMockUi()
	return ui, &KVGetCommand{Meta: Meta{Ui: ui}}, agent
}

func TestKVGetCommand(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		routes  map[string]reply
		wantReq string
		want    string // stdout, unless golden is set
		golden  string
	}{
		{
			name:    "value",
			args:    []string{"redis/config/connections"},
			wantReq: "GET /v1/kv/redis/config/connections",
			want:    "hello world\n",
		},
		{
			name:    "leading slash dropped",
			args:    []string{"/redis/config/connections"},
			wantReq: "GET /v1/kv/redis/config/connections",
			want:    "hello world\n",
		},
		{
			name:    "base64",
			args:    []string{"-base64", "redis/config/connections"},
			wantReq: "GET /v1/kv/redis/config/connections",
			want:    "aGVsbG8gd29ybGQ=\n",
		},
		{
			name:    "stale",
			args:    []string{"-stale", "redis/config/connections"},
			wantReq: "GET /v1/kv/redis/config/connections?stale=",
			want:    "hello world\n",
		},
		{
			name:    "detailed",
			args:    []string{"-detailed", "redis/config/connections"},
			wantReq: "GET /v1/kv/redis/config/connections",
			golden:  "kv_get_detailed",
		},
		{
			name:    "recurse",
			args:    []string{"-recurse", "redis/"},
			wantReq: "GET /v1/kv/redis/?recurse=",
			golden:  "kv_get_recurse",
		},
		{
			name:    "recurse everything",
			args:    []string{"-recurse"},
			wantReq: "GET /v1/kv/?recurse=",
			golden:  "kv_get_recurse",
		},
		{
			name:    "recurse detailed",
			args:    []string{"-recurse", "-detailed", "redis/"},
			wantReq: "GET /v1/kv/redis/?recurse=",
			golden:  "kv_get_recurse_detailed",
		},
		{
			name:    "recurse base64",
			args:    []string{"-recurse", "-base64", "redis/"},
			wantReq: "GET /v1/kv/redis/?recurse=",
			want:    "redis/config/connections:aGVsbG8gd29ybGQ=\nredis/config/cpu:MTI4Cm1heA==\nredis/empty:\n",
		},
		{
			name:    "recurse nothing",
			args:    []string{"-recurse", "nothing/"},
			routes:  map[string]reply{"GET /v1/kv/nothing/": {404, ""}},
			wantReq: "GET /v1/kv/nothing/?recurse=",
			want:    "",
		},
		{
			name:    "keys",
			args:    []string{"-keys", "redis/"},
			routes:  map[string]reply{"GET /v1/kv/redis/": ok(`["redis/config/","redis/empty"]`)},
			wantReq: "GET /v1/kv/redis/?keys=&separator=%2F",
			want:    "redis/config/\nredis/empty\n",
		},
		{
			name:    "keys without separator",
			args:    []string{"-keys", "-separator=", "redis/"},
			routes:  map[string]reply{"GET /v1/kv/redis/": ok(`["redis/config/connections","redis/config/cpu","redis/empty"]`)},
			wantReq: "GET /v1/kv/redis/?keys=",
			want:    "redis/config/connections\nredis/config/cpu\nredis/empty\n",
		},
		{
			name:    "keys win over recurse",
			args:    []string{"-keys", "-recurse", "-separator=:"},
			routes:  map[string]reply{"GET /v1/kv/": ok(`["a:","b"]`)},
			wantReq: "GET /v1/kv/?keys=&separator=%3A",
			want:    "a:\nb\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newKVGetCommand(t, tc.routes)
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 0 {
				t.Fatalf("Run(%q) = %d, want 0; stderr:\n%s", args, code, stderr)
			}
			if stderr != "" {
				t.Errorf("Run(%q) stderr = %q, want empty", args, stderr)
			}
			if tc.golden != "" {
				checkGolden(t, tc.golden, stdout)
			} else if stdout != tc.want {
				t.Errorf("Run(%q) stdout = %q, want %q", args, stdout, tc.want)
			}
			if diff := cmp.Diff([]string{tc.wantReq}, agent.requests()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKVDetail checks the alignment of kvDetail on its own: the values
// start six spaces past "ModifyIndex", as in consul kv get -detailed, and
// a value holding the column delimiter or a newline is printed as is.
func TestKVDetail(t *testing.T) {
	p := &api.KVPair{Key: "k", CreateIndex: 1, ModifyIndex: 2, Value: []byte("a\x1fb\nc")}
	got := kvDetail(p, func(v []byte) string { return string(v) })
	want := strings.Join([]string{
		"CreateIndex      1",
		"Flags            0",
		"Key              k",
		"LockIndex        0",
		"ModifyIndex      2",
		"Session          -",
		"Value            a\x1fb\nc",
	}, "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kvDetail() mismatch (-want +got):\n%s", diff)
	}
}

func TestKVGetCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		dead       bool
		wantPrefix string
		wantHelp   bool
	}{
		{
			name:       "missing key",
			routes:     map[string]reply{"GET /v1/kv/nope": {404, ""}},
			args:       []string{"nope"},
			wantPrefix: "Error! No key exists at: nope",
		},
		{name: "no key argument", args: nil, wantPrefix: "Error! Missing KEY argument"},
		{name: "slash only", args: []string{"/"}, wantPrefix: "Error! Missing KEY argument"},
		{name: "too many arguments", args: []string{"a", "b"}, wantPrefix: "Error! Too many arguments (expected 1, got 2)"},
		{
			name:       "server error",
			routes:     map[string]reply{"GET /v1/kv/k": {500, "No cluster leader\n"}},
			args:       []string{"k"},
			wantPrefix: "Error querying Conclave agent: Unexpected response code: 500 (No cluster leader)",
		},
		{
			name:       "recurse server error",
			routes:     map[string]reply{"GET /v1/kv/k": {400, "Cannot specify ?stale with ?consistent, conflicting semantics."}},
			args:       []string{"-recurse", "k"},
			wantPrefix: "Error querying Conclave agent: Unexpected response code: 400 (Cannot specify",
		},
		{
			name:       "keys bad answer",
			routes:     map[string]reply{"GET /v1/kv/k": ok("{")},
			args:       []string{"-keys", "k"},
			wantPrefix: "Error querying Conclave agent: decode GET /v1/kv/k response: ",
		},
		{name: "dead agent", dead: true, args: []string{"k"}, wantPrefix: "Error querying Conclave agent: "},
		{name: "bad http addr", args: []string{"-http-addr=unix:///x", "k"}, wantPrefix: "Error creating client: "},
		{name: "unknown flag", args: []string{"-bogus"}, wantPrefix: "flag provided but not defined: -bogus", wantHelp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.routes == nil {
				tc.routes = map[string]reply{}
			}
			ui, c, agent := newKVGetCommand(t, tc.routes)
			addr := agent.addr
			if tc.dead {
				addr = deadAddr(t)
			}
			args := append([]string{"-http-addr=" + addr}, tc.args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", args, stdout)
			}
			if tc.wantHelp {
				if !strings.HasPrefix(stderr, tc.wantPrefix+"\n") || !strings.Contains(stderr, c.Help()) {
					t.Errorf("Run(%q) stderr = %q, want %q then the help", args, stderr, tc.wantPrefix)
				}
				return
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}
