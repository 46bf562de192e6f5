package command

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"
)

func TestCommands_names(t *testing.T) {
	commands := Commands(cli.NewMockUi())
	var got []string
	for name := range commands {
		got = append(got, name)
	}
	slices.Sort(got)
	want := []string{
		"agent", "force-leave", "health", "info", "join",
		"keygen", "keyring", "kv", "kv delete", "kv get", "kv put",
		"leave", "lock", "members", "monitor",
		"operator", "operator autopilot", "operator autopilot get-config", "operator autopilot health",
		"operator autopilot set-config", "operator autopilot state",
		"operator bootstrap", "operator discover", "operator raft",
		"operator raft list-peers", "operator raft recover-plan", "operator raft remove-peer", "operator raft transfer-leader",
		"reload",
		"session", "session destroy", "session info", "session list",
		"snapshot", "snapshot inspect", "snapshot restore", "snapshot save",
		"tls", "tls ca", "tls ca create", "tls cert", "tls cert create",
		"validate", "version",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Commands() names mismatch (-want +got):\n%s", diff)
	}
}

// TestCommands_help checks every command's Help and Synopsis: consul's check
// that Help contains no tab (cli.CLI indents help with spaces, and a tab
// breaks the alignment), plus the conventions in STYLE.md.
func TestCommands_help(t *testing.T) {
	for name, factory := range Commands(cli.NewMockUi()) {
		t.Run(name, func(t *testing.T) {
			c, err := factory()
			if err != nil {
				t.Fatalf("factory() error = %v", err)
			}
			help := c.Help()
			if strings.ContainsRune(help, '\t') {
				t.Errorf("Help() contains a tab character")
			}
			if help != strings.TrimSpace(help) {
				t.Errorf("Help() has leading or trailing white space")
			}
			if !strings.HasPrefix(help, "Usage: conclave "+name) {
				t.Errorf("Help() starts with %q, want %q", strings.SplitN(help, "\n", 2)[0], "Usage: conclave "+name)
			}
			syn := c.Synopsis()
			if syn == "" || len(syn) >= 50 {
				t.Errorf("Synopsis() = %q (%d characters), want 1 to 49", syn, len(syn))
			}
		})
	}
}
