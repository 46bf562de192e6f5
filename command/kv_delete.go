package command

import (
	"fmt"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// KVDeleteCommand is "conclave kv delete": it deletes one key, optionally
// as a check-and-set, or every key under a prefix.
type KVDeleteCommand struct {
	Meta
}

const kvDeleteHelp = `
Usage: conclave kv delete [options] KEY_OR_PREFIX

  Deletes KEY from the key/value store. Deleting a key that does not exist
  succeeds. With -recurse, deletes every key that begins with the prefix;
  with -recurse and no prefix, every key in the store. A leading "/" is
  dropped from KEY_OR_PREFIX.

      $ conclave kv delete redis/config/connections
      $ conclave kv delete -recurse redis/

  Exit codes: 0 on success, 1 on error or when a -cas check failed.

Options:

  -cas
     Delete only if the key's ModifyIndex is still -modify-index
     (check-and-set). Read it with "conclave kv get -detailed". Not with
     -recurse.

  -modify-index=<uint>
     The ModifyIndex that -cas expects. Required with -cas, refused
     without it.

  -recurse
     Delete every key that begins with the prefix.
` + httpOptionsHelp

// Help returns the usage text of the kv delete command.
func (c *KVDeleteCommand) Help() string {
	return strings.TrimSpace(kvDeleteHelp)
}

// Synopsis returns a one-line description of the kv delete command.
func (c *KVDeleteCommand) Synopsis() string {
	return "Deletes keys from the key/value store"
}

// Run deletes and returns the exit code.
func (c *KVDeleteCommand) Run(args []string) int {
	var (
		cas, recurse bool
		modifyIndex  uint64
	)
	fs := c.FlagSet("kv delete", c.Help())
	fs.BoolVar(&cas, "cas", false, "")
	fs.Uint64Var(&modifyIndex, "modify-index", 0, "")
	fs.BoolVar(&recurse, "recurse", false, "")
	var key string
	client, ok := c.Setup(fs, args, func() bool {
		var ok bool
		if key, ok = c.keyArg(fs); !ok {
			return false
		}
		indexSet := flagSet(fs, "modify-index")
		switch {
		case key == "" && !recurse:
			c.Ui.Error("Error! Missing KEY argument")
		case cas && recurse:
			c.Ui.Error("Error! Cannot specify both -cas and -recurse")
		case cas && !indexSet:
			c.Ui.Error("Error! Missing -modify-index (required with -cas)")
		case indexSet && !cas:
			c.Ui.Error("Error! Cannot specify -modify-index without -cas")
		default:
			return true
		}
		return false
	})
	if !ok {
		return 1
	}
	switch {
	case recurse:
		if err := client.KVDeleteTree(key); err != nil {
			c.Ui.Error(fmt.Sprintf("Error! Did not delete prefix %s: %v", key, err))
			return 1
		}
		c.Ui.Output("Success! Deleted keys with prefix: " + key)
	case cas:
		ok, err := client.KVDeleteCAS(&api.KVPair{Key: key, ModifyIndex: modifyIndex})
		if err != nil {
			c.Ui.Error(fmt.Sprintf("Error! Did not delete key %s: %v", key, err))
			return 1
		}
		if !ok {
			c.Ui.Error(fmt.Sprintf("Error! Did not delete key %s: CAS failed", key))
			return 1
		}
		c.Ui.Output("Success! Deleted key: " + key)
	default:
		if err := client.KVDelete(key); err != nil {
			c.Ui.Error(fmt.Sprintf("Error deleting key %s: %v", key, err))
			return 1
		}
		c.Ui.Output("Success! Deleted key: " + key)
	}
	return 0
}
