package discover

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/conclavehq/conclave/test/fakek8s"
)

// dnsServer is a real DNS server on loopback UDP that answers A and AAAA
// queries from a table it can change, and NXDOMAIN for names not in it.
type dnsServer struct {
	addr string

	mu      sync.Mutex
	records map[string][]netip.Addr // by lower-case FQDN
	queries map[string]int          // by lower-case FQDN
}

// startDNS starts a DNS server and stops it when the test ends.
func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), records: map[string][]netip.Addr{}, queries: map[string]int{}}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve), NotifyStartedFunc: func() { close(started) }}
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		t.Fatalf("start DNS server: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("DNS server did not start within 10s")
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shut down DNS server: %v", err)
		}
		<-served
	})
	return d
}

// set gives name the addresses ips, replacing any it had; with no ips the
// name exists but has no A or AAAA record.
func (d *dnsServer) set(name string, ips ...string) {
	var addrs []netip.Addr
	for _, ip := range ips {
		addrs = append(addrs, netip.MustParseAddr(ip))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[dns.CanonicalName(name)] = addrs
}

// count returns how many queries, of any type, name has received.
func (d *dnsServer) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[dns.CanonicalName(name)]
}

func (d *dnsServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	d.mu.Lock()
	for _, q := range req.Question {
		name := dns.CanonicalName(q.Name)
		d.queries[name]++
		addrs, ok := d.records[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 60}
		for _, a := range addrs {
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	}
	d.mu.Unlock()
	_ = w.WriteMsg(m)
}

// lookupHost returns the LookupHost of Go's own resolver sending every
// query to d, as a pod's resolver sends them to the cluster DNS.
func (d *dnsServer) lookupHost() func(ctx context.Context, host string) ([]string, error) {
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			// Always UDP, whatever the system's resolv.conf asks for: Go's
			// resolver frames its queries by the type of the conn.
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", d.addr)
		},
	}
	return r.LookupHost
}

