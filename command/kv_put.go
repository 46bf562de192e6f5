package command

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// KVPutCommand is "conclave kv put": it writes one key of the key/value
// store, optionally as a check-and-set.
type KVPutCommand struct {
	Meta

	// stdin is read for the data "-". nil means os.Stdin; tests set it.
	stdin io.Reader
}

const kvPutHelp = `
Usage: conclave kv put [options] KEY [DATA]

  Writes DATA to KEY in the key/value store, creating or replacing the
  key. DATA is taken as is, except that "@path" reads it from the file at
  path and "-" reads it from stdin. Without DATA, the value is empty.

      $ conclave kv put redis/config/connections 5
      $ conclave kv put redis/config/tls @cert.pem
      $ echo 10 | conclave kv put redis/config/connections -

  Exit codes: 0 when the data was written, 1 on error or when a -cas
  check failed.

Options:

  -base64
     Decode DATA, however it is given, from base64 before writing it.

  -cas
     Write only if the key's ModifyIndex is still -modify-index
     (check-and-set). With -modify-index=0, write only if the key does not
     exist. Read the ModifyIndex with "conclave kv get -detailed".

  -flags=<uint>
     An unsigned 64-bit number stored with the value, for the application
     to interpret. Default: 0.

  -modify-index=<uint>
     The ModifyIndex that -cas expects. Required with -cas, refused
     without it.
` + httpOptionsHelp

// Help returns the usage text of the kv put command.
func (c *KVPutCommand) Help() string {
	return strings.TrimSpace(kvPutHelp)
}

// Synopsis returns a one-line description of the kv put command.
func (c *KVPutCommand) Synopsis() string {
	return "Writes a key to the key/value store"
}

// Run writes the key and returns the exit code.
func (c *KVPutCommand) Run(args []string) int {
	var (
		b64, cas    bool
		flags       uint64
		modifyIndex uint64
	)
	fs := c.FlagSet("kv put", c.Help())
	fs.BoolVar(&b64, "base64", false, "")
	fs.BoolVar(&cas, "cas", false, "")
	fs.Uint64Var(&flags, "flags", 0, "")
	fs.Uint64Var(&modifyIndex, "modify-index", 0, "")
	var (
		key  string
		data []byte
	)
	client, ok := c.Setup(fs, args, func() bool {
		// 0 is a valid -modify-index (create only), so "set" is not "non-zero".
		indexSet := flagSet(fs, "modify-index")
		switch {
		case cas && !indexSet:
			c.Ui.Error("Error! Missing -modify-index (required with -cas)")
			return false
		case indexSet && !cas:
			c.Ui.Error("Error! Cannot specify -modify-index without -cas")
			return false
		}
		var ok bool
		if key, data, ok = c.dataFromArgs(fs.Args()); !ok {
			return false
		}
		if b64 {
			var err error
			if data, err = base64.StdEncoding.DecodeString(string(data)); err != nil {
				c.Ui.Error("Error! Cannot base64-decode data: " + err.Error())
				return false
			}
		}
		return true
	})
	if !ok {
		return 1
	}
	pair := &api.KVPair{Key: key, Flags: flags, Value: data, ModifyIndex: modifyIndex}
	if cas {
		ok, err := client.KVCAS(pair)
		if err != nil {
			c.Ui.Error(fmt.Sprintf("Error! Did not write to %s: %v", key, err))
			return 1
		}
		if !ok {
			c.Ui.Error(fmt.Sprintf("Error! Did not write to %s: CAS failed", key))
			return 1
		}
	} else if err := client.KVPut(pair); err != nil {
		c.Ui.Error("Error! Failed writing data: " + err.Error())
		return 1
	}
	c.Ui.Output("Success! Data written to: " + key)
	return 0
}

// dataFromArgs returns the key and the data to write, as Consul's kv put
// reads them: DATA "@path" is the content of a file, "-" is stdin, and
// any other DATA, "-x" included, is taken literally. On a problem it
// writes the error to Ui and returns ok false.
func (c *KVPutCommand) dataFromArgs(args []string) (key string, data []byte, ok bool) {
	switch len(args) {
	case 0:
		c.Ui.Error("Error! Missing KEY argument")
		return "", nil, false
	case 1:
		return args[0], nil, true
	case 2:
	default:
		c.Ui.Error(fmt.Sprintf("Error! Too many arguments (expected 1 or 2, got %d)", len(args)))
		return "", nil, false
	}
	key, arg := args[0], args[1]
	var err error
	switch {
	case strings.HasPrefix(arg, "@"):
		if data, err = os.ReadFile(arg[1:]); err != nil {
			c.Ui.Error("Error! Failed to read file: " + err.Error())
			return "", nil, false
		}
	case arg == "-":
		stdin := c.stdin
		if stdin == nil {
			stdin = os.Stdin
		}
		if data, err = io.ReadAll(stdin); err != nil {
			c.Ui.Error("Error! Failed to read stdin: " + err.Error())
			return "", nil, false
		}
	default:
		data = []byte(arg)
	}
	return key, data, true
}

// flagSet reports whether the flag name was given on the command line,
// which tells an explicit zero from the default.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
