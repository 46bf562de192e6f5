package discover

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-discover"
	"github.com/hashicorp/go-discover/provider/k8s"
	"github.com/hashicorp/go-hclog"
)

// testPort is the default port the tests pass: the agent's default
// gossip port.
const testPort = 8301

// fakeProvider is a Provider that records the args it is called with and
// returns fixed addresses or an error.
type fakeProvider struct {
	addrs []string
	err   error

	mu    sync.Mutex
	calls []map[string]string
}

func (p *fakeProvider) Addrs(args map[string]string, _ *log.Logger) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, maps.Clone(args))
	return p.addrs, p.err
}

func (p *fakeProvider) Help() string { return "fake: returns fixed addresses" }

// fakeDNS is a LookupHost func over a fixed table; names not in the table
// fail with "no such host". It counts lookups per name.
type fakeDNS struct {
	mu      sync.Mutex
	records map[string][]string
	lookups map[string]int
}

func newFakeDNS(records map[string][]string) *fakeDNS {
	return &fakeDNS{records: records, lookups: make(map[string]int)}
}

func (d *fakeDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups[host]++
	addrs, ok := d.records[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func (d *fakeDNS) set(host string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[host] = addrs
}

func (d *fakeDNS) count(host string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lookups[host]
}

// testLogger returns a logger that writes to the test log and to the
// returned buffer, which may be read once the code under test is done.
func testLogger(t *testing.T) (hclog.Logger, *lockedBuffer) {
	t.Helper()
	var buf lockedBuffer
	return hclog.New(&hclog.LoggerOptions{
		Name:   "discover",
		Level:  hclog.Trace,
		Output: io.MultiWriter(&buf, t.Output()),
	}), &buf
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestExplainAddress(t *testing.T) {
	dns := newFakeDNS(map[string][]string{
		"node1":          {"10.0.0.5"},
		"node1.example.": {"10.0.0.6"},
	})
	r := &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{}}

	cases := []struct {
		name  string
		entry string
		want  []string
	}{
		{"ipv4", "10.0.0.1", []string{"10.0.0.1:8301"}},
		{"ipv4 with port", "10.0.0.1:9000", []string{"10.0.0.1:9000"}},
		{"ipv4 mapped ipv6", "::ffff:10.0.0.1", []string{"10.0.0.1:8301"}},
		{"surrounding spaces", "  10.0.0.1  ", []string{"10.0.0.1:8301"}},
		{"bracketed ipv6 with port", "[::1]:9000", []string{"[::1]:9000"}},
		{"bracketed ipv6", "[2001:db8::1]", []string{"[2001:db8::1]:8301"}},
		{"bare ipv6", "::1", []string{"[::1]:8301"}},
		{"bare ipv6 not canonical", "2001:DB8:0::1", []string{"[2001:db8::1]:8301"}},
		{"bare ipv6 with zone", "fe80::1%eth0", []string{"[fe80::1%eth0]:8301"}},
		// Bare IPv6 never carries a port: this is the address ::1:8301.
		{"bare ipv6 ending like a port", "::1:8301", []string{"[::1:8301]:8301"}},
		{"host", "node1", []string{"10.0.0.5:8301"}},
		{"host with port", "node1:7000", []string{"10.0.0.5:7000"}},
		{"fqdn with trailing dot", "node1.example.:7000", []string{"10.0.0.6:7000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x, err := r.Explain(t.Context(), tc.entry, testPort)
			if err != nil {
				t.Fatalf("Explain(%q) error = %v, want nil", tc.entry, err)
			}
			if diff := cmp.Diff(tc.want, x.Addrs); diff != "" {
				t.Errorf("Explain(%q).Addrs mismatch (-want +got):\n%s", tc.entry, diff)
			}
			if x.Provider != "" || x.Args != nil {
				t.Errorf("Explain(%q) = provider %q, args %v; want none", tc.entry, x.Provider, x.Args)
			}
		})
	}
	// IP literals must not reach DNS.
	for host := range dns.lookups {
		if host != "node1" && host != "node1.example." {
			t.Errorf("looked up %q in DNS, want only the host names", host)
		}
	}
}

func TestExplainInvalidAddress(t *testing.T) {
	dns := newFakeDNS(nil)
	r := &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{}}

	cases := []struct {
		entry string
		want  string
	}{
		{"", "invalid address: empty"},
		{"host:notaport", `invalid address: port "notaport" is not a number from 1 to 65535`},
		{"host:0", `invalid address: port "0" is not a number from 1 to 65535`},
		{"host:65536", `invalid address: port "65536" is not a number from 1 to 65535`},
		{"host:-1", `invalid address: port "-1" is not a number from 1 to 65535`},
		{"host:", "invalid address: missing port after ':'"},
		{":8301", "invalid address: missing host"},
		{"[::1", "invalid address: missing ']'"},
		{"[::1]:", "invalid address: missing port after ':'"},
		{"[::1]8301", `invalid address: unexpected "8301" after ']'`},
		{"[::1]:http", `invalid address: port "http" is not a number from 1 to 65535`},
		{"[10.0.0.1]:8301", `invalid address: "10.0.0.1" in brackets is not an IPv6 address`},
		{"[node1]:8301", `invalid address: "node1" in brackets is not an IPv6 address`},
		{"a:b:c", "invalid address: too many colons; write an IPv6 address with a port as [addr]:port"},
		{"2001:db8::zz", "invalid address: too many colons; write an IPv6 address with a port as [addr]:port"},
		{"my host", `invalid address: invalid character ' ' in host name "my host"`},
		{"node/1:8301", `invalid address: invalid character '/' in host name "node/1"`},
	}
	for _, tc := range cases {
		t.Run(tc.entry, func(t *testing.T) {
			x, err := r.Explain(t.Context(), tc.entry, testPort)
			if err == nil {
				t.Fatalf("Explain(%q) = %v, want error %q", tc.entry, x.Addrs, tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Explain(%q) error = %q, want %q", tc.entry, got, tc.want)
			}
			if !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("Explain(%q) error = %v, want errors.Is ErrInvalidAddress", tc.entry, err)
			}
		})
	}
	if len(dns.lookups) != 0 {
		t.Errorf("invalid entries caused DNS lookups %v, want none", dns.lookups)
	}
}

func TestResolveDNSNameWithSeveralAddresses(t *testing.T) {
	dns := newFakeDNS(map[string][]string{
		"servers.example": {"10.0.0.1", "10.0.0.2", "2001:db8::1"},
	})
	r := &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{}}

	entries := []string{"servers.example", "10.0.0.2", "servers.example:9000", "10.0.0.1:8301"}
	addrs, errs := r.Resolve(t.Context(), entries, 8301)
	if len(errs) != 0 {
		t.Fatalf("Resolve(%q) errs = %v, want none", entries, errs)
	}
	want := []string{
		"10.0.0.1:8301", "10.0.0.2:8301", "[2001:db8::1]:8301",
		"10.0.0.1:9000", "10.0.0.2:9000", "[2001:db8::1]:9000",
	}
	if diff := cmp.Diff(want, addrs); diff != "" {
		t.Errorf("Resolve(%q) mismatch (-want +got):\n%s", entries, diff)
	}
}

