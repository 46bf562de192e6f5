package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/go-sockaddr/template"
)

// privateIPTemplate finds the address to advertise when bind_addr is
// unspecified. Tests replace it to simulate a host without a private IP.
var privateIPTemplate = "{{ GetPrivateIP }}"

// logLevels are the accepted values of log_level.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// maxNameLen is the longest node_name or datacenter accepted. Only ASCII is
// accepted, so bytes and characters are the same.
const maxNameLen = 128

// Validate checks c and completes it for use. It returns warnings for
// settings that are accepted but probably not what the operator wants, and
// an error joining one *Error per problem (see errors.Join). Load calls it;
// call it yourself on a Config built in code. Errors from Validate carry no
// file position; those from Load do.
//
// Besides checking, Validate changes c:
//   - it lowercases LogLevel and Datacenter;
//   - it turns a TLS MinVersion of 0 into tls.VersionTLS12;
//   - it resolves go-sockaddr templates in BindAddr, AdvertiseAddr and
//     ClientAddr to plain IP addresses, and fills in an empty AdvertiseAddr
//     with BindAddr, or with the private IP when BindAddr is 0.0.0.0 or ::;
//   - it turns BootstrapExpect = 1 into Bootstrap = true, with a warning;
//   - it creates DataDir with mode 0700 if it does not exist, and checks
//     that a file can be created in it.
//
// When Validate returns an error, c may be partly changed.
func (c *Config) Validate() (warnings []string, err error) {
	return c.validate(nil, nil)
}

// validate is Validate with the origin of each setting, so that errors can
// point at the file and line, or the flag, that set it.
// tlsInherited is builder.tlsInherited, nil for a Config built in code.
func (c *Config) validate(o origins, tlsInherited map[string]string) ([]string, error) {
	v := &validator{c: c, origins: o, tlsInherited: tlsInherited}
	v.checkNames()
	v.checkLogLevel()
	v.checkBootstrap()
	bind, client := v.checkAddrs()
	v.checkPorts(bind, client)
	v.checkTLS()
	v.checkEncrypt()
	v.checkRetry()
	v.checkPerformance()
	v.checkLimits()
	v.checkRaftLogStore()
	v.checkDataDir()
	return v.warnings, errors.Join(v.errs...)
}

// validator collects the problems of one Config.
type validator struct {
	c        *Config
	origins  origins // nil when validating a Config built in code
	warnings []string
	errs     []error

	// tlsInherited maps a tls key to the tls.defaults key it inherited its
	// value from; tlsReported records the tls keys already reported.
	tlsInherited map[string]string
	tlsReported  map[string]bool
}

// fail records an error about key, located at its value when atValue is
// true and at the whole setting otherwise.
func (v *validator) fail(key string, atValue bool, summary, detail string) {
	v.errs = append(v.errs, v.origins[key].error(atValue, summary, detail))
}

// warn records a warning about key.
func (v *validator) warn(key, summary, detail string) {
	v.warnings = append(v.warnings, v.origins[key].error(false, summary, detail).Error())
}

// setAt describes where key was set, as " (set at server.hcl:4:1)", or
// returns "" for a default.
func (v *validator) setAt(key string) string {
	o := v.origins[key]
	switch {
	case o.flag != "":
		return " (set by " + o.String() + ")"
	case o.String() != "":
		return " (set at " + o.String() + ")"
	}
	return ""
}

// later returns the one of keys a and b that was set last, then the other:
// a conflict is reported at the setting that introduced it.
func (v *validator) later(a, b string) (string, string) {
	if v.origins[b].after(v.origins[a]) {
		return b, a
	}
	return a, b
}

func (v *validator) checkNames() {
	c := v.c
	if detail := nameProblem("node_name", c.NodeName, isNodeNameRune, "'-', '_' and '.'"); detail != "" {
		v.fail("node_name", true, "Invalid node_name", detail)
	}
	c.Datacenter = strings.ToLower(c.Datacenter)
	if detail := nameProblem("datacenter", c.Datacenter, isDatacenterRune, "'-' and '_'"); detail != "" {
		v.fail("datacenter", true, "Invalid datacenter", detail)
	}
}

