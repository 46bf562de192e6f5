package discover

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-discover"
	"github.com/hashicorp/go-discover/provider/k8s"
	"github.com/hashicorp/go-hclog"
)

// Provider finds the addresses of nodes in one environment: a cloud,
// Kubernetes, mDNS and so on. It has the method set of go-discover's
// Provider, so every go-discover provider satisfies it and tests can swap in
// a fake.
type Provider interface {
	// Addrs returns the addresses of the nodes that match args, the
	// key=value pairs parsed from the entry (including "provider"). An
	// address may carry a port; one without gets the default port.
	Addrs(args map[string]string, l *log.Logger) ([]string, error)

	// Help describes the keys the provider understands.
	Help() string
}

// DefaultProviders returns a new map holding every go-discover provider,
// keyed by the name used in "provider=<name>". It is go-discover's
// discover.Providers plus "k8s", which go-discover leaves out of that map.
// The caller may modify the returned map.
//
// Note that "os" is OpenStack, and that the "k8s" provider does not read the
// KUBECONFIG environment variable (whatever its Help says): it uses the
// kubeconfig= key, then $HOME/.kube/config, then the in-cluster service
// account.
func DefaultProviders() map[string]Provider {
	m := make(map[string]Provider, len(discover.Providers)+1)
	for name, p := range discover.Providers {
		m[name] = p
	}
	m["k8s"] = &k8s.Provider{}
	return m
}

// Resolver turns retry_join entries into addresses. The zero value is ready
// to use: it uses DefaultProviders and the system's DNS resolver. A Resolver
// keeps no state between calls and is safe for concurrent use as long as
// its fields are not changed and its providers are safe for concurrent use
// (go-discover's are).
type Resolver struct {
	// Providers maps provider names to the providers used for entries that
	// contain "provider=". Nil means DefaultProviders().
	Providers map[string]Provider

	// LookupHost returns the IP addresses (A and AAAA records) of a DNS
	// name. Nil means net.DefaultResolver.LookupHost. Tests set a fake.
	LookupHost func(ctx context.Context, host string) ([]string, error)

	// Logger receives debug logs, including go-discover's own. Nil discards
	// them.
	Logger hclog.Logger
}

// Explanation describes how one entry resolves; see (*Resolver).Explain.
type Explanation struct {
	// Entry is the entry with secret values replaced by "[redacted]", so
	// that it is safe to print or log.
	Entry string

	// Provider is the go-discover provider named by the entry, or "" when
	// the entry is an address or a DNS name.
	Provider string

	// Args are the key=value pairs go-discover parsed from the entry, with
	// secret values redacted. Nil when Provider is "".
	Args map[string]string

	// Addrs are the addresses the entry resolved to, as host:port.
	Addrs []string

	// Log holds the lines the go-discover provider logged during this
	// call, in order and as written, such as the k8s provider's
	//
	//	[DEBUG] discover-k8s: ignoring pod "conclave-2", not ready state
	//
	// They say why a node was left out, which an error cannot. Nil when
	// the provider logged nothing, and for addresses and DNS names.
	Log []string
}

// Resolve resolves entries with a zero Resolver; see (*Resolver).Resolve.
func Resolve(ctx context.Context, entries []string, defaultPort int) (addrs []string, errs []error) {
	var r Resolver
	return r.Resolve(ctx, entries, defaultPort)
}

// Explain explains entry with a zero Resolver; see (*Resolver).Explain.
func Explain(ctx context.Context, entry string, defaultPort int) (Explanation, error) {
	var r Resolver
	return r.Explain(ctx, entry, defaultPort)
}