func TestResolveLooksUpAgainEveryCall(t *testing.T) {
	// At pod start the headless service has no records yet; the next
	// attempt must not reuse that failure.
	dns := newFakeDNS(map[string][]string{})
	r := &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{}}
	entries := []string{"conclave.default.svc"}

	addrs, errs := r.Resolve(t.Context(), entries, testPort)
	if len(addrs) != 0 || len(errs) != 1 {
		t.Fatalf("first Resolve = %v, %v; want no addresses and one error", addrs, errs)
	}
	if got, want := errs[0].Error(), `entry "conclave.default.svc": lookup conclave.default.svc: no such host`; got != want {
		t.Errorf("first Resolve error = %q, want %q", got, want)
	}

	dns.set("conclave.default.svc", "10.1.2.3")
	addrs, errs = r.Resolve(t.Context(), entries, testPort)
	if len(errs) != 0 {
		t.Fatalf("second Resolve errs = %v, want none", errs)
	}
	if diff := cmp.Diff([]string{"10.1.2.3:8301"}, addrs); diff != "" {
		t.Errorf("second Resolve mismatch (-want +got):\n%s", diff)
	}
	if got := dns.count("conclave.default.svc"); got != 2 {
		t.Errorf("lookups = %d, want 2", got)
	}
}

