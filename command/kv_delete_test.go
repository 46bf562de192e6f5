package command

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func newKVDeleteCommand(t *testing.T, routes map[string]reply) (*cli.MockUi, *KVDeleteCommand, *fakeAgent) {
	t.Helper()
	agent := newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	return ui, &KVDeleteCommand{Meta: Meta{Ui: ui}}, agent
}

func TestKVDeleteCommand(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		route   string
		wantReq string
		want    string
	}{
		{
			name: "key", args: []string{"redis/config/connections"},
			route: "DELETE /v1/kv/redis/config/connections", wantReq: "DELETE /v1/kv/redis/config/connections",
			want: "Success! Deleted key: redis/config/connections\n",
		},
		{
			name: "leading slash dropped", args: []string{"/a b"},
			route: "DELETE /v1/kv/a b", wantReq: "DELETE /v1/kv/a%20b",
			want: "Success! Deleted key: a b\n",
		},
		{
			name: "recurse", args: []string{"-recurse", "redis/"},
			route: "DELETE /v1/kv/redis/", wantReq: "DELETE /v1/kv/redis/?recurse=",
			want: "Success! Deleted keys with prefix: redis/\n",
		},
		{
			name: "recurse everything", args: []string{"-recurse"},
			route: "DELETE /v1/kv/", wantReq: "DELETE /v1/kv/?recurse=",
			want: "Success! Deleted keys with prefix: \n",
		},
		{
			name: "cas", args: []string{"-cas", "-modify-index=21", "k"},
			route: "DELETE /v1/kv/k", wantReq: "DELETE /v1/kv/k?cas=21",
			want: "Success! Deleted key: k\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newKVDeleteCommand(t, map[string]reply{tc.route: ok("true")})
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 0 {
				t.Fatalf("Run(%q) = %d, want 0; stderr:\n%s", args, code, stderr)
			}
			if stdout != tc.want || stderr != "" {
				t.Errorf("Run(%q) stdout = %q, stderr = %q; want %q and nothing", args, stdout, stderr, tc.want)
			}
			if diff := cmp.Diff([]string{tc.wantReq}, agent.requests()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKVDeleteCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		dead       bool
		wantPrefix string
		wantHelp   bool
		wantNoReq  bool
	}{
		{
			name:       "cas failed",
			routes:     map[string]reply{"DELETE /v1/kv/k": ok("false")},
			args:       []string{"-cas", "-modify-index=20", "k"},
			wantPrefix: "Error! Did not delete key k: CAS failed",
		},
		{name: "missing key", wantPrefix: "Error! Missing KEY argument", wantNoReq: true},
		{name: "too many arguments", args: []string{"a", "b"}, wantPrefix: "Error! Too many arguments (expected 1, got 2)", wantNoReq: true},
		{name: "cas and recurse", args: []string{"-cas", "-modify-index=1", "-recurse", "a/"}, wantPrefix: "Error! Cannot specify both -cas and -recurse", wantNoReq: true},
		{name: "cas without index", args: []string{"-cas", "k"}, wantPrefix: "Error! Missing -modify-index (required with -cas)", wantNoReq: true},
		{name: "index without cas", args: []string{"-modify-index=1", "k"}, wantPrefix: "Error! Cannot specify -modify-index without -cas", wantNoReq: true},
		{
			name:       "server error",
			routes:     map[string]reply{"DELETE /v1/kv/k": {503, "No cluster leader"}},
			args:       []string{"k"},
			wantPrefix: "Error deleting key k: Unexpected response code: 503 (No cluster leader)",
		},
		{
			name:       "recurse server error",
			routes:     map[string]reply{"DELETE /v1/kv/a/": {503, "No cluster leader"}},
			args:       []string{"-recurse", "a/"},
			wantPrefix: "Error! Did not delete prefix a/: Unexpected response code: 503 (No cluster leader)",
		},
		{
			name:       "cas server error",
			routes:     map[string]reply{"DELETE /v1/kv/k": {400, "Invalid cas: \"x\""}},
			args:       []string{"-cas", "-modify-index=1", "k"},
			wantPrefix: "Error! Did not delete key k: Unexpected response code: 400",
		},
		{name: "dead agent", dead: true, args: []string{"k"}, wantPrefix: "Error deleting key k: "},
		{name: "bad http addr", args: []string{"-http-addr=unix:///x", "k"}, wantPrefix: "Error creating client: ", wantNoReq: true},
		{name: "unknown flag", args: []string{"-bogus"}, wantPrefix: "flag provided but not defined: -bogus", wantHelp: true, wantNoReq: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newKVDeleteCommand(t, tc.routes)
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
			} else {
				checkOneLineError(t, stderr, tc.wantPrefix)
			}
			if tc.wantNoReq && len(agent.requests()) != 0 {
				t.Errorf("Run(%q) sent %q, want no request", args, agent.requests())
			}
		})
	}
}
