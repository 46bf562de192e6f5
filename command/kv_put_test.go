package command

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func newKVPutCommand(t *testing.T, routes map[string]reply) (*cli.MockUi, *KVPutCommand, *fakeAgent) {
	t.Helper()
	agent := newFakeAgent(t, routes)
	ui := cli.NewMockUi()
	return ui, &KVPutCommand{Meta: Meta{Ui: ui}}, agent
}

func TestKVPutCommand(t *testing.T) {
	binary := "\x00\x01\xff\nbin"
	file := filepath.Join(t.TempDir(), "value.bin")
	if err := os.WriteFile(file, []byte(binary), 0o600); err != nil {
		t.Fatalf("write value file: %v", err)
	}
	cases := []struct {
		name     string
		args     []string
		stdin    string
		wantReq  string
		wantBody string
		wantOut  string
	}{
		{name: "value", args: []string{"redis/config/connections", "5"}, wantReq: "PUT /v1/kv/redis/config/connections", wantBody: "5"},
		{name: "no value", args: []string{"k"}, wantReq: "PUT /v1/kv/k", wantBody: ""},
		{name: "empty value", args: []string{"k", ""}, wantReq: "PUT /v1/kv/k", wantBody: ""},
		{name: "flags", args: []string{"-flags=42", "k", "v"}, wantReq: "PUT /v1/kv/k?flags=42", wantBody: "v"},
		{name: "file", args: []string{"k", "@" + file}, wantReq: "PUT /v1/kv/k", wantBody: binary},
		{name: "stdin", args: []string{"k", "-"}, stdin: "from stdin\n", wantReq: "PUT /v1/kv/k", wantBody: "from stdin\n"},
		{name: "dash word is literal", args: []string{"k", "-x"}, wantReq: "PUT /v1/kv/k", wantBody: "-x"},
		{name: "base64", args: []string{"-base64", "k", "AAH/"}, wantReq: "PUT /v1/kv/k", wantBody: "\x00\x01\xff"},
		{name: "cas", args: []string{"-cas", "-modify-index=123", "k", "v"}, wantReq: "PUT /v1/kv/k?cas=123", wantBody: "v"},
		{name: "cas create only", args: []string{"-cas", "-modify-index=0", "k", "v"}, wantReq: "PUT /v1/kv/k?cas=0", wantBody: "v"},
		{
			name: "key escaped", args: []string{"web 1/cfg?x", "v"},
			wantReq: "PUT /v1/kv/web%201/cfg%3Fx", wantBody: "v", wantOut: "Success! Data written to: web 1/cfg?x\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := strings.SplitN(strings.SplitN(tc.wantReq, "?", 2)[0], " ", 2)[1]
			ui, c, agent := newKVPutCommand(t, map[string]reply{
				// The fake agent matches the unescaped path.
				"PUT " + unescapePath(t, path): ok("true"),
			})
			c.stdin = strings.NewReader(tc.stdin)
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, stdout, stderr := run(t, ui, c, args...)
			if code != 0 {
				t.Fatalf("Run(%q) = %d, want 0; stderr:\n%s", args, code, stderr)
			}
			want := tc.wantOut
			if want == "" {
				want = "Success! Data written to: " + keyArg(tc.args) + "\n"
			}
			if stdout != want || stderr != "" {
				t.Errorf("Run(%q) stdout = %q, stderr = %q; want %q and nothing", args, stdout, stderr, want)
			}
			if diff := cmp.Diff([]string{tc.wantReq}, agent.requests()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{tc.wantBody}, agent.requestBodies()); diff != "" {
				t.Errorf("request body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// keyArg returns the first argument that is not a flag.
func keyArg(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

// unescapePath returns the decoded form of an escaped URL path, which is
// what the fake agent's routes are keyed by.
func unescapePath(t *testing.T, escaped string) string {
	t.Helper()
	p, err := url.PathUnescape(escaped)
	if err != nil {
		t.Fatalf("url.PathUnescape(%q) error = %v", escaped, err)
	}
	return p
}

func TestKVPutCommand_casFailed(t *testing.T) {
	ui, c, agent := newKVPutCommand(t, map[string]reply{"PUT /v1/kv/k": ok("false")})
	code, stdout, stderr := run(t, ui, c, "-http-addr="+agent.addr, "-cas", "-modify-index=7", "k", "v")
	if code != 1 {
		t.Errorf("Run() = %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("Run() stdout = %q, want empty", stdout)
	}
	if want := "Error! Did not write to k: CAS failed\n"; stderr != want {
		t.Errorf("Run() stderr = %q, want %q", stderr, want)
	}
}

func TestKVPutCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		dead       bool
		wantPrefix string
		wantHelp   bool
		wantNoReq  bool
	}{
		{name: "missing key", wantPrefix: "Error! Missing KEY argument", wantNoReq: true},
		{name: "too many arguments", args: []string{"k", "v", "w"}, wantPrefix: "Error! Too many arguments (expected 1 or 2, got 3)", wantNoReq: true},
		{name: "cas without index", args: []string{"-cas", "k", "v"}, wantPrefix: "Error! Missing -modify-index (required with -cas)", wantNoReq: true},
		{name: "index without cas", args: []string{"-modify-index=3", "k", "v"}, wantPrefix: "Error! Cannot specify -modify-index without -cas", wantNoReq: true},
		{name: "missing file", args: []string{"k", "@/nonexistent/value"}, wantPrefix: "Error! Failed to read file: open /nonexistent/value: ", wantNoReq: true},
		{name: "bad base64", args: []string{"-base64", "k", "not base64!"}, wantPrefix: "Error! Cannot base64-decode data: ", wantNoReq: true},
		{name: "bad flags value", args: []string{"-flags=-1", "k"}, wantPrefix: `invalid value "-1" for flag -flags: `, wantHelp: true, wantNoReq: true},
		{
			name:       "leading slash",
			args:       []string{"/k", "v"},
			wantPrefix: `Error! Failed writing data: put "/k": key must not begin with a '/'`,
			wantNoReq:  true,
		},
		{
			name:       "value too large",
			routes:     map[string]reply{"PUT /v1/kv/k": {413, "Value exceeds 524288 byte limit\n"}},
			args:       []string{"k", "v"},
			wantPrefix: "Error! Failed writing data: Unexpected response code: 413 (Value exceeds 524288 byte limit)",
		},
		{
			name:       "cas server error",
			routes:     map[string]reply{"PUT /v1/kv/k": {503, "No cluster leader"}},
			args:       []string{"-cas", "-modify-index=1", "k", "v"},
			wantPrefix: "Error! Did not write to k: Unexpected response code: 503 (No cluster leader)",
		},
		{name: "dead agent", dead: true, args: []string{"k", "v"}, wantPrefix: "Error! Failed writing data: "},
		{name: "bad http addr", args: []string{"-http-addr=unix:///x", "k"}, wantPrefix: "Error creating client: ", wantNoReq: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui, c, agent := newKVPutCommand(t, tc.routes)
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
				if !strings.HasPrefix(stderr, tc.wantPrefix) || !strings.Contains(stderr, c.Help()) {
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