func TestResolveEmptyDNSAnswer(t *testing.T) {
	dns := newFakeDNS(map[string][]string{"empty.example": {}})
	r := &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{}}
	_, err := r.Explain(t.Context(), "empty.example", testPort)
	if !errors.Is(err, ErrNoAddresses) {
		t.Errorf("Explain error = %v, want errors.Is ErrNoAddresses", err)
	}
}

func TestResolveProviderGetsParsedArgs(t *testing.T) {
	fake := &fakeProvider{addrs: []string{
		"10.1.0.1",           // no port: default port
		"10.1.0.2:9000",      // k8s with a port annotation
		"2001:db8::2",        // aws addr_type=public_v6
		"[2001:db8::3]:9000", // IPv6 with a port
		"pod-3.conclave.svc", // a name: looked up in DNS
		"10.1.0.1",           // duplicate
	}}
	dns := newFakeDNS(map[string][]string{"pod-3.conclave.svc": {"10.1.0.3"}})
	r := &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{"k8s": fake}}

	entry := `provider=k8s label_selector="app=conclave,tier in (server)" namespace=prod kubeconfig="/etc/kube config" api_token=s3cr3t`
	x, err := r.Explain(t.Context(), entry, 8301)
	if err != nil {
		t.Fatalf("Explain error = %v, want nil", err)
	}

	// The provider sees go-discover's parse of the entry: quotes removed,
	// '=' and spaces kept inside quoted values.
	wantArgs := map[string]string{
		"provider":       "k8s",
		"label_selector": "app=conclave,tier in (server)",
		"namespace":      "prod",
		"kubeconfig":     "/etc/kube config",
		"api_token":      "s3cr3t",
	}
	if len(fake.calls) != 1 {
		t.Fatalf("provider called %d times, want 1", len(fake.calls))
	}
	if diff := cmp.Diff(wantArgs, fake.calls[0]); diff != "" {
		t.Errorf("provider args mismatch (-want +got):\n%s", diff)
	}

	want := Explanation{
		Entry:    `provider=k8s api_token=[redacted] kubeconfig="/etc/kube config" label_selector="app=conclave,tier in (server)" namespace=prod`,
		Provider: "k8s",
		Args: map[string]string{
			"provider":       "k8s",
			"label_selector": "app=conclave,tier in (server)",
			"namespace":      "prod",
			"kubeconfig":     "/etc/kube config",
			"api_token":      "[redacted]",
		},
		Addrs: []string{"10.1.0.1:8301", "10.1.0.2:9000", "[2001:db8::2]:8301", "[2001:db8::3]:9000", "10.1.0.3:8301", "10.1.0.1:8301"},
	}
	if diff := cmp.Diff(want, x); diff != "" {
		t.Errorf("Explain mismatch (-want +got):\n%s", diff)
	}

	// Resolve deduplicates what Explain reports as found.
	addrs, errs := r.Resolve(t.Context(), []string{entry}, 8301)
	if len(errs) != 0 {
		t.Fatalf("Resolve errs = %v, want none", errs)
	}
	if diff := cmp.Diff(want.Addrs[:5], addrs); diff != "" {
		t.Errorf("Resolve mismatch (-want +got):\n%s", diff)
	}
}