// nameProblem describes what is wrong with a name, or returns "".
func nameProblem(key, name string, valid func(rune) bool, punctuation string) string {
	if name == "" {
		return key + " must not be empty."
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !valid(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(name[i:])
		return fmt.Sprintf("%s %s contains %q: only letters, digits, %s are allowed.", key, quote(name), r, punctuation)
	}
	if len(name) > maxNameLen {
		return fmt.Sprintf("%s must be at most %d characters long, got %d.", key, maxNameLen, len(name))
	}
	return ""
}

func isNodeNameRune(r rune) bool {
	return r == '.' || isDatacenterRune(r)
}

func isDatacenterRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_'
}

func (v *validator) checkLogLevel() {
	c := v.c
	c.LogLevel = strings.ToLower(c.LogLevel)
	if !slices.Contains(logLevels, c.LogLevel) {
		v.fail("log_level", true, "Invalid log_level",
			fmt.Sprintf("log_level must be one of trace, debug, info, warn or error, got %s.", quote(c.LogLevel)))
	}
}

func (v *validator) checkBootstrap() {
	c := v.c
	if c.BootstrapExpect < 0 {
		v.fail("bootstrap_expect", true, "Invalid bootstrap_expect",
			fmt.Sprintf("bootstrap_expect must be at least 1, got %d.", c.BootstrapExpect))
		return
	}
	valid := true
	if c.Bootstrap && c.BootstrapExpect > 0 {
		key, other := v.later("bootstrap", "bootstrap_expect")
		v.fail(key, false, "Conflicting bootstrap settings", fmt.Sprintf(
			"%s cannot be used together with %s%s: bootstrap makes this server elect itself at once, "+
				"bootstrap_expect waits for that many servers. Remove one of them.", key, other, v.setAt(other)))
		valid = false
	}
	serverOnly := func(key string) {
		v.fail(key, false, "Server-only setting", fmt.Sprintf(
			"%s is only valid on servers, and this agent is a client; set server = true or remove %s.", key, key))
		valid = false
	}
	if !c.Server && c.BootstrapExpect > 0 {
		serverOnly("bootstrap_expect")
	}
	if !c.Server && c.Bootstrap {
		serverOnly("bootstrap")
	}
	if !valid {
		return
	}

	switch n := c.BootstrapExpect; {
	case n == 1:
		v.warn("bootstrap_expect", "Single-server bootstrap",
			"bootstrap_expect = 1 is the same as bootstrap = true: this server elects itself without waiting for others.")
		c.Bootstrap = true
		c.BootstrapExpect = 0
	case n > 0 && n%2 == 0:
		tolerated := (n - 1) / 2
		plural := "s"
		if tolerated == 1 {
			plural = ""
		}
		v.warn("bootstrap_expect", "Even bootstrap_expect", fmt.Sprintf(
			"bootstrap_expect = %d tolerates the failure of %d server%s, the same as %d: an even number of servers "+
				"adds no fault tolerance. Consider %d.", n, tolerated, plural, n-1, n+1))
	}
}

// checkAddrs resolves the three addresses and returns the bind and client
// addresses for the port checks; an address that is invalid is returned as
// the zero netip.Addr.
func (v *validator) checkAddrs() (bind, client netip.Addr) {
	c := v.c
	bind = v.resolve("bind_addr", &c.BindAddr)
	client = v.resolve("client_addr", &c.ClientAddr)

	if c.AdvertiseAddr != "" {
		if adv := v.resolve("advertise_addr", &c.AdvertiseAddr); adv.IsValid() && adv.IsUnspecified() {
			v.fail("advertise_addr", true, "Invalid advertise_addr", fmt.Sprintf(
				"advertise_addr must be an address other nodes can reach, not %s.", adv))
		}
		return bind, client
	}
	switch {
	case !bind.IsValid():
		// Already reported; nothing to derive from.
	case !bind.IsUnspecified():
		c.AdvertiseAddr = c.BindAddr
	default:
		adv, err := resolveAddr(privateIPTemplate)
		if err != nil {
			v.fail("bind_addr", true, "No address to advertise", fmt.Sprintf(
				"bind_addr is %s, so this agent advertises its private IP, but %s found none (%v); set advertise_addr.",
				c.BindAddr, privateIPTemplate, err))
			break
		}
		c.AdvertiseAddr = adv.String()
	}
	return bind, client
}

