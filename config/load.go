package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// LoadOptions says where Load reads the configuration from.
type LoadOptions struct {
	// Paths are configuration files and directories, in command-line order.
	// A directory contributes its *.hcl and *.json files in lexical order;
	// subdirectories are not read. A file named on its own is read as JSON
	// if its name ends in ".json" and as HCL otherwise.
	Paths []string

	// Flags are the command-line overrides; nil means none.
	Flags *Flags
}

// LoadResult is a loaded, validated configuration.
type LoadResult struct {
	// Config is the final configuration.
	Config *Config

	// Warnings describe settings that are accepted but probably not what
	// the operator wants, each located like an Error. The caller shows them.
	Warnings []string
}

// Load builds the configuration from defaults (Dev when Flags.Dev is set,
// Default otherwise), then each file in opts.Paths in order, then the flags,
// and validates the result with Validate. A later source replaces what an
// earlier one set, key by key; retry_join is replaced as a whole.
//
// Load reports every problem it finds. The error it returns joins one *Error
// per problem (see errors.Join): first the problems found while decoding, in
// file order and, within a file, in order of position; then those found by
// validation. Validation only runs when every file decodes, since a value
// that failed to decode would make it report misleading errors. On error the
// warnings are not returned either.
func Load(opts LoadOptions) (*LoadResult, error) {
	dev := opts.Flags != nil && opts.Flags.Dev != nil && *opts.Flags.Dev
	b := newBuilder(dev)

	var (
		errs     []error
		warnings []string
	)
	for _, path := range opts.Paths {
		filenames, err := expandPath(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, filename := range filenames {
			fileErrs, fileWarnings := b.loadFile(filename)
			errs = append(errs, fileErrs...)
			warnings = append(warnings, fileWarnings...)
		}
	}
	if opts.Flags != nil {
		errs = append(errs, b.applyFlags(opts.Flags)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	cfg := b.cfg
	if _, ok := b.origins["skip_leave_on_interrupt"]; !ok {
		// Consul's default. A server that leaves is removed from the Raft
		// configuration, so Ctrl-C during maintenance would shrink the
		// cluster; a server that just stops keeps its place and rejoins.
		cfg.SkipLeaveOnInterrupt = cfg.Server
	}
	b.resolveTLS()
	validateWarnings, err := cfg.validate(b.origins, b.tlsInherited)
	warnings = append(warnings, validateWarnings...)
	if err != nil {
		return nil, err
	}
	return &LoadResult{Config: cfg, Warnings: warnings}, nil
}

// expandPath returns the files to read for one entry of LoadOptions.Paths:
// the file itself, or a directory's *.hcl and *.json files in lexical order.
func expandPath(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, fileError(path, err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".hcl") && !strings.HasSuffix(name, ".json") {
			continue
		}
		full := filepath.Join(path, name)
		// Stat rather than e.IsDir so that a symlink to a file counts as a
		// file, as it does when named on the command line.
		if fi, err := os.Stat(full); err == nil && fi.IsDir() {
			continue
		}
		files = append(files, full)
	}
	return files, nil
}

// loadFile reads, decodes and applies one file.
func (b *builder) loadFile(filename string) (errs []error, warnings []string) {
	src, err := os.ReadFile(filename)
	if err != nil {
		return []error{fileError(filename, err)}, nil
	}
	f, diags := parseFile(filename, src)
	errs, warnings = diagErrors(filename, diags)
	if f != nil {
		errs = append(errs, b.applyFile(f)...)
	}
	return errs, warnings
}

// fileError reports a configuration file or directory that cannot be read.
func fileError(path string, err error) *Error {
	return &Error{
		Filename: path,
		Summary:  "Failed to read configuration",
		Detail:   fmt.Sprintf("The path could not be read: %v.", pathErr(err)),
	}
}

// origin records where a setting was last set, so that errors can point at
// it. The zero origin means a default.
type origin struct {
	source int       // 0 for defaults, then 1, 2, … for each source applied
	flag   string    // the flag, such as "-bootstrap-expect"; "" for a file
	attr   hcl.Range // for a file: the whole "key = value"
	value  hcl.Range // for a file: the value alone
}

// after reports whether o was set after other: in a later source, or
// further down the same file. Flags count as one source, in no order.
func (o origin) after(other origin) bool {
	if o.source != other.source {
		return o.source > other.source
	}
	return o.attr.Start.Byte > other.attr.Start.Byte
}

// origins maps a key, such as "bootstrap_expect" or "ports.http", to where
// it was set. Keys left at their default are absent.
type origins map[string]origin

// String returns where o was set, such as "server.hcl:4:1" or "flag -dev",
// or "" for a default.
func (o origin) String() string {
	switch {
	case o.flag != "":
		return "flag " + o.flag
	case o.attr.Filename != "":
		return fmt.Sprintf("%s:%d:%d", o.attr.Filename, o.attr.Start.Line, o.attr.Start.Column)
	}
	return ""
}

// error returns an Error located at the setting, or at its value when
// atValue is true.
func (o origin) error(atValue bool, summary, detail string) *Error {
	switch {
	case o.flag != "":
		return &Error{Filename: "flag " + o.flag, Summary: summary, Detail: detail}
	case o.attr.Filename != "" && atValue:
		return rangeError(o.value, summary, detail)
	case o.attr.Filename != "":
		return rangeError(o.attr, summary, detail)
	}
	return &Error{Summary: summary, Detail: detail}
}

// builder merges sources into a Config, remembering where each key was set.
type builder struct {
	cfg     *Config
	origins origins
	source  int // the source being applied; see origin.source

	// tlsDefaults is the tls.defaults block, which resolveTLS merges into
	// cfg.TLS; tlsInherited maps each key a listener inherited from it,
	// such as "tls.https.ca_file", to the key it came from.
	tlsDefaults  TLSConfig
	tlsInherited map[string]string
}

func newBuilder(dev bool) *builder {
	b := &builder{cfg: Default(), origins: make(origins), tlsDefaults: defaultTLSConfig(), tlsInherited: make(map[string]string)}
	if dev {
		b.cfg = Dev()
		// Leave advertise_addr to be derived from bind_addr, so that a file
		// that moves bind_addr in dev mode moves advertise_addr with it.
		// With dev mode's own bind_addr the result is the same 127.0.0.1.
		b.cfg.AdvertiseAddr = ""
		b.source++
		for _, key := range []string{"server", "bootstrap", "bind_addr", "client_addr"} {
			b.record(key, origin{flag: "-dev"})
		}
	}
	return b
}

func (b *builder) record(key string, o origin) {
	o.source = b.source
	b.origins[key] = o
}

// fromFile sets *dst to *src, if src is set, and records key's origin in f.
func fromFile[T any](b *builder, f *file, key string, src, dst *T) {
	if src == nil {
		return
	}
	*dst = *src
	b.record(key, f.origin(key))
}

// fromFlag sets *dst to *src, if src is set, and records key's origin as
// the flag name.
func fromFlag[T any](b *builder, name, key string, src, dst *T) {
	if src == nil {
		return
	}
	*dst = *src
	b.record(key, origin{flag: name})
}

// applyFile merges one decoded file into the configuration. It returns the
// values it rejected.
func (b *builder) applyFile(f *file) (errs []error) {
	b.source++
	c, r := b.cfg, &f.raw
	fromFile(b, f, "node_name", r.NodeName, &c.NodeName)
	fromFile(b, f, "datacenter", r.Datacenter, &c.Datacenter)
	fromFile(b, f, "data_dir", r.DataDir, &c.DataDir)
	fromFile(b, f, "server", r.Server, &c.Server)
	if r.BootstrapExpect != nil {
		if err := checkBootstrapExpect(*r.BootstrapExpect, f.origin("bootstrap_expect")); err != nil {
			errs = append(errs, err)
		} else {
			fromFile(b, f, "bootstrap_expect", r.BootstrapExpect, &c.BootstrapExpect)
		}
	}
	fromFile(b, f, "bootstrap", r.Bootstrap, &c.Bootstrap)
	fromFile(b, f, "bind_addr", r.BindAddr, &c.BindAddr)
	fromFile(b, f, "advertise_addr", r.AdvertiseAddr, &c.AdvertiseAddr)
	fromFile(b, f, "client_addr", r.ClientAddr, &c.ClientAddr)
	if p := r.Ports; p != nil {
		fromFile(b, f, "ports.http", p.HTTP, &c.Ports.HTTP)
		fromFile(b, f, "ports.https", p.HTTPS, &c.Ports.HTTPS)
		fromFile(b, f, "ports.serf_lan", p.SerfLAN, &c.Ports.SerfLAN)
		fromFile(b, f, "ports.server", p.Server, &c.Ports.Server)
	}
	if r.RetryJoin != nil {
		join := slices.Clone(*r.RetryJoin)
		fromFile(b, f, "retry_join", &join, &c.RetryJoin)
	}
	if r.RetryInterval != nil {
		d, err := time.ParseDuration(*r.RetryInterval)
		if err != nil {
			errs = append(errs, f.origin("retry_interval").error(true, "Invalid retry_interval",
				fmt.Sprintf("retry_interval must be a duration such as \"30s\" or \"1m30s\", got %s.", quote(*r.RetryInterval))))
		} else {
			fromFile(b, f, "retry_interval", &d, &c.RetryInterval)
		}
	}
	fromFile(b, f, "retry_max", r.RetryMax, &c.RetryMax)
	fromFile(b, f, "leave_on_terminate", r.LeaveOnTerminate, &c.LeaveOnTerminate)
	fromFile(b, f, "skip_leave_on_interrupt", r.SkipLeaveOnInterrupt, &c.SkipLeaveOnInterrupt)
	fromFile(b, f, "log_level", r.LogLevel, &c.LogLevel)
	fromFile(b, f, "log_json", r.LogJSON, &c.LogJSON)
	if p := r.Performance; p != nil {
		fromFile(b, f, "performance.raft_multiplier", p.RaftMultiplier, &c.Performance.RaftMultiplier)
	}
	fromFile(b, f, "kv_max_value_size", r.KVMaxValueSize, &c.KVMaxValueSize)
	fromFile(b, f, "enable_debug", r.EnableDebug, &c.EnableDebug)
	if r.Encrypt != nil {
		key, err := ParseGossipKey(*r.Encrypt)
		if err != nil {
			errs = append(errs, f.origin("encrypt").error(true, "Invalid encrypt", gossipKeyRule+"; "+err.Error()+"."))
		} else {
			fromFile(b, f, "encrypt", &key, &c.Encrypt)
		}
	}
	fromFile(b, f, "encrypt_verify_incoming", r.EncryptVerifyIn, &c.EncryptVerifyIncoming)
	fromFile(b, f, "encrypt_verify_outgoing", r.EncryptVerifyOut, &c.EncryptVerifyOutgoing)
	fromFile(b, f, "disable_keyring_file", r.DisableKeyringFile, &c.DisableKeyringFile)
	if r.TLS != nil {
		errs = append(errs, b.applyTLS(f, r.TLS)...)
	}
	if r.Limits != nil {
		b.applyLimits(f, r.Limits)
	}
	if ls := r.RaftLogStore; ls != nil {
		fromFile(b, f, "raft_logstore.backend", ls.Backend, &c.RaftLogStore.Backend)
		if vr := ls.Verification; vr != nil {
			fromFile(b, f, "raft_logstore.verification.enabled", vr.Enabled, &c.RaftLogStore.Verification.Enabled)
			if vr.Interval != nil {
				key := "raft_logstore.verification.interval"
				d, err := time.ParseDuration(*vr.Interval)
				if err != nil {
					errs = append(errs, f.origin(key).error(true, "Invalid "+key,
						fmt.Sprintf("%s must be a duration such as \"60s\", got %s.", key, quote(*vr.Interval))))
				} else {
					fromFile(b, f, key, &d, &c.RaftLogStore.Verification.Interval)
				}
			}
		}
		if w := ls.WAL; w != nil {
			fromFile(b, f, "raft_logstore.wal.segment_size_mb", w.SegmentSizeMB, &c.RaftLogStore.WAL.SegmentSizeMB)
		}
	}
	return errs
}

// applyFlags merges the command-line flags into the configuration. -dev is
// not merged here: it selects the defaults, see newBuilder. It returns the
// values it rejected.
func (b *builder) applyFlags(fl *Flags) (errs []error) {
	b.source++
	c := b.cfg
	fromFlag(b, "-node", "node_name", fl.NodeName, &c.NodeName)
	fromFlag(b, "-datacenter", "datacenter", fl.Datacenter, &c.Datacenter)
	fromFlag(b, "-data-dir", "data_dir", fl.DataDir, &c.DataDir)
	fromFlag(b, "-server", "server", fl.Server, &c.Server)
	if fl.BootstrapExpect != nil {
		if err := checkBootstrapExpect(*fl.BootstrapExpect, origin{flag: "-bootstrap-expect"}); err != nil {
			errs = append(errs, err)
		} else {
			fromFlag(b, "-bootstrap-expect", "bootstrap_expect", fl.BootstrapExpect, &c.BootstrapExpect)
		}
	}
	fromFlag(b, "-bootstrap", "bootstrap", fl.Bootstrap, &c.Bootstrap)
	fromFlag(b, "-bind", "bind_addr", fl.BindAddr, &c.BindAddr)
	fromFlag(b, "-advertise", "advertise_addr", fl.AdvertiseAddr, &c.AdvertiseAddr)
	fromFlag(b, "-client", "client_addr", fl.ClientAddr, &c.ClientAddr)
	fromFlag(b, "-http-port", "ports.http", fl.HTTPPort, &c.Ports.HTTP)
	fromFlag(b, "-serf-lan-port", "ports.serf_lan", fl.SerfLANPort, &c.Ports.SerfLAN)
	fromFlag(b, "-server-port", "ports.server", fl.ServerPort, &c.Ports.Server)
	if fl.RetryJoin != nil {
		join := slices.Clone(fl.RetryJoin)
		fromFlag(b, "-retry-join", "retry_join", &join, &c.RetryJoin)
	}
	fromFlag(b, "-retry-interval", "retry_interval", fl.RetryInterval, &c.RetryInterval)
	fromFlag(b, "-retry-max", "retry_max", fl.RetryMax, &c.RetryMax)
	fromFlag(b, "-log-level", "log_level", fl.LogLevel, &c.LogLevel)
	fromFlag(b, "-log-json", "log_json", fl.LogJSON, &c.LogJSON)
	fromFlag(b, "-enable-debug", "enable_debug", fl.EnableDebug, &c.EnableDebug)
	return errs
}

// checkBootstrapExpect rejects an explicit bootstrap_expect below 1. In
// Config, 0 means "not set"; writing 0 (or less) is a mistake, not a way to
// turn bootstrapping off.
func checkBootstrapExpect(n int, o origin) error {
	if n >= 1 {
		return nil
	}
	return o.error(true, "Invalid bootstrap_expect",
		fmt.Sprintf("bootstrap_expect must be at least 1, got %d; leave it unset to disable automatic bootstrap.", n))
}
