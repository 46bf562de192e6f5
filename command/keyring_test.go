package command

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func TestKeygenCommand(t *testing.T) {
	ui := cli.NewMockUi()
	c := &KeygenCommand{Ui: ui, Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 64))}
	code, stdout, stderr := run(t, ui, c)
	if want := "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n"; code != 0 || stdout != want || stderr != "" {
		t.Errorf("Run() = %d, stdout %q, stderr %q; want 0, %q", code, stdout, stderr, want)
	}

	// Two real keys differ and decode to 32 bytes.
	var keys []string
	for range 2 {
		ui := cli.NewMockUi()
		if code, stdout, _ := run(t, ui, &KeygenCommand{Ui: ui}); code == 0 {
			keys = append(keys, strings.TrimSpace(stdout))
		}
	}
	if len(keys) != 2 || keys[0] == keys[1] || len(keys[0]) != 44 {
		t.Errorf("two keygen runs = %q, want two different 44-character keys", keys)
	}

	ui = cli.NewMockUi()
	if code, _, stderr := run(t, ui, &KeygenCommand{Ui: ui}, "extra"); code != 1 || !strings.HasPrefix(stderr, "This command takes no arguments") {
		t.Errorf("Run(extra) = %d, stderr %q; want 1 and the refusal", code, stderr)
	}
}

func TestKeyringCommand_list(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/operator/keyring": ok(`[{"WAN":false,"Datacenter":"dc1","Segment":"",
		"Keys":{"bbbbbbbbbbbbbbbbbbbbbb==":1,"aaaaaaaaaaaaaaaaaaaaaa==":3},"PrimaryKeys":{"aaaaaaaaaaaaaaaaaaaaaa==":3},"NumNodes":3,"Messages":{}}]`)})
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &KeyringCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-list")
	if code != 0 || stderr != "" {
		t.Fatalf("Run(-list) = %d, stderr %q", code, stderr)
	}
	checkGolden(t, "keyring_list", stdout)

	ui = cli.NewMockUi()
	code, stdout, _ = run(t, ui, &KeyringCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, "-list-primary")
	if want := "==> Gathering installed encryption keys...\n\ndc1 (LAN):\n  aaaaaaaaaaaaaaaaaaaaaa== [3/3]\n"; code != 0 || stdout != want {
		t.Errorf("Run(-list-primary) = %d, stdout %q; want 0, %q", code, stdout, want)
	}
}

func TestKeyringCommand_changes(t *testing.T) {
	const key = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
	for _, tc := range []struct{ flag, method, info string }{
		{"-install", "POST", "==> Installing new gossip encryption key...\n"},
		{"-use", "PUT", "==> Changing primary gossip encryption key...\n"},
		{"-remove", "DELETE", "==> Removing gossip encryption key...\n"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			agent := newFakeAgent(t, map[string]reply{tc.method + " /v1/operator/keyring": ok("")})
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &KeyringCommand{Meta: Meta{Ui: ui}}, "-http-addr="+agent.addr, tc.flag+"="+key)
			if code != 0 || stdout != tc.info || stderr != "" {
				t.Errorf("Run(%s) = %d, stdout %q, stderr %q; want 0, %q", tc.flag, code, stdout, stderr, tc.info)
			}
			if diff := cmp.Diff([]string{tc.method + " /v1/operator/keyring"}, agent.requests()); diff != "" {
				t.Errorf("requests mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{`{"Key":"` + key + `"}`}, agent.requestBodies()); diff != "" {
				t.Errorf("bodies mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyringCommand_errors(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantPrefix string
		wantHelp   bool
	}{
		{name: "no action", wantPrefix: "An action must be specified", wantHelp: true},
		{name: "two actions", args: []string{"-list", "-install=x"}, wantPrefix: "Only a single action is allowed", wantHelp: true},
		{name: "argument", args: []string{"-list", "x"}, wantPrefix: "This command takes no arguments", wantHelp: true},
		{name: "empty key", args: []string{"-use="}, wantPrefix: "error: the key must not be empty"},
		{
			name:       "encryption off",
			routes:     map[string]reply{"GET /v1/operator/keyring": {500, "dc1 (LAN) error: Keyring is empty (encryption not enabled)"}},
			args:       []string{"-list"},
			wantPrefix: "error: Unexpected response code: 500 (dc1 (LAN) error: Keyring is empty (encryption not enabled))",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, tc.routes)
			ui := cli.NewMockUi()
			c := &KeyringCommand{Meta: Meta{Ui: ui}}
			args := append([]string{"-http-addr=" + agent.addr}, tc.args...)
			code, _, stderr := run(t, ui, c, args...)
			if code != 1 || !strings.HasPrefix(stderr, tc.wantPrefix) {
				t.Errorf("Run(%q) = %d, stderr %q; want 1 and %q", args, code, stderr, tc.wantPrefix)
			}
			if tc.wantHelp && (!strings.Contains(stderr, c.Help()) || len(agent.requests()) != 0) {
				t.Errorf("Run(%q) stderr %q, requests %q; want the help and no request", args, stderr, agent.requests())
			}
		})
	}
}

// TestValidateNeverShowsGossipKey: conclave validate, on a valid encrypt
// and on a bad one, prints neither.
func TestValidateNeverShowsGossipKey(t *testing.T) {
	const good, bad = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=", "c2VjcmV0c2VjcmV0c2Vj"
	for _, key := range []string{good, bad} {
		dir := writeConfig(t, map[string]string{"a.hcl": "node_name = \"a\"\nencrypt = \"" + key + "\"\n"})
		ui := cli.NewMockUi()
		code, stdout, stderr := run(t, ui, &ValidateCommand{Ui: ui}, dir)
		if wantCode := map[string]int{good: 0, bad: 1}[key]; code != wantCode {
			t.Errorf("validate with encrypt %s = %d, want %d; stderr %q", key[:4], code, wantCode, stderr)
		}
		if strings.Contains(stdout+stderr, key) {
			t.Errorf("validate output shows the key: %q %q", stdout, stderr)
		}
		if key == bad && !strings.Contains(stderr, "a.hcl:2:11: Invalid encrypt") {
			t.Errorf("validate stderr = %q, want the error at a.hcl:2:11", stderr)
		}
	}
}
