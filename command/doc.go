// Package command implements the conclave command line on top of
// github.com/hashicorp/cli.
//
// Commands returns one factory per command, keyed by the words that invoke
// it ("members", "operator raft list-peers"). main builds a cli.CLI from
// that map, runs it and exits with the code the command returned: 0 on
// success, 1 on error, and 2 when a filter such as "members -status"
// matched nothing. Output for people and scripts goes to Ui.Output; errors
// and warnings go to Ui.Error and Ui.Warn, never to stdout.
//
// AgentCommand is the only command that builds and runs an agent. Every
// other command talks to a running agent over its HTTP API through
// agent/api.Client: it embeds Meta, whose FlagSet adds the shared HTTP API
// flags, Consul's: -http-addr (default: $CONCLAVE_HTTP_ADDR, else
// $CONSUL_HTTP_ADDR, else 127.0.0.1:8500), -token and -token-file (sent as
// X-Consul-Token, which the agent ignores until Conclave has ACLs),
// -datacenter (sent as ?dc=), and for an https:// address -ca-file,
// -ca-path, -client-cert, -client-key and -tls-server-name (default:
// $CONCLAVE_CACERT, $CONCLAVE_CAPATH, $CONCLAVE_CLIENT_CERT,
// $CONCLAVE_CLIENT_KEY, $CONCLAVE_TLS_SERVER_NAME, each else its CONSUL_
// twin; $CONCLAVE_HTTP_SSL and $CONCLAVE_HTTP_SSL_VERIFY as in Consul).
// A typical Run:
//
//  1. calls Meta.Setup, which parses the arguments (a bad flag is reported
//     with the command's Help on Ui.Error instead of exiting), runs the
//     command's own checks of arguments and flag values, and builds the
//     api.Client, so that this prologue is written once;
//  2. calls one or a few api.Client methods;
//  3. prints a table (columnize, rows sorted by name), aligned
//     "Key = value" lines, or, with -format=json, the agent/api types
//     unchanged.
//
// validate, version, tls and operator discover (without -via-agent) need
// no agent: validate loads configuration files with the config package,
// operator discover resolves retry_join entries with the discover package,
// tls ca create and tls cert create write certificates made by
// agent/tlsutil to the current directory (never overwriting a file), and
// version prints Version and GitCommit, which release builds set with
// -ldflags "-X".
package command
