package command

import (
	"strings"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// TLSCACreateCommand is "conclave tls ca create": it writes a new
// certificate authority to <domain>-agent-ca.pem and its key to
// <domain>-agent-ca-key.pem.
type TLSCACreateCommand struct {
	// Ui receives the names of the files written, and the errors.
	Ui cli.Ui
}

const tlsCACreateHelp = `
Usage: conclave tls ca create [options]

  Makes a certificate authority for the certificates of "conclave tls cert
  create", as "consul tls ca create" does: an ECDSA P-256 key and a
  self-signed certificate, written to conclave-agent-ca.pem and
  conclave-agent-ca-key.pem (mode 0600) in the current directory. An
  existing file is not overwritten.

  Keep the key safe: whoever holds it can make a server certificate.

Options:

  -additional-name-constraint=<domain>
     Another domain the name constraint permits. Repeatable. Only with
     -name-constraint.

  -days=<n>
     How long the CA is valid, in days. Default: 1825.

  -domain=<domain>
     The domain of the certificates, and the prefix of the file names.
     The agent checks server names in "conclave", so change it only for
     certificates used elsewhere. Default: conclave.

  -name-constraint
     Limit the CA to the domain, localhost and the additional name
     constraints: a certificate it signs for another name is refused.
     Default: false.
`

// Help returns the usage text of the tls ca create command.
func (c *TLSCACreateCommand) Help() string {
	return strings.TrimSpace(tlsCACreateHelp)
}

// Synopsis returns a one-line description of the tls ca create command.
func (c *TLSCACreateCommand) Synopsis() string {
	return "Makes a certificate authority"
}

// Run makes the CA and returns the exit code.
func (c *TLSCACreateCommand) Run(args []string) int {
	var (
		opts        tlsutil.CAOptions
		constraints pathList
	)
	fs := newFlagSet(c.Ui, "tls ca create", c.Help())
	fs.IntVar(&opts.Days, "days", 1825, "")
	fs.StringVar(&opts.Domain, "domain", tlsutil.Domain, "")
	fs.BoolVar(&opts.NameConstraint, "name-constraint", false, "")
	fs.Var(&constraints, "additional-name-constraint", "")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	switch {
	case fs.NArg() > 0:
		c.Ui.Error("This command takes no arguments")
		return 1
	case opts.Days <= 0:
		c.Ui.Error("Invalid -days: must be at least 1")
		return 1
	case opts.Domain == "":
		c.Ui.Error("Invalid -domain: must not be empty")
		return 1
	case len(constraints) > 0 && !opts.NameConstraint:
		c.Ui.Error("-additional-name-constraint needs -name-constraint")
		return 1
	}
	opts.AdditionalConstraints = constraints

	certFile, keyFile := opts.Domain+"-agent-ca.pem", opts.Domain+"-agent-ca-key.pem"
	if err := checkAbsent(certFile, keyFile); err != nil {
		c.Ui.Error("Error creating CA: " + err.Error())
		return 1
	}
	certPEM, keyPEM, err := tlsutil.GenerateCA(opts)
	if err != nil {
		c.Ui.Error("Error creating CA: " + err.Error())
		return 1
	}
	// The key first: a CA certificate without its key is useless, a key
	// without its certificate is found at once by the next attempt.
	if err := writeNew(keyFile, keyPEM, keyFileMode); err != nil {
		c.Ui.Error("Error saving CA key: " + err.Error())
		return 1
	}
	if err := writeNew(certFile, certPEM, certFileMode); err != nil {
		c.Ui.Error("Error saving CA certificate: " + err.Error())
		return 1
	}
	c.Ui.Output("==> Saved " + certFile)
	c.Ui.Output("==> Saved " + keyFile)
	return 0
}