// Resolve resolves every entry and returns the addresses as host:port
// strings ready for Serf's Join: deduplicated, in the order of entries and,
// within an entry, in the order the DNS resolver or the provider returned
// them. Every DNS name, including one returned by a provider, is replaced
// by all of its IP addresses. defaultPort (1 to 65535; the agent passes its
// gossip port, whose default is config.DefaultSerfLANPort) is given to
// addresses without a port.
//
// An entry containing "provider=" goes to go-discover; any other entry is
// an address (host, host:port, [ipv6]:port, [ipv6] or a bare IPv6 address)
// whose host, if not an IP address, is looked up in DNS.
//
// Nothing is cached: every call resolves every entry again. An entry that
// fails adds an error to errs, naming the entry with secrets redacted, and
// the other entries are still resolved. An entry may add both addresses and
// an error, when a provider returned some addresses that are not valid.
//
// Resolve stops early, adding ctx.Err() to errs, once ctx is done. A call
// to a go-discover provider cannot be interrupted, as providers take no
// context; it ends on the provider's own timeouts.
func (r *Resolver) Resolve(ctx context.Context, entries []string, defaultPort int) (addrs []string, errs []error) {
	rr, err := r.prepare(defaultPort)
	if err != nil {
		return nil, []error{err}
	}
	seen := make(map[string]bool)
	for _, entry := range entries {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		x, err := rr.resolve(ctx, entry)
		for _, a := range x.Addrs {
			if !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
		if err != nil {
			// Reported through errs; the Joiner logs them.
			errs = append(errs, &entryError{entry: x.Entry, err: err})
			continue
		}
		rr.logger.Debug("resolved retry_join entry", "entry", x.Entry, "addrs", x.Addrs)
	}
	return addrs, errs
}

// Explain resolves a single entry, as Resolve would, and reports how: for
// a go-discover entry, the provider and the arguments go-discover parsed
// (useful to check quoting such as label_selector="app=conclave"); then the
// addresses found, and the lines the provider logged on the way (which say,
// for instance, which pods the k8s provider skipped and why). It is meant
// for debugging. On error the Explanation holds what was learnt before the
// failure, and the error does not repeat the entry.
func (r *Resolver) Explain(ctx context.Context, entry string, defaultPort int) (Explanation, error) {
	rr, err := r.prepare(defaultPort)
	if err != nil {
		return Explanation{Entry: redact(entry)}, err
	}
	return rr.resolve(ctx, entry)
}

// entryError is the error Resolve reports for one entry.
type entryError struct {
	entry string // redacted
	err   error
}

func (e *entryError) Error() string { return fmt.Sprintf("entry %q: %v", e.entry, e.err) }

func (e *entryError) Unwrap() error { return e.err }

// resolver is a Resolver with its defaults filled in, for one call.
type resolver struct {
	providers map[string]Provider
	lookup    func(ctx context.Context, host string) ([]string, error)
	logger    hclog.Logger
	stdlog    io.Writer // logger as the writer of a *log.Logger
	port      uint16
}

func (r *Resolver) prepare(defaultPort int) (*resolver, error) {
	if defaultPort < 1 || defaultPort > 65535 {
		return nil, fmt.Errorf("default port %d is not a number from 1 to 65535", defaultPort)
	}
	rr := &resolver{
		providers: r.Providers,
		lookup:    r.LookupHost,
		logger:    r.Logger,
		port:      uint16(defaultPort),
	}
	if rr.providers == nil {
		rr.providers = DefaultProviders()
	}
	if rr.lookup == nil {
		rr.lookup = net.DefaultResolver.LookupHost
	}
	if rr.logger == nil {
		rr.logger = hclog.NewNullLogger()
	}
	rr.stdlog = rr.logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	return rr, nil
}

// resolve resolves one entry. The returned Explanation always has Entry
// set, and holds whatever addresses were found even when err is not nil.
func (rr *resolver) resolve(ctx context.Context, entry string) (Explanation, error) {
	entry = strings.TrimSpace(entry)
	x := Explanation{Entry: redact(entry)}
	if !isProviderEntry(entry) {
		hp, err := parseAddress(entry, rr.port)
		if err != nil {
			return x, err
		}
		x.Addrs, err = rr.resolveHost(ctx, hp)
		return x, err
	}

	name, args, p, err := parseProviderEntry(entry, rr.providers)
	x.Provider, x.Args = name, redactArgs(args)
	if err != nil {
		return x, err
	}
	// This is what go-discover's Discover.Addrs does after discover.Parse,
	// minus its SetUserAgent call, which would write to provider values
	// shared through discover.Providers and so race between concurrent
	// calls.
	rr.logger.Debug("discovering nodes", "provider", name)
	var lines lineLog
	found, err := p.Addrs(args, log.New(io.MultiWriter(rr.stdlog, &lines), "", 0))
	x.Log = lines.Lines()
	if err != nil {
		return x, fmt.Errorf("provider %s: %w", name, err)
	}
	var errs errList
	for _, a := range found {
		hp, err := parseAddress(a, rr.port)
		if err == nil {
			var addrs []string
			addrs, err = rr.resolveHost(ctx, hp)
			x.Addrs = append(x.Addrs, addrs...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("provider %s returned %q: %w", name, a, err))
		}
	}
	if len(errs) > 0 {
		return x, errs
	}
	if len(x.Addrs) == 0 {
		return x, fmt.Errorf("provider %s: %w", name, ErrNoAddresses)
	}
	return x, nil
}

// lineLog is the writer of a *log.Logger that keeps each line written.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(string(p)) {
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			l.lines = append(l.lines, line)
		}
	}
	return len(p), nil
}

// Lines returns the lines written so far, or nil if none.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// errList is several errors reported as one, on one line.
type errList []error

func (l errList) Error() string {
	msgs := make([]string, len(l))
	for i, err := range l {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (l errList) Unwrap() []error { return l }

// resolveHost turns hp into host:port strings, looking its host up in DNS
// unless it is an IP address.
func (rr *resolver) resolveHost(ctx context.Context, hp hostPort) ([]string, error) {
	if hp.ip.IsValid() {
		return []string{netip.AddrPortFrom(hp.ip, hp.port).String()}, nil
	}
	ips, err := rr.lookup(ctx, hp.host)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %q is not an IP address", hp.host, s)
		}
		addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), hp.port).String())
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("lookup %s: %w", hp.host, ErrNoAddresses)
	}
	return addrs, nil
}
