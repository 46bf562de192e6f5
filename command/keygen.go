package command

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"

	"github.com/hashicorp/cli"
)

// KeygenCommand is "conclave keygen": it prints a new gossip encryption
// key, as consul keygen does.
type KeygenCommand struct {
	Ui cli.Ui
	// Rand is the source of the key's bytes; nil is crypto/rand.
	Rand io.Reader
}

// keygenSize is the size of a generated key: 32 bytes, AES-256, Consul's.
const keygenSize = 32

const keygenHelp = `
Usage: conclave keygen

  Generates a new gossip encryption key: 32 random bytes, in base64. Give
  it to every agent as encrypt, or install it in a running cluster with
  conclave keyring -install.
`

// Help returns the usage text of the keygen command.
func (c *KeygenCommand) Help() string { return strings.TrimSpace(keygenHelp) }

// Synopsis returns a one-line description of the keygen command.
func (c *KeygenCommand) Synopsis() string { return "Generates a new gossip encryption key" }

// Run prints a new key and returns the exit code.
func (c *KeygenCommand) Run(args []string) int {
	fs := newFlagSet(c.Ui, "keygen", c.Help())
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() != 0 {
		c.Ui.Error("This command takes no arguments")
		fs.Usage()
		return 1
	}
	src := c.Rand
	if src == nil {
		src = rand.Reader
	}
	key := make([]byte, keygenSize)
	if _, err := io.ReadFull(src, key); err != nil {
		c.Ui.Error("Error reading random data: " + err.Error())
		return 1
	}
	c.Ui.Output(base64.StdEncoding.EncodeToString(key))
	return 0
}