func TestResolveParsesLikeGoDiscover(t *testing.T) {
	// Whatever go-discover itself hands a provider, ours must get too.
	entry := `provider=fake tag_key="role name" tag_value=a\b label_selector="app=conclave"`
	ours := &fakeProvider{addrs: []string{"10.0.0.1"}}
	theirs := &fakeProvider{addrs: []string{"10.0.0.1"}}

	r := &Resolver{Providers: map[string]Provider{"fake": ours}}
	if _, errs := r.Resolve(t.Context(), []string{entry}, testPort); len(errs) != 0 {
		t.Fatalf("Resolve errs = %v, want none", errs)
	}
	d := &discover.Discover{Providers: map[string]discover.Provider{"fake": theirs}}
	if _, err := d.Addrs(entry, log.New(io.Discard, "", 0)); err != nil {
		t.Fatalf("go-discover Addrs error = %v", err)
	}
	if diff := cmp.Diff(theirs.calls, ours.calls); diff != "" {
		t.Errorf("provider args mismatch (-go-discover +ours):\n%s", diff)
	}
}

func TestResolveInvalidProviderConfig(t *testing.T) {
	r := &Resolver{Providers: map[string]Provider{"fake": &fakeProvider{}, "aws": &fakeProvider{}}}
	cases := []struct {
		name  string
		entry string
		want  string
	}{
		{
			name:  "unknown provider",
			entry: "provider=nope tag_key=x",
			want:  `entry "provider=nope tag_key=x": invalid go-discover config: unknown provider "nope"; known providers: aws, fake`,
		},
		{
			name:  "missing value",
			entry: "provider=aws tag_key",
			want:  `entry "provider=aws ...": invalid go-discover config: tag_key: missing '='`,
		},
		{
			name:  "unbalanced quotes do not leak the secret",
			entry: `provider=aws secret_access_key="s3cr3t`,
			want:  `entry "provider=aws ...": invalid go-discover config: secret_access_key: unbalanced quotes`,
		},
		{
			name:  "empty provider",
			entry: "provider=",
			want:  `entry "provider=...": invalid go-discover config: provider: missing value`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addrs, errs := r.Resolve(t.Context(), []string{tc.entry}, testPort)
			if len(addrs) != 0 || len(errs) != 1 {
				t.Fatalf("Resolve(%q) = %v, %v; want one error", tc.entry, addrs, errs)
			}
			if got := errs[0].Error(); got != tc.want {
				t.Errorf("Resolve(%q) error = %q, want %q", tc.entry, got, tc.want)
			}
			if !errors.Is(errs[0], ErrInvalidProviderConfig) {
				t.Errorf("Resolve(%q) error = %v, want errors.Is ErrInvalidProviderConfig", tc.entry, errs[0])
			}
		})
	}
}

func TestResolveFailingEntryDoesNotStopOthers(t *testing.T) {
	dns := newFakeDNS(map[string][]string{"good.example": {"10.0.0.3"}})
	r := &Resolver{
		LookupHost: dns.LookupHost,
		Providers: map[string]Provider{
			"broken": &fakeProvider{err: errors.New("discover-broken: api unavailable")},
			"empty":  &fakeProvider{},
			"odd":    &fakeProvider{addrs: []string{"10.0.0.4", "10.0.0.5:bad"}},
			"ok":     &fakeProvider{addrs: []string{"10.0.0.2"}},
		},
	}
	entries := []string{
		"missing.example",
		"provider=broken secret_access_key=s3cr3t",
		"10.0.0.1",
		"provider=empty",
		"provider=ok",
		"provider=odd",
		"good.example",
	}
	addrs, errs := r.Resolve(t.Context(), entries, 8301)

	want := []string{"10.0.0.1:8301", "10.0.0.2:8301", "10.0.0.4:8301", "10.0.0.3:8301"}
	if diff := cmp.Diff(want, addrs); diff != "" {
		t.Errorf("Resolve addrs mismatch (-want +got):\n%s", diff)
	}
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	wantErrs := []string{
		`entry "missing.example": lookup missing.example: no such host`,
		`entry "provider=broken secret_access_key=[redacted]": provider broken: discover-broken: api unavailable`,
		`entry "provider=empty": provider empty: no addresses found`,
		`entry "provider=odd": provider odd returned "10.0.0.5:bad": invalid address: port "bad" is not a number from 1 to 65535`,
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("Resolve errs mismatch (-want +got):\n%s", diff)
	}
	if len(errs) == 4 {
		if !errors.Is(errs[2], ErrNoAddresses) {
			t.Errorf("errs[2] = %v, want errors.Is ErrNoAddresses", errs[2])
		}
		if !errors.Is(errs[3], ErrInvalidAddress) {
			t.Errorf("errs[3] = %v, want errors.Is ErrInvalidAddress", errs[3])
		}
	}
	for _, s := range got {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("error %q leaks a secret", s)
		}
	}
}

