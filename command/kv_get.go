package command

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/conclavehq/conclave/agent/api"
)

// KVGetCommand is "conclave kv get": it reads one key, every key under a
// prefix, or the key names under a prefix.
type KVGetCommand struct {
	Meta
}

const kvGetHelp = `
Usage: conclave kv get [options] [KEY_OR_PREFIX]

  Reads the value of KEY from the key/value store and prints it as is,
  followed by a newline. With -recurse, prints "key:value" for every key
  that begins with the prefix; with -keys, prints the key names only. A
  leading "/" is dropped from KEY_OR_PREFIX.

      $ conclave kv get redis/config/connections
      5
      $ conclave kv get -recurse redis/
      redis/config/connections:5
      redis/config/cpu:128

  Exit codes: 0 on success (a prefix with no keys prints nothing), 1 on
  error or when KEY does not exist.

Options:

  -base64
     Print values base64-encoded, for binary data.

  -detailed
     Print every field of the entry: CreateIndex, Flags, Key, LockIndex,
     ModifyIndex, Session and Value. With -recurse, one block per key.

  -keys
     List the keys that begin with the prefix instead of reading values.
     With a separator, a key that has it after the prefix is shortened to
     just past its first occurrence and listed once, like a directory.

  -recurse
     Read every key that begins with the prefix.

  -separator=<string>
     The separator -keys uses. Set it to "" to list every key. Default: "/".

  -stale
     Let any server answer from its own state, even without a leader. The
     answer may be out of date. Default: the leader answers.
` + httpOptionsHelp

// Help returns the usage text of the kv get command.
func (c *KVGetCommand) Help() string {
	return strings.TrimSpace(kvGetHelp)
}

// Synopsis returns a one-line description of the kv get command.
func (c *KVGetCommand) Synopsis() string {
	return "Reads keys from the key/value store"
}

// Run reads and prints, and returns the exit code.
func (c *KVGetCommand) Run(args []string) int {
	var (
		b64, detailed, keys, recurse, stale bool
		separator                           string
	)
	fs := c.FlagSet("kv get", c.Help())
	fs.BoolVar(&b64, "base64", false, "")
	fs.BoolVar(&detailed, "detailed", false, "")
	fs.BoolVar(&keys, "keys", false, "")
	fs.BoolVar(&recurse, "recurse", false, "")
	fs.StringVar(&separator, "separator", "/", "")
	fs.BoolVar(&stale, "stale", false, "")
	var key string
	client, ok := c.Setup(fs, args, func() bool {
		var ok bool
		if key, ok = c.keyArg(fs); !ok {
			return false
		}
		// An empty prefix means every key, but there is no empty key.
		if key == "" && !keys && !recurse {
			c.Ui.Error("Error! Missing KEY argument")
			return false
		}
		return true
	})
	if !ok {
		return 1
	}
	q := &api.QueryOptions{Stale: stale}
	format := func(v []byte) string {
		if b64 {
			return base64.StdEncoding.EncodeToString(v)
		}
		return string(v)
	}

	switch {
	case keys:
		list, _, err := client.KVKeys(key, separator, q)
		if err != nil {
			c.Ui.Error("Error querying Conclave agent: " + err.Error())
			return 1
		}
		for _, k := range list {
			c.Ui.Output(k)
		}
	case recurse:
		return c.printTree(client, key, q, detailed, format)
	default:
		return c.printOne(client, key, q, detailed, format)
	}
	return 0
}

// kvDetail formats every field of p as consul kv get -detailed does: one
// field per line, in that order, with the values aligned six spaces past
// the longest name. The alignment is done here rather than by columnize
// because a value may hold any byte, the column delimiter included.
func kvDetail(p *api.KVPair, format func([]byte) string) string {
	session := p.Session
	if session == "" {
		session = "-"
	}
	fields := [][2]string{
		{"CreateIndex", strconv.FormatUint(p.CreateIndex, 10)},
		{"Flags", strconv.FormatUint(p.Flags, 10)},
		{"Key", p.Key},
		{"LockIndex", strconv.FormatUint(p.LockIndex, 10)},
		{"ModifyIndex", strconv.FormatUint(p.ModifyIndex, 10)},
		{"Session", session},
		{"Value", format(p.Value)},
	}
	const width = len("ModifyIndex") + 6
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\n')
		}
		if f[1] == "" {
			// No padding at the end of the line, as in the tables.
			b.WriteString(f[0])
			continue
		}
		fmt.Fprintf(&b, "%-*s%s", width, f[0], f[1])
	}
	return b.String()
}

// printTree prints every pair under prefix: key:value lines, or with
// detailed each pair's fields, a blank line between pairs.
func (c *KVGetCommand) printTree(client *api.Client, prefix string, q *api.QueryOptions, detailed bool, format func([]byte) string) int {
	pairs, _, err := client.KVList(prefix, q)
	if err != nil {
		c.Ui.Error("Error querying Conclave agent: " + err.Error())
		return 1
	}
	for i, p := range pairs {
		switch {
		case !detailed:
			c.Ui.Output(p.Key + ":" + format(p.Value))
		case i < len(pairs)-1:
			c.Ui.Output(kvDetail(p, format) + "\n")
		default:
			c.Ui.Output(kvDetail(p, format))
		}
	}
	return 0
}

// printOne prints the value of key, or with detailed its fields.
func (c *KVGetCommand) printOne(client *api.Client, key string, q *api.QueryOptions, detailed bool, format func([]byte) string) int {
	p, _, err := client.KVGet(key, q)
	if err != nil {
		c.Ui.Error("Error querying Conclave agent: " + err.Error())
		return 1
	}
	if p == nil {
		c.Ui.Error("Error! No key exists at: " + key)
		return 1
	}
	if detailed {
		c.Ui.Output(kvDetail(p, format))
	} else {
		c.Ui.Output(format(p.Value))
	}
	return 0
}
