package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flags are the command-line overrides of the configuration files. A nil
// field means the flag was not given, so that "-server=false" can override
// "server = true" in a file while an absent -server leaves it alone.
type Flags struct {
	NodeName        *string        // -node
	Datacenter      *string        // -datacenter
	DataDir         *string        // -data-dir
	Server          *bool          // -server
	BootstrapExpect *int           // -bootstrap-expect
	Bootstrap       *bool          // -bootstrap
	BindAddr        *string        // -bind
	AdvertiseAddr   *string        // -advertise
	ClientAddr      *string        // -client
	HTTPPort        *int           // -http-port
	SerfLANPort     *int           // -serf-lan-port
	ServerPort      *int           // -server-port
	RetryInterval   *time.Duration // -retry-interval
	RetryMax        *int           // -retry-max
	LogLevel        *string        // -log-level
	LogJSON         *bool          // -log-json
	EnableDebug     *bool          // -enable-debug

	// RetryJoin collects every -retry-join, in order; nil means none was
	// given. When set it replaces the retry_join of the files.
	RetryJoin []string

	// Dev starts from Dev() instead of Default(); files and the other flags
	// still override it.
	Dev *bool // -dev
}

// AddTo registers the flags on fs. Boolean flags take an optional value, as
// in "-server" or "-server=false".
func (f *Flags) AddTo(fs *flag.FlagSet) {
	fs.Var(newValue(&f.NodeName, parseString), "node",
		"The `name` of this node, unique in the cluster. Default: the host name.")
	fs.Var(newValue(&f.Datacenter, parseString), "datacenter",
		"The `name` of this agent's datacenter. Default \"dc1\".")
	fs.Var(newValue(&f.DataDir, parseString), "data-dir",
		"The `path` of the agent's state directory. Required for servers outside dev mode.")
	fs.Var(&boolValue{newValue(&f.Server, parseBool)}, "server",
		"Run as a Raft server instead of a client.")
	fs.Var(newValue(&f.BootstrapExpect, parseInt), "bootstrap-expect",
		"The `number` of servers to wait for before bootstrapping the cluster.")
	fs.Var(&boolValue{newValue(&f.Bootstrap, parseBool)}, "bootstrap",
		"Make this server elect itself at once. Only for a single first server.")
	fs.Var(newValue(&f.BindAddr, parseString), "bind",
		"The `address` for gossip and Raft. Accepts go-sockaddr templates. Default 0.0.0.0.")
	fs.Var(newValue(&f.AdvertiseAddr, parseString), "advertise",
		"The `address` advertised to other nodes. Accepts go-sockaddr templates. Default:\n"+
			"the bind address, or the private IP when binding to 0.0.0.0 or ::.")
	fs.Var(newValue(&f.ClientAddr, parseString), "client",
		"The `address` for the HTTP API. Accepts go-sockaddr templates. Default 127.0.0.1.")
	fs.Var(newValue(&f.HTTPPort, parseInt), "http-port",
		"The `port` for the HTTP API; 0 picks a free port. Default 8500.")
	fs.Var(newValue(&f.SerfLANPort, parseInt), "serf-lan-port",
		fmt.Sprintf("The `port` for gossip, TCP and UDP; 0 picks a free port. Default %d.", DefaultSerfLANPort))
	fs.Var(newValue(&f.ServerPort, parseInt), "server-port",
		"The `port` for Raft; 0 picks a free port. Default 8300.")
	fs.Var((*listValue)(&f.RetryJoin), "retry-join",
		"An `address`, DNS name or go-discover string to join at start, retried until\n"+
			"one succeeds. Can be given more than once; replaces retry_join from files.")
	fs.Var(newValue(&f.RetryInterval, parseDuration), "retry-interval",
		"The `duration` between join attempts. Default 30s.")
	fs.Var(newValue(&f.RetryMax, parseInt), "retry-max",
		"The `number` of failed join attempts before the agent gives up; 0 retries\n"+
			"forever. Default 0.")
	fs.Var(newValue(&f.LogLevel, parseString), "log-level",
		"The log `level`: trace, debug, info, warn or error. Default info.")
	fs.Var(&boolValue{newValue(&f.LogJSON, parseBool)}, "log-json",
		"Write logs as JSON.")
	fs.Var(&boolValue{newValue(&f.EnableDebug, parseBool)}, "enable-debug",
		"Serve Go's runtime profiles (pprof) on the HTTP API under /debug/pprof/.")
	fs.Var(&boolValue{newValue(&f.Dev, parseBool)}, "dev",
		"Run a single in-memory server for development. Not for production.")
}

// value is a flag.Value that stores into a pointer field, which stays nil
// until the flag is given.
type value[T any] struct {
	p     **T
	parse func(string) (T, error)
}

func newValue[T any](p **T, parse func(string) (T, error)) *value[T] {
	return &value[T]{p: p, parse: parse}
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = &x
	return nil
}

func (v *value[T]) String() string {
	// The flag package calls String on a zero value to find defaults.
	if v == nil || v.p == nil || *v.p == nil {
		return ""
	}
	return fmt.Sprint(**v.p)
}

// boolValue is a value[bool] that the flag package accepts without an
// argument ("-server").
type boolValue struct{ *value[bool] }

func (boolValue) IsBoolFlag() bool { return true }

// listValue collects every use of a repeatable flag.
type listValue []string

func (l *listValue) Set(s string) error {
	*l = append(*l, s)
	return nil
}

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func parseString(s string) (string, error) { return s, nil }

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errors.New("not a boolean")
	}
	return b, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New(`not a duration such as "30s" or "1m30s"`)
	}
	return d, nil
}

func parseInt(s string) (int, error) {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, errors.New("out of range")
	case err != nil:
		return 0, errors.New("not an integer")
	}
	return int(n), nil
}
