package command

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/hashicorp/cli"
	"github.com/ryanuber/columnize"

	"github.com/conclavehq/conclave/agent/api"
)

// Meta holds what every command that talks to a running agent shares: the
// Ui to write to and the -http-addr flag. Such commands embed it.
type Meta struct {
	// Ui receives the command's output (Ui.Output) and its errors and
	// warnings (Ui.Error, Ui.Warn).
	Ui cli.Ui

	// httpAddr is the value of -http-addr once the flags are parsed.
	httpAddr string
}

// httpOptionsHelp documents the flags Meta.FlagSet adds. Commands append it
// to their own help text.
const httpOptionsHelp = `
HTTP API Options:

  -http-addr=<address>
     The address of the Conclave agent's HTTP API, as host:port or as an
     http:// or https:// URL. It can also be set with the
     CONCLAVE_HTTP_ADDR environment variable. Default: 127.0.0.1:8500.
`

// FlagSet returns a flag set for the command name that carries the shared
// -http-addr flag. help is the command's Help(); see newFlagSet for how
// parse errors are reported.
func (m *Meta) FlagSet(name, help string) *flag.FlagSet {
	fs := newFlagSet(m.Ui, name, help)
	// Left empty, the address falls back to CONCLAVE_HTTP_ADDR and then to
	// api.DefaultHTTPAddr inside api.NewClient, so the rule lives in one place.
	fs.StringVar(&m.httpAddr, "http-addr", "", "")
	return fs
}

// Client returns a client for the agent named by -http-addr, or, when that
// is unset, by CONCLAVE_HTTP_ADDR or else api.DefaultHTTPAddr.
func (m *Meta) Client() (*api.Client, error) {
	return api.NewClient(m.httpAddr)
}

// newFlagSet returns a flag set that returns parse errors instead of
// exiting. The error and then help are written to ui.Error, so that stdout
// stays clean for scripts.
func newFlagSet(ui cli.Ui, name, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(uiErrorWriter{ui})
	fs.Usage = func() { ui.Error(help) }
	return fs
}

// uiErrorWriter passes each write, normally one message from the flag
// package, to Ui.Error.
type uiErrorWriter struct{ ui cli.Ui }

// Write implements io.Writer.
func (w uiErrorWriter) Write(p []byte) (int, error) {
	w.ui.Error(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Output formats accepted by the -format flag.
const (
	formatText = "text"
	formatJSON = "json"
)

// formatFlagHelp documents -format for the commands that offer it.
const formatFlagHelp = `
  -format=<text|json>
     Output format. "json" prints the HTTP API's answer as indented JSON.
     Default: text.
`

// checkFormat returns an error unless f is a format the -format flag accepts.
func checkFormat(f string) error {
	if f != formatText && f != formatJSON {
		return fmt.Errorf("invalid -format %q: want %q or %q", f, formatText, formatJSON)
	}
	return nil
}

// outputJSON writes v to ui as indented JSON.
func outputJSON(ui cli.Ui, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	ui.Output(string(b))
	return nil
}

// columnDelim separates the fields of each row given to formatTable. A
// control character cannot appear in a node name or tag, unlike "|",
// columnize's default (consul's members command does the same).
const columnDelim = "\x1f"

// formatTable aligns rows of fields into columns. The first row is the
// header.
func formatTable(rows [][]string) string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = strings.Join(r, columnDelim)
	}
	return trimLines(columnize.Format(lines, &columnize.Config{Delim: columnDelim}))
}

// formatKV aligns key/value pairs as "Key = value" lines.
func formatKV(pairs [][2]string) string {
	lines := make([]string, len(pairs))
	for i, p := range pairs {
		lines[i] = p[0] + columnDelim + p[1]
	}
	return trimLines(columnize.Format(lines, &columnize.Config{Delim: columnDelim, Glue: " = "}))
}

// trimLines removes the padding columnize leaves at the end of a line whose
// last fields are empty.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// helpWidth is the width flagsHelp wraps usage text to, as in the
// hand-written help of the other commands.
const helpWidth = 77

// flagsHelp formats every flag of fs, sorted by name, in the layout of the
// commands' help: "  -name=<value>" on one line, then the usage indented
// by five spaces and wrapped. A word in backquotes in the usage names the
// value, as for flag.PrintDefaults; a boolean flag has no value.
func flagsHelp(fs *flag.FlagSet) string {
	var entries []string
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		head := "  -" + f.Name
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			head += "=<" + name + ">"
		}
		entries = append(entries, head+"\n"+wrap(usage, "     ", helpWidth))
	})
	return strings.Join(entries, "\n\n")
}

// wrap fills the words of s into lines of at most width characters, each
// starting with indent. A word longer than a line gets a line of its own.
func wrap(s, indent string, width int) string {
	var (
		b    strings.Builder
		line = indent
	)
	for _, w := range strings.Fields(s) {
		if line != indent && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}
