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
// Ui to write to and the HTTP API flags (-http-addr, -token, -token-file,
// -datacenter, and the TLS flags -ca-file, -ca-path, -client-cert,
// -client-key, -tls-server-name). Such commands embed it.
type Meta struct {
	// Ui receives the command's output (Ui.Output) and its errors and
	// warnings (Ui.Error, Ui.Warn).
	Ui cli.Ui

	// apiConfig holds the values of the HTTP API flags once they are parsed.
	// Left empty, a field falls back to the environment inside
	// api.NewClientConfig, so that the order of precedence lives in one
	// place.
	apiConfig api.Config
}

// httpOptionsHelp documents the flags Meta.FlagSet adds. Commands append it
// to their own help text.
const httpOptionsHelp = `
HTTP API Options:

  -datacenter=<name>
     The datacenter the agent must belong to. It is sent as ?dc= with
     every request, and an agent of another datacenter refuses it.
     Default: the agent's own datacenter.

  -http-addr=<address>
     The address of the Conclave agent's HTTP API, as host:port or as an
     http:// or https:// URL. It can also be set with the
     CONCLAVE_HTTP_ADDR environment variable, or with Consul's
     CONSUL_HTTP_ADDR when that is unset. Default: 127.0.0.1:8500.

  -token=<value>
     A token sent with every request as the X-Consul-Token header. It can
     also be set with CONCLAVE_HTTP_TOKEN or, when that is unset,
     CONSUL_HTTP_TOKEN. Conclave has no ACLs yet: the agent accepts the
     token and ignores it, so that scripts written for Consul run
     unchanged.

  -token-file=<path>
     A file whose content is the token. It can also be set with
     CONCLAVE_HTTP_TOKEN_FILE or CONSUL_HTTP_TOKEN_FILE. A flag wins over
     any environment variable, and a CONCLAVE_ variable over a CONSUL_
     one; -token wins over -token-file.

  -ca-file=<path>
     A PEM file of the CAs the agent's HTTPS certificate must be signed
     by. It can also be set with CONCLAVE_CACERT or CONSUL_CACERT.
     Default: the system's CAs.

  -ca-path=<path>
     A directory of such PEM files. It can also be set with
     CONCLAVE_CAPATH or CONSUL_CAPATH.

  -client-cert=<path>
     A PEM client certificate for an agent with verify_incoming. Needs
     -client-key. It can also be set with CONCLAVE_CLIENT_CERT or
     CONSUL_CLIENT_CERT.

  -client-key=<path>
     The PEM key of -client-cert. It can also be set with
     CONCLAVE_CLIENT_KEY or CONSUL_CLIENT_KEY.

  -tls-server-name=<name>
     The name the agent's certificate is checked for, instead of the host
     of -http-addr, such as server.dc1.conclave. It can also be set with
     CONCLAVE_TLS_SERVER_NAME or CONSUL_TLS_SERVER_NAME.

  HTTPS is used when -http-addr is an https:// URL, or has no scheme and
  CONCLAVE_HTTP_SSL (or CONSUL_HTTP_SSL) is true. CONCLAVE_HTTP_SSL_VERIFY
  (or CONSUL_HTTP_SSL_VERIFY) = false turns off the check of the agent's
  certificate.
`

// FlagSet returns a flag set for the command name that carries the HTTP API
// flags. help is the command's Help(); see newFlagSet for how parse errors
// are reported.
func (m *Meta) FlagSet(name, help string) *flag.FlagSet {
	fs := newFlagSet(m.Ui, name, help)
	fs.StringVar(&m.apiConfig.Datacenter, "datacenter", "", "")
	fs.StringVar(&m.apiConfig.Address, "http-addr", "", "")
	fs.StringVar(&m.apiConfig.Token, "token", "", "")
	fs.StringVar(&m.apiConfig.TokenFile, "token-file", "", "")
	fs.StringVar(&m.apiConfig.TLS.CAFile, "ca-file", "", "")
	fs.StringVar(&m.apiConfig.TLS.CAPath, "ca-path", "", "")
	fs.StringVar(&m.apiConfig.TLS.CertFile, "client-cert", "", "")
	fs.StringVar(&m.apiConfig.TLS.KeyFile, "client-key", "", "")
	fs.StringVar(&m.apiConfig.TLS.ServerName, "tls-server-name", "", "")
	return fs
}

// Client returns a client for the agent the HTTP API flags name, falling
// back to the environment as api.Config describes.
func (m *Meta) Client() (*api.Client, error) {
	return api.NewClientConfig(m.apiConfig)
}

// Setup is the prologue of every command that talks to an agent. It parses
// args with fs, which FlagSet made, so that a bad flag is reported with the
// command's help; then it calls check, when not nil, to validate the
// arguments and the flag values, which reports its own problem on Ui and
// returns false; then it builds the client. It returns ok false, with the
// problem already reported on Ui.Error, when Run must return 1.
func (m *Meta) Setup(fs *flag.FlagSet, args []string, check func() bool) (client *api.Client, ok bool) {
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if check != nil && !check() {
		return nil, false
	}
	client, err := m.Client()
	if err != nil {
		m.Ui.Error("Error creating client: " + err.Error())
		return nil, false
	}
	return client, true
}

// noArgs is a check for Setup: it reports positional arguments, which the
// command does not take.
func (m *Meta) noArgs(fs *flag.FlagSet) bool {
	if fs.NArg() > 0 {
		m.Ui.Error("This command takes no arguments")
		return false
	}
	return true
}

// unsupportedFlag is a check for Setup: it reports a flag of Consul's that
// Conclave cannot honour (-wan, -prune) when it was set, so that a script
// is told instead of being silently served something else.
func (m *Meta) unsupportedFlag(set bool, name, what string) bool {
	if set {
		m.Ui.Error(fmt.Sprintf("-%s: %s is not supported by Conclave", name, what))
		return false
	}
	return true
}

// validFormat is a check for Setup: it reports a -format value that
// checkFormat refuses.
func (m *Meta) validFormat(format string) bool {
	if err := checkFormat(format); err != nil {
		m.Ui.Error(err.Error())
		return false
	}
	return true
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