func TestRealDNSSeveralRecords(t *testing.T) {
	d := startDNS(t)
	d.set("servers.conclave.test", "10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "fd00::2")
	d.set("v6only.conclave.test", "fd00::3")
	r := &Resolver{LookupHost: d.lookupHost(), Providers: map[string]Provider{}}

	entries := []string{"servers.conclave.test", "servers.conclave.test.:9000", "v6only.conclave.test"}
	addrs, errs := r.Resolve(t.Context(), entries, 8301)
	if len(errs) != 0 {
		t.Fatalf("Resolve(%q) errs = %v, want none", entries, errs)
	}
	// Go's resolver orders the records of one name by RFC 6724, which
	// depends on the machine's own addresses: compare each entry's
	// addresses as a set, and the entries in order.
	if len(addrs) != 11 {
		t.Fatalf("Resolve(%q) = %v, want 11 addresses", entries, addrs)
	}
	groups := [][]string{slices.Sorted(slices.Values(addrs[:5])), slices.Sorted(slices.Values(addrs[5:10])), addrs[10:]}
	want := [][]string{
		{"10.0.0.1:8301", "10.0.0.2:8301", "10.0.0.3:8301", "[fd00::1]:8301", "[fd00::2]:8301"},
		{"10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000", "[fd00::1]:9000", "[fd00::2]:9000"},
		{"[fd00::3]:8301"},
	}
	if diff := cmp.Diff(want, groups); diff != "" {
		t.Errorf("Resolve(%q) mismatch (-want +got):\n%s", entries, diff)
	}
}

func TestRealDNSNameAppearsLater(t *testing.T) {
	// A headless service has no records until its pods are ready: the
	// first attempt fails with NXDOMAIN, and the next one must ask again
	// rather than remember the failure.
	d := startDNS(t)
	r := &Resolver{LookupHost: d.lookupHost(), Providers: map[string]Provider{}}
	const name = "conclave.default.svc.cluster.test"
	entries := []string{name}

	addrs, errs := r.Resolve(t.Context(), entries, testPort)
	if len(addrs) != 0 || len(errs) != 1 {
		t.Fatalf("first Resolve = %v, %v; want no address and one error", addrs, errs)
	}
	var dnsErr *net.DNSError
	if !errors.As(errs[0], &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("first Resolve error = %v, want a *net.DNSError with IsNotFound", errs[0])
	}
	if !strings.HasPrefix(errs[0].Error(), `entry "`+name+`": lookup `+name) {
		t.Errorf("first Resolve error = %q, want it to name the entry and the lookup", errs[0])
	}
	first := d.count(name)
	if first == 0 {
		t.Fatal("the DNS server saw no query for the name")
	}

	d.set(name, "10.8.0.10", "10.8.0.11")
	addrs, errs = r.Resolve(t.Context(), entries, testPort)
	if len(errs) != 0 {
		t.Fatalf("second Resolve errs = %v, want none", errs)
	}
	if diff := cmp.Diff([]string{"10.8.0.10:8301", "10.8.0.11:8301"}, slices.Sorted(slices.Values(addrs))); diff != "" {
		t.Errorf("second Resolve mismatch (-want +got):\n%s", diff)
	}
	if got := d.count(name); got <= first {
		t.Errorf("queries for %s = %d after the second Resolve, want more than %d", name, got, first)
	}

	// A name with no A or AAAA record (NODATA) is no address, not a
	// crash or an empty success.
	d.set(name)
	_, errs = r.Resolve(t.Context(), entries, testPort)
	if len(errs) != 1 {
		t.Fatalf("Resolve of a name without records errs = %v, want one error", errs)
	}
}

// TestResolveMixedEntries resolves every kind of entry at once, through
// real DNS and the real k8s provider: the entries that fail (an API that
// answers 500, an API nobody listens on) yield errors that name them, and
// the others still resolve.
func TestResolveMixedEntries(t *testing.T) {
	d := startDNS(t)
	d.set("seed.conclave.test", "10.0.0.5")
	pods := []fakek8s.Pod{
		{Name: "conclave-0", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.10", Ready: ptr(true)},
		{Name: "conclave-1", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.11", Ready: ptr(false)},
	}
	good, goodConfig := startK8s(t, pods)
	broken, brokenConfig := startK8s(t, pods)
	broken.SetError(500)
	dead := deadURL(t)
	deadConfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := fakek8s.WriteKubeconfig(deadConfig, dead); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}

	k8sEntry := func(kubeconfig string) string {
		return `provider=k8s label_selector="app=conclave" kubeconfig=` + kubeconfig
	}
	entries := []string{
		"10.0.0.1",
		k8sEntry(brokenConfig),
		"seed.conclave.test:7301",
		k8sEntry(deadConfig),
		k8sEntry(goodConfig),
	}
	r := &Resolver{LookupHost: d.lookupHost()}
	addrs, errs := r.Resolve(t.Context(), entries, 8301)

	want := []string{"10.0.0.1:8301", "10.0.0.5:7301", "10.8.0.10:8301"}
	if diff := cmp.Diff(want, addrs); diff != "" {
		t.Errorf("Resolve addrs mismatch (-want +got):\n%s", diff)
	}
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	// The entries as errors show them: go-discover's canonical form,
	// keys sorted.
	shown := func(kubeconfig string) string {
		return `provider=k8s kubeconfig=` + kubeconfig + ` label_selector=\"app=conclave\"`
	}
	deadHost := strings.TrimPrefix(dead, "http://")
	wantErrs := []string{
		`entry "` + shown(brokenConfig) + `": provider k8s: discover-k8s: error listing pods: fakek8s: injected error: 500 Internal Server Error`,
		`entry "` + shown(deadConfig) + `": provider k8s: discover-k8s: error listing pods: Get "` + dead +
			`/api/v1/namespaces/default/pods?labelSelector=app%3Dconclave": dial tcp ` + deadHost + `: connect: connection refused`,
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("Resolve errs mismatch (-want +got):\n%s", diff)
	}
	if good.Requests() != 1 || broken.Requests() != 1 {
		t.Errorf("API requests: good %d, broken %d; want 1 each (no retries)", good.Requests(), broken.Requests())
	}
}
