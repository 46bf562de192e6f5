package command

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/hashicorp/cli"
)

// TLSCommand is "conclave tls", the parent of the commands that make
// development certificates. It only shows help.
type TLSCommand struct{}

const tlsHelp = `
Usage: conclave tls <subcommand> [options]

  Makes a certificate authority and the certificates of servers and
  client agents, as "consul tls" does, with the standard library (ECDSA
  P-256). The files are written in the current directory, and an
  existing file is never overwritten.

  Make a CA, then a server certificate and a client certificate:

      $ conclave tls ca create
      $ conclave tls cert create -server -dc dc1
      $ conclave tls cert create -client -dc dc1
`

// Help returns the usage text of the tls command.
func (c *TLSCommand) Help() string {
	return strings.TrimSpace(tlsHelp)
}

// Synopsis returns a one-line description of the tls command.
func (c *TLSCommand) Synopsis() string {
	return "Makes certificates for TLS"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *TLSCommand) Run(args []string) int {
	return cli.RunResultHelp
}

// TLSCACommand is "conclave tls ca", the parent of "tls ca create".
type TLSCACommand struct{}

const tlsCAHelp = `
Usage: conclave tls ca <subcommand> [options]

  Makes a certificate authority. Run "conclave tls ca create -h" for its
  options.
`

// Help returns the usage text of the tls ca command.
func (c *TLSCACommand) Help() string {
	return strings.TrimSpace(tlsCAHelp)
}

// Synopsis returns a one-line description of the tls ca command.
func (c *TLSCACommand) Synopsis() string {
	return "Makes a certificate authority"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *TLSCACommand) Run(args []string) int {
	return cli.RunResultHelp
}

// TLSCertCommand is "conclave tls cert", the parent of "tls cert create".
type TLSCertCommand struct{}

const tlsCertHelp = `
Usage: conclave tls cert <subcommand> [options]

  Makes the certificates of servers and client agents. Run
  "conclave tls cert create -h" for its options.
`

// Help returns the usage text of the tls cert command.
func (c *TLSCertCommand) Help() string {
	return strings.TrimSpace(tlsCertHelp)
}

// Synopsis returns a one-line description of the tls cert command.
func (c *TLSCertCommand) Synopsis() string {
	return "Makes server and client certificates"
}

// Run returns cli.RunResultHelp so that the CLI lists the subcommands.
func (c *TLSCertCommand) Run(args []string) int {
	return cli.RunResultHelp
}

// File modes of what "conclave tls" writes: a certificate is public, a
// key is readable by its owner only.
const (
	certFileMode = 0o644
	keyFileMode  = 0o600
)

// checkAbsent returns an error, as Consul words it, if one of paths exists,
// so that a command writes all its files or none.
func checkAbsent(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("file %q already exists", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

// writeNew writes b to a new file path with the given mode; it never
// overwrites an existing file, even one created since checkAbsent.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("file %q already exists", path)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