// resolve resolves the address in *s, stores it back as a plain IP and
// returns it; on failure it records an error and returns the zero Addr.
func (v *validator) resolve(key string, s *string) netip.Addr {
	addr, err := resolveAddr(*s)
	if err != nil {
		v.fail(key, true, "Invalid "+key, fmt.Sprintf("%s %v.", key, err))
		return netip.Addr{}
	}
	*s = addr.String()
	return addr
}

// resolveAddr resolves s, a literal IP address or a go-sockaddr template
// such as "{{ GetPrivateIP }}", to exactly one IP address.
func resolveAddr(s string) (netip.Addr, error) {
	if strings.TrimSpace(s) == "" {
		return netip.Addr{}, errors.New("must not be empty")
	}
	isTemplate := strings.Contains(s, "{{")
	out, err := parseTemplate(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("is not a valid go-sockaddr template: %v", err)
	}
	addrs := strings.Fields(out)
	switch {
	case len(addrs) == 0:
		return netip.Addr{}, fmt.Errorf("template %s resolved to no address", quote(s))
	case len(addrs) > 1:
		return netip.Addr{}, fmt.Errorf("template %s resolved to %d addresses (%s); it must resolve to exactly one",
			quote(s), len(addrs), strings.Join(addrs, ", "))
	}
	addr, err := netip.ParseAddr(addrs[0])
	switch {
	case err != nil && isTemplate:
		return netip.Addr{}, fmt.Errorf("template %s resolved to %s, which is not an IP address", quote(s), quote(addrs[0]))
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%s is not an IP address", quote(s))
	}
	return addr, nil
}

// parseTemplate runs a go-sockaddr template, turning a panic into an error.
func parseTemplate(s string) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(panicDetail(r))
		}
	}()
	return template.Parse(s)
}

// checkPorts checks the port ranges, then that no two listeners share a
// port on overlapping addresses. Port 0 asks the OS for a free port and
// never collides; -1 turns the HTTP or HTTPS listener off.
func (v *validator) checkPorts(bind, client netip.Addr) {
	c := v.c
	type listener struct {
		key     string
		port    int
		addrKey string
		addr    netip.Addr
	}
	listeners := []listener{
		{"ports.http", c.Ports.HTTP, "client_addr", client},
		{"ports.https", c.Ports.HTTPS, "client_addr", client},
		{"ports.serf_lan", c.Ports.SerfLAN, "bind_addr", bind},
		{"ports.server", c.Ports.Server, "bind_addr", bind},
	}
	inRange := true
	for _, l := range listeners {
		canBeOff := l.key == "ports.http" || l.key == "ports.https"
		switch {
		case canBeOff && (l.port < -1 || l.port > 65535):
			v.fail(l.key, true, "Invalid "+l.key,
				fmt.Sprintf("%s must be between 0 and 65535, or -1 for off, got %d.", l.key, l.port))
			inRange = false
		case !canBeOff && (l.port < 0 || l.port > 65535):
			v.fail(l.key, true, "Invalid "+l.key,
				fmt.Sprintf("%s must be between 0 and 65535, got %d.", l.key, l.port))
			inRange = false
		}
	}
	if !inRange {
		return
	}
	for i, a := range listeners {
		for _, b := range listeners[i+1:] {
			if a.port <= 0 || a.port != b.port || !a.addr.IsValid() || !b.addr.IsValid() || !overlap(a.addr, b.addr) {
				continue
			}
			detail := fmt.Sprintf("%s and %s both use port %d on %s %s; give each its own port.",
				a.key, b.key, a.port, a.addrKey, a.addr)
			if a.addrKey != b.addrKey {
				detail = fmt.Sprintf("%s (on %s %s) and %s (on %s %s) both use port %d; give each its own port.",
					a.key, a.addrKey, a.addr, b.key, b.addrKey, b.addr, a.port)
			}
			key, _ := v.later(a.key, b.key)
			v.fail(key, true, "Port collision", detail)
		}
	}
}