func TestResolveDefaultPort(t *testing.T) {
	r := &Resolver{Providers: map[string]Provider{}}
	for _, tc := range []struct {
		port int
		want string
	}{{testPort, "10.0.0.1:8301"}, {7946, "10.0.0.1:7946"}} {
		addrs, errs := r.Resolve(t.Context(), []string{"10.0.0.1"}, tc.port)
		if len(errs) != 0 || len(addrs) != 1 || addrs[0] != tc.want {
			t.Errorf("Resolve(port %d) = %v, %v; want [%s]", tc.port, addrs, errs, tc.want)
		}
	}
	if _, errs := r.Resolve(t.Context(), []string{"10.0.0.1"}, 0); len(errs) != 1 {
		t.Errorf("Resolve(port 0) errors = %v, want one: the caller gives the port", errs)
	}
	addrs, errs := r.Resolve(t.Context(), []string{"10.0.0.1"}, 70000)
	if len(addrs) != 0 || len(errs) != 1 {
		t.Fatalf("Resolve(port 70000) = %v, %v; want one error", addrs, errs)
	}
	if got, want := errs[0].Error(), "default port 70000 is not a number from 1 to 65535"; got != want {
		t.Errorf("Resolve(port 70000) error = %q, want %q", got, want)
	}
}

func TestResolveStopsWhenContextDone(t *testing.T) {
	dns := newFakeDNS(map[string][]string{"a.example": {"10.0.0.1"}})
	r := &Resolver{LookupHost: dns.LookupHost, Providers: map[string]Provider{}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	addrs, errs := r.Resolve(ctx, []string{"a.example", "b.example"}, testPort)
	if len(addrs) != 0 || len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("Resolve with done ctx = %v, %v; want only context.Canceled", addrs, errs)
	}
	if len(dns.lookups) != 0 {
		t.Errorf("lookups = %v, want none", dns.lookups)
	}
}

func TestDefaultProviders(t *testing.T) {
	m := DefaultProviders()
	p, ok := m["k8s"]
	if !ok {
		t.Fatalf("DefaultProviders() has no \"k8s\" key; keys: %v", m)
	}
	if _, ok := p.(*k8s.Provider); !ok {
		t.Errorf("DefaultProviders()[\"k8s\"] is %T, want *k8s.Provider", p)
	}
	for name := range discover.Providers {
		if _, ok := m[name]; !ok {
			t.Errorf("DefaultProviders() lacks go-discover provider %q", name)
		}
	}
	if len(m) != len(discover.Providers)+1 {
		t.Errorf("len(DefaultProviders()) = %d, want %d", len(m), len(discover.Providers)+1)
	}

	// Each call returns a new map.
	delete(m, "k8s")
	if _, ok := DefaultProviders()["k8s"]; !ok {
		t.Error("deleting from one DefaultProviders() map changed the next one")
	}
	if _, ok := discover.Providers["k8s"]; ok {
		t.Error("DefaultProviders() added k8s to go-discover's global map")
	}
}

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"10.0.0.1:8301", "10.0.0.1:8301"},
		{
			"provider=aws region=eu-west-1 tag_key=role tag_value=server access_key_id=AKIA secret_access_key=s3cr3t session_token=t0k",
			"provider=aws access_key_id=AKIA region=eu-west-1 secret_access_key=[redacted] session_token=[redacted] tag_key=role tag_value=server",
		},
		{"provider=os user_name=u password=pw", "provider=os password=[redacted] user_name=u"},
		{"provider=softlayer api_key=k username=u", "provider=softlayer api_key=[redacted] username=u"},
		{"provider=aliyun access_key_secret=s", "provider=aliyun access_key_secret=[redacted]"},
		{`provider=k8s label_selector="app=conclave"`, `provider=k8s label_selector="app=conclave"`},
	}
	for _, tc := range cases {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
