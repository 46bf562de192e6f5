// This file parses retry_join entries: addresses, go-discover strings, and
// the redaction of their secrets.

package discover

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-discover"
)

// isProviderEntry reports whether entry is meant for go-discover.
func isProviderEntry(entry string) bool {
	return strings.Contains(entry, "provider=")
}

// parseProviderEntry parses a go-discover entry and finds its provider.
// name and args are set as far as parsing got, even on error.
func parseProviderEntry(entry string, providers map[string]Provider) (name string, args map[string]string, p Provider, err error) {
	cfg, err := discover.Parse(entry)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: %v", ErrInvalidProviderConfig, err)
	}
	name = cfg["provider"]
	p, ok := providers[name]
	if !ok || p == nil {
		known := slices.Sorted(maps.Keys(providers))
		return name, cfg, nil, fmt.Errorf("%w: unknown provider %q; known providers: %s",
			ErrInvalidProviderConfig, name, strings.Join(known, ", "))
	}
	return name, cfg, p, nil
}

// validateEntry reports the errors in entry that retrying cannot fix: bad
// address syntax, bad go-discover syntax, an unknown provider.
func validateEntry(entry string, providers map[string]Provider) error {
	entry = strings.TrimSpace(entry)
	if isProviderEntry(entry) {
		_, _, _, err := parseProviderEntry(entry, providers)
		return err
	}
	_, err := parseAddress(entry, 1) // any valid port: only the syntax counts
	return err
}

// hostPort is a parsed address. ip is valid when the host is an IP
// address; otherwise host is a DNS name.
type hostPort struct {
	host string
	ip   netip.Addr
	port uint16
}

// parseAddress parses host, host:port, [ipv6]:port, [ipv6] or a bare IP
// address. defaultPort is used when s has no port.
func parseAddress(s string, defaultPort uint16) (hostPort, error) {
	invalid := func(format string, a ...any) (hostPort, error) {
		return hostPort{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidAddress}, a...)...)
	}
	if s == "" {
		return invalid("empty")
	}

	if rest, ok := strings.CutPrefix(s, "["); ok {
		inside, after, ok := strings.Cut(rest, "]")
		if !ok {
			return invalid("missing ']'")
		}
		ip, err := netip.ParseAddr(inside)
		if err != nil || !ip.Is6() {
			return invalid("%q in brackets is not an IPv6 address", inside)
		}
		port := defaultPort
		if after != "" {
			ps, ok := strings.CutPrefix(after, ":")
			if !ok {
				return invalid("unexpected %q after ']'", after)
			}
			if port, err = parsePort(ps); err != nil {
				return hostPort{}, err
			}
		}
		return hostPort{ip: ip.Unmap(), port: port}, nil
	}

	// A bare IP address; "::1:8301" is an IPv6 address, not ::1 port 8301.
	if ip, err := netip.ParseAddr(s); err == nil {
		return hostPort{ip: ip.Unmap(), port: defaultPort}, nil
	}

	host, ps, hasPort := strings.Cut(s, ":")
	if strings.Contains(ps, ":") {
		return invalid("too many colons; write an IPv6 address with a port as [addr]:port")
	}
	if host == "" {
		return invalid("missing host")
	}
	port := defaultPort
	if hasPort {
		var err error
		if port, err = parsePort(ps); err != nil {
			return hostPort{}, err
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return hostPort{ip: ip, port: port}, nil
	}
	for _, c := range host {
		if !isHostnameChar(c) {
			return invalid("invalid character %q in host name %q", c, host)
		}
	}
	return hostPort{host: host, port: port}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: missing port after ':'", ErrInvalidAddress)
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("%w: port %q is not a number from 1 to 65535", ErrInvalidAddress, s)
	}
	return uint16(p), nil
}

func isHostnameChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_'
}

// Redact returns entry as Explanation.Entry and errors show it: a
// go-discover entry in go-discover's form (keys sorted, values quoted where
// needed) with the values of secret keys, such as secret_access_key or
// api_token, replaced by "[redacted]"; an entry that go-discover cannot
// parse reduced to its provider name. Addresses and DNS names are returned
// as they are, trimmed of spaces.
func Redact(entry string) string { return redact(entry) }

// redact returns entry with the values of secret keys replaced, so that it
// can be logged. Addresses are returned as they are.
func redact(entry string) string {
	entry = strings.TrimSpace(entry)
	if !isProviderEntry(entry) {
		return entry
	}
	args, err := discover.Parse(entry)
	if err != nil {
		// Keys cannot be told from values: keep only the provider name.
		for f := range strings.FieldsSeq(entry) {
			if strings.HasPrefix(f, "provider=") && f != "provider=" {
				return f + " ..."
			}
		}
		return "provider=..."
	}
	return discover.Config(redactArgs(args)).String()
}

// redactArgs returns a copy of args with the values of secret keys
// replaced by "[redacted]".
func redactArgs(args map[string]string) map[string]string {
	if args == nil {
		return nil
	}
	out := make(map[string]string, len(args))
	for k, v := range args {
		if isSecretKey(k) && v != "" {
			v = "[redacted]"
		}
		out[k] = v
	}
	return out
}

// isSecretKey reports whether a go-discover key holds a credential, such
// as aws's secret_access_key or digitalocean's api_token.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"secret", "password", "token", "api_key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
