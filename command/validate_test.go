package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/cli"
)

// writeConfig writes files (name to content) into a new directory and
// returns its path.
func writeConfig(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	return dir
}

func TestValidateCommand_valid(t *testing.T) {
	dir := writeConfig(t, map[string]string{
		"a.hcl":  "server = true\nbind_addr = \"127.0.0.1\"\ndata_dir = \"" + filepath.ToSlash(t.TempDir()) + "\"\n",
		"b.json": `{"bootstrap_expect": 1}`,
	})
	cases := []struct {
		name     string
		args     []string
		wantWarn string
	}{
		{name: "directory", args: []string{dir}, wantWarn: "Single-server bootstrap"},
		{name: "one file", args: []string{filepath.Join(dir, "a.hcl")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &ValidateCommand{Ui: ui}, tc.args...)
			if code != 0 {
				t.Fatalf("Run(%q) = %d, want 0; stderr:\n%s", tc.args, code, stderr)
			}
			if want := "Configuration is valid!\n"; stdout != want {
				t.Errorf("Run(%q) stdout = %q, want %q", tc.args, stdout, want)
			}
			if tc.wantWarn == "" && stderr != "" {
				t.Errorf("Run(%q) stderr = %q, want empty", tc.args, stderr)
			}
			if !strings.Contains(stderr, tc.wantWarn) {
				t.Errorf("Run(%q) stderr = %q, want a warning containing %q", tc.args, stderr, tc.wantWarn)
			}
		})
	}
}

func TestValidateCommand_invalid(t *testing.T) {
	dir := writeConfig(t, map[string]string{
		"typo.hcl":   "server = true\nbootstrap_expec = 3\n",
		"levels.hcl": "log_levl = \"debug\"\n",
	})
	typo := filepath.Join(dir, "typo.hcl")
	cases := []struct {
		name       string
		args       []string
		wantStderr []string // prefixes of the stderr lines, in order
	}{
		{
			name:       "one problem",
			args:       []string{typo},
			wantStderr: []string{"Config validation failed: " + typo + ":2:1: Unsupported argument"},
		},
		{
			name:       "missing file",
			args:       []string{filepath.Join(dir, "nope.hcl")},
			wantStderr: []string{"Config validation failed: "},
		},
		{
			name: "two problems",
			args: []string{filepath.Join(dir, "levels.hcl"), typo},
			wantStderr: []string{
				"Config validation failed:",
				"  " + filepath.Join(dir, "levels.hcl") + ":1:1: Unsupported argument",
				"  " + typo + ":2:1: Unsupported argument",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &ValidateCommand{Ui: ui}, tc.args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", tc.args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", tc.args, stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != len(tc.wantStderr) {
				t.Fatalf("Run(%q) stderr has %d lines, want %d:\n%s", tc.args, len(lines), len(tc.wantStderr), stderr)
			}
			for i, want := range tc.wantStderr {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("Run(%q) stderr line %d = %q, want prefix %q", tc.args, i+1, lines[i], want)
				}
			}
		})
	}
}

func TestValidateCommand_noArgs(t *testing.T) {
	ui := cli.NewMockUi()
	c := &ValidateCommand{Ui: ui}
	code, stdout, stderr := run(t, ui, c)
	if code != 1 {
		t.Errorf("Run() = %d, want 1", code)
	}
	if stdout != "" || !strings.HasPrefix(stderr, "Must specify at least one") || !strings.Contains(stderr, c.Help()) {
		t.Errorf("Run() stdout = %q, stderr = %q; want an error and the help on stderr only", stdout, stderr)
	}
}
