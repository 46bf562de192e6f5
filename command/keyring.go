package command

import (
	"flag"
	"fmt"
	"sort"
	"strings"
)

// KeyringCommand is "conclave keyring": it lists, installs, switches to
// and removes gossip encryption keys on every member of the pool, as
// consul keyring does.
type KeyringCommand struct {
	Meta
}

const keyringHelp = `
Usage: conclave keyring [options]

  Manages the gossip encryption keys of every member of the pool. Exactly
  one action is allowed per run. Gossip encryption must be on (encrypt).

  To rotate the key: -install the new key, -use it, then -remove the old
  one. Every member must answer for an action to succeed.

Keyring options:

  -list              List the keys installed, with how many members have
                     each.
  -list-primary      List the primary keys (those members encrypt with).
  -install=<key>     Install a new key (base64; conclave keygen makes one).
  -use=<key>         Make an installed key the primary key.
  -remove=<key>      Remove a key. The primary key cannot be removed.
` + httpOptionsHelp

// Help returns the usage text of the keyring command.
func (c *KeyringCommand) Help() string { return strings.TrimSpace(keyringHelp) }

// Synopsis returns a one-line description of the keyring command.
func (c *KeyringCommand) Synopsis() string { return "Manages gossip encryption keys" }

// Run performs the one action asked and returns the exit code.
func (c *KeyringCommand) Run(args []string) int {
	var (
		install, use, remove string
		list, listPrimary    bool
	)
	fs := c.FlagSet("keyring", c.Help())
	fs.BoolVar(&list, "list", false, "")
	fs.BoolVar(&listPrimary, "list-primary", false, "")
	fs.StringVar(&install, "install", "", "")
	fs.StringVar(&use, "use", "", "")
	fs.StringVar(&remove, "remove", "", "")
	client, ok := c.Setup(fs, args, func() bool {
		n := 0
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "list", "list-primary", "install", "use", "remove":
				n++
			}
		})
		switch {
		case n == 0:
			c.Ui.Error("An action must be specified: -list, -list-primary, -install, -use or -remove")
		case n > 1:
			c.Ui.Error("Only a single action is allowed")
		case fs.NArg() != 0:
			c.Ui.Error("This command takes no arguments")
		default:
			return true
		}
		c.Ui.Error("")
		c.Ui.Error(c.Help())
		return false
	})
	if !ok {
		return 1
	}
	switch {
	case list || listPrimary:
		c.Ui.Info("==> Gathering installed encryption keys...")
		pools, err := client.KeyringList()
		if err != nil {
			c.Ui.Error("error: " + err.Error())
			return 1
		}
		for _, p := range pools {
			name := p.Datacenter + " (LAN)"
			if p.WAN {
				name = "WAN"
			}
			c.Ui.Output("")
			c.Ui.Output(name + ":")
			keys := p.Keys
			if listPrimary {
				keys = p.PrimaryKeys
			}
			sorted := make([]string, 0, len(keys))
			for k := range keys {
				sorted = append(sorted, k)
			}
			sort.Strings(sorted)
			for _, k := range sorted {
				c.Ui.Output(fmt.Sprintf("  %s [%d/%d]", k, keys[k], p.NumNodes))
			}
		}
	case install != "":
		c.Ui.Info("==> Installing new gossip encryption key...")
		if err := client.KeyringInstall(install); err != nil {
			c.Ui.Error("error: " + err.Error())
			return 1
		}
	case use != "":
		c.Ui.Info("==> Changing primary gossip encryption key...")
		if err := client.KeyringUse(use); err != nil {
			c.Ui.Error("error: " + err.Error())
			return 1
		}
	case remove != "":
		c.Ui.Info("==> Removing gossip encryption key...")
		if err := client.KeyringRemove(remove); err != nil {
			c.Ui.Error("error: " + err.Error())
			return 1
		}
	default:
		// -install="" and the like: a flag given with no key.
		c.Ui.Error("error: the key must not be empty")
		return 1
	}
	return 0
}
