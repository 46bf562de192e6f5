package command

import (
	"flag"
	"strings"
	"testing"

	"github.com/hashicorp/cli"
)

// TestAgentHelpListsEveryFlag checks that the help is generated from the
// flag set: a flag added to config.Flags or to agentFlagSet shows up
// without anyone typing it again.
func TestAgentHelpListsEveryFlag(t *testing.T) {
	help := (&AgentCommand{Ui: cli.NewMockUi()}).Help()
	if strings.ContainsRune(help, '\t') {
		t.Error("Help() contains a tab character")
	}
	fs, _, _ := agentFlagSet()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		_, usage := flag.UnquoteUsage(f)
		if usage == "" {
			t.Errorf("flag -%s has no usage string", f.Name)
		}
		if !strings.Contains(help, "\n  -"+f.Name+"\n") && !strings.Contains(help, "\n  -"+f.Name+"=<") {
			t.Errorf("Help() does not list -%s", f.Name)
		}
		// The usage appears as words, rewrapped but in full.
		if got := strings.Join(strings.Fields(help), " "); !strings.Contains(got, strings.Join(strings.Fields(usage), " ")) {
			t.Errorf("Help() does not contain the usage of -%s: %q", f.Name, usage)
		}
	})
	if n < 20 {
		t.Errorf("flag set has %d flags, want at least 20", n)
	}
	if got := strings.Count(help, "\n  -"); got != n {
		t.Errorf("Help() lists %d flags, want %d", got, n)
	}
}

func TestAgentHelpLayout(t *testing.T) {
	help := (&AgentCommand{}).Help()
	for _, want := range []string{
		"Usage: conclave agent [options]",
		"\n  -bootstrap\n     Make this server elect itself at once.",
		"\n  -config-file=<file>\n     A configuration file,",
		"\n  -retry-join=<address>\n",
		"\nSignals:\n",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("Help() does not contain %q:\n%s", want, help)
		}
	}
	for i, l := range strings.Split(help, "\n") {
		if len(l) > helpWidth {
			t.Errorf("line %d is %d characters long, over %d: %q", i+1, len(l), helpWidth, l)
		}
	}
}

func TestAgentBadFlagPrintsHelp(t *testing.T) {
	ui := cli.NewMockUi()
	code, stdout, stderr := run(t, ui, &AgentCommand{Ui: ui}, "-no-such-flag")
	if code != 1 {
		t.Errorf("Run() = %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	if !strings.Contains(stderr, "flag provided but not defined: -no-such-flag") || !strings.Contains(stderr, "  -server-port=<port>") {
		t.Errorf("stderr = %q, want the parse error and the help", stderr)
	}
}