// overlap reports whether listening on a and b with the same port would
// conflict: the same address, or an unspecified address, which covers every
// address of its family ("::" covers IPv4 as well, since Linux listens
// dual-stack by default).
func overlap(a, b netip.Addr) bool {
	a, b = a.Unmap(), b.Unmap()
	switch {
	case a == b:
		return true
	case a.Is6() && a.IsUnspecified(), b.Is6() && b.IsUnspecified():
		return true
	}
	return (a.IsUnspecified() || b.IsUnspecified()) && a.Is4() == b.Is4()
}

func (v *validator) checkRetry() {
	c := v.c
	for i, addr := range c.RetryJoin {
		if strings.TrimSpace(addr) == "" {
			v.fail("retry_join", true, "Invalid retry_join", fmt.Sprintf("retry_join entry %d is empty.", i+1))
		}
	}
	if c.RetryInterval <= 0 {
		v.fail("retry_interval", true, "Invalid retry_interval",
			fmt.Sprintf("retry_interval must be positive, got %s.", c.RetryInterval))
	}
	if c.RetryMax < 0 {
		v.fail("retry_max", true, "Invalid retry_max",
			fmt.Sprintf("retry_max must be 0 (retry forever) or more, got %d.", c.RetryMax))
	}
}

func (v *validator) checkPerformance() {
	if m := v.c.Performance.RaftMultiplier; m < 1 || m > 10 {
		v.fail("performance.raft_multiplier", true, "Invalid performance.raft_multiplier",
			fmt.Sprintf("performance.raft_multiplier must be between 1 and 10, got %d.", m))
	}
	if s := v.c.KVMaxValueSize; s < 1 || s > MaxKVMaxValueSize {
		v.fail("kv_max_value_size", true, "Invalid kv_max_value_size",
			fmt.Sprintf("kv_max_value_size must be between 1 and %d bytes, got %d.", MaxKVMaxValueSize, s))
	}
}

// raftBackends are the accepted values of raft_logstore.backend.
var raftBackends = []string{"wal", "boltdb"}

func (v *validator) checkRaftLogStore() {
	ls := &v.c.RaftLogStore
	if b := ls.Backend; b != "" && !slices.Contains(raftBackends, b) {
		v.fail("raft_logstore.backend", true, "Invalid raft_logstore.backend",
			fmt.Sprintf("raft_logstore.backend must be \"wal\" or \"boltdb\", got %s.", quote(b)))
	}
	if d := ls.Verification.Interval; d <= 0 {
		v.fail("raft_logstore.verification.interval", true, "Invalid raft_logstore.verification.interval",
			fmt.Sprintf("raft_logstore.verification.interval must be positive, got %s.", d))
	}
	if s := ls.WAL.SegmentSizeMB; s < 1 || s > MaxWALSegmentSizeMB {
		v.fail("raft_logstore.wal.segment_size_mb", true, "Invalid raft_logstore.wal.segment_size_mb",
			fmt.Sprintf("raft_logstore.wal.segment_size_mb must be between 1 and %d, got %d.", MaxWALSegmentSizeMB, s))
	}
}

func (v *validator) checkDataDir() {
	c := v.c
	if c.DataDir == "" {
		if c.Server && !c.DevMode {
			v.fail("server", false, "Missing data_dir",
				"data_dir is required for servers outside dev mode, to keep the Raft log and snapshots; set data_dir or -data-dir.")
		}
		return
	}
	if err := prepareDataDir(c.DataDir); err != nil {
		v.fail("data_dir", true, "Invalid data_dir", fmt.Sprintf("data_dir %q %v.", c.DataDir, err))
	}
}

// prepareDataDir creates dir with mode 0700 if it does not exist, as Consul
// does, and checks that the agent can create files in it.
func prepareDataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		// Most likely it does not exist; if something else is wrong, such
		// as a parent that is a file, MkdirAll says what.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("could not be created: %v", pathErr(err))
		}
	case !fi.IsDir():
		return errors.New("exists but is not a directory")
	}

	f, err := os.CreateTemp(dir, ".conclave-write-check-*")
	if err != nil {
		return fmt.Errorf("is not writable: %v", pathErr(err))
	}
	name := f.Name()
	err = f.Close()
	if rmErr := os.Remove(name); err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("is not writable: %v", pathErr(err))
	}
	return nil
}

// pathErr drops the path from a *fs.PathError, for messages that already
// name it.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
