package discover

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/conclavehq/conclave/test/fakek8s"
)

// These tests run go-discover's real k8s provider, and so client-go,
// against a fake Kubernetes API on loopback.

func ptr[T any](v T) *T { return &v }

// startK8s starts a fake Kubernetes API serving pods and returns it with
// the path of a kubeconfig that points at it.
func startK8s(t *testing.T, pods []fakek8s.Pod) (*fakek8s.Server, string) {
	t.Helper()
	srv := fakek8s.Start(t, "127.0.0.1:0")
	srv.SetPods(pods)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := fakek8s.WriteKubeconfig(kubeconfig, srv.URL()); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	return srv, kubeconfig
}

// noDNS is a LookupHost that fails the test: pod addresses are IPs and must
// not reach DNS.
func noDNS(t *testing.T) func(ctx context.Context, host string) ([]string, error) {
	return func(_ context.Context, host string) ([]string, error) {
		t.Errorf("looked up %q in DNS, want no lookup", host)
		return nil, errors.New("unexpected lookup")
	}
}

const portAnnotation = "consul.hashicorp.com/auto-join-port"

// clusterPods covers every case the k8s provider filters on. The fake API
// lists them sorted by namespace and name, and the provider keeps that
// order.
var clusterPods = []fakek8s.Pod{
	// Taken: Running, and Ready true or no Ready condition at all.
	{Name: "conclave-0", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", PodIP: "10.8.0.10", HostIP: "192.168.1.10", Ready: ptr(true)},
	{Name: "conclave-1", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", PodIP: "10.8.0.11", HostIP: "192.168.1.11"},
	// Running but not ready: readiness gates discovery.
	{Name: "conclave-2", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", PodIP: "10.8.0.12", HostIP: "192.168.1.12", Ready: ptr(false)},
	// Every other phase.
	{Name: "conclave-3", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Pending", Ready: ptr(false)},
	{Name: "conclave-4", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Succeeded", PodIP: "10.8.0.14"},
	{Name: "conclave-5", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Failed", PodIP: "10.8.0.15"},
	{Name: "conclave-6", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Unknown", PodIP: "10.8.0.16"},
	// Running and ready, but no IP yet; and a host IP only.
	{Name: "conclave-7", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", HostIP: "192.168.1.17", Ready: ptr(true)},
	// Port annotations: a number is used; a name that matches no container
	// port (the fake has none) makes the provider skip the pod.
	{Name: "conclave-client-0", Labels: map[string]string{"app": "conclave", "tier": "client"}, Phase: "Running", PodIP: "10.8.1.10", HostIP: "192.168.1.20",
		Annotations: map[string]string{portAnnotation: "9301"}, Ready: ptr(true)},
	{Name: "conclave-client-1", Labels: map[string]string{"app": "conclave", "tier": "client"}, Phase: "Running", PodIP: "10.8.1.11",
		Annotations: map[string]string{portAnnotation: "serf-lan"}, Ready: ptr(true)},
	// Another app in the same namespace.
	{Name: "web-0", Labels: map[string]string{"app": "web"}, Phase: "Running", PodIP: "10.8.2.10", Ready: ptr(true)},
	// Another namespace.
	{Name: "conclave-0", Namespace: "prod", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", PodIP: "10.9.0.10", Ready: ptr(true)},
	{Name: "conclave-1", Namespace: "prod", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", PodIP: "10.9.0.11", Ready: ptr(false)},
}

func TestK8sProvider(t *testing.T) {
	srv, kubeconfig := startK8s(t, clusterPods)
	r := &Resolver{LookupHost: noDNS(t)}

	// The provider's own debug lines, as Explain reports them.
	notReady := func(pod string) string {
		return `[DEBUG] discover-k8s: ignoring pod "` + pod + `", not ready state`
	}
	notRunning := func(pod, phase string) string {
		return `[DEBUG] discover-k8s: ignoring pod "` + pod + `", not running: "` + phase + `"`
	}
	noIP := func(pod string) string {
		return `[DEBUG] discover-k8s: ignoring pod "` + pod + `", requested IP is empty`
	}
	serverLog := []string{
		notReady("conclave-2"),
		notRunning("conclave-3", "Pending"),
		notRunning("conclave-4", "Succeeded"),
		notRunning("conclave-5", "Failed"),
		notRunning("conclave-6", "Unknown"),
		noIP("conclave-7"),
	}

	cases := []struct {
		name      string
		args      string // after provider=k8s kubeconfig=...
		wantAddrs []string
		wantLog   []string
		wantErr   string
	}{
		{
			name:      "servers",
			args:      `label_selector="app=conclave,tier=server"`,
			wantAddrs: []string{"10.8.0.10:8301", "10.8.0.11:8301"},
			wantLog:   serverLog,
		},
		{
			name: "whole app",
			args: `label_selector="app=conclave"`,
			wantAddrs: []string{
				"10.8.0.10:8301", "10.8.0.11:8301",
				"10.8.1.10:9301", // the port annotation
			},
			wantLog: append(
				[]string{serverLog[0], serverLog[1], serverLog[2], serverLog[3], serverLog[4], serverLog[5]},
				`[DEBUG] discover-k8s: ignoring pod "conclave-client-1", error retrieving port: strconv.ParseInt: parsing "serf-lan": invalid syntax`,
			),
		},
		{
			name:      "set-based selector",
			args:      `label_selector="app=conclave,tier in (client)"`,
			wantAddrs: []string{"10.8.1.10:9301"},
			wantLog:   []string{`[DEBUG] discover-k8s: ignoring pod "conclave-client-1", error retrieving port: strconv.ParseInt: parsing "serf-lan": invalid syntax`},
		},
		{
			name:      "no selector takes every pod of the namespace",
			args:      ``,
			wantAddrs: []string{"10.8.0.10:8301", "10.8.0.11:8301", "10.8.1.10:9301", "10.8.2.10:8301"},
			wantLog: append(append([]string(nil), serverLog...),
				`[DEBUG] discover-k8s: ignoring pod "conclave-client-1", error retrieving port: strconv.ParseInt: parsing "serf-lan": invalid syntax`),
		},
		{
			name:      "namespace",
			args:      `namespace=prod label_selector="app=conclave"`,
			wantAddrs: []string{"10.9.0.10:8301"},
			wantLog:   []string{notReady("conclave-1")},
		},
		{
			name:      "field selector",
			args:      `label_selector="app=conclave" field_selector="metadata.name=conclave-1"`,
			wantAddrs: []string{"10.8.0.11:8301"},
		},
		{
			name: "host network uses host IPs",
			args: `label_selector="app=conclave,tier=server" host_network=true`,
			// conclave-7 has no pod IP, but a host IP is all it needs here.
			wantAddrs: []string{"192.168.1.10:8301", "192.168.1.11:8301", "192.168.1.17:8301"},
			wantLog:   serverLog[:5],
		},
		{
			name:      "host network skips pods without a host IP",
			args:      `label_selector="tier=client" host_network=true`,
			wantAddrs: []string{"192.168.1.20:9301"},
			wantLog:   []string{`[DEBUG] discover-k8s: ignoring pod "conclave-client-1", requested IP is empty`},
		},
		{
			name:    "nothing ready",
			args:    `label_selector="app=conclave" field_selector="status.phase!=Running"`,
			wantLog: serverLog[1:5],
			wantErr: "provider k8s: no addresses found",
		},
		{
			name:    "empty namespace",
			args:    `namespace=staging`,
			wantErr: "provider k8s: no addresses found",
		},
		{
			name:    "bad host_network",
			args:    `host_network=yes`,
			wantErr: `provider k8s: discover-k8s: host_network must be boolean value: strconv.ParseBool: parsing "yes": invalid syntax`,
		},
		{
			name:    "bad label selector",
			args:    `label_selector="app in conclave"`,
			wantErr: "provider k8s: discover-k8s: error listing pods: unable to parse requirement: found 'conclave' expected: '('",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			entry := "provider=k8s kubeconfig=" + kubeconfig + " " + tc.args
			before := srv.Requests()
			x, err := r.Explain(t.Context(), entry, testPort)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Explain(%q) error = %v, want nil", entry, err)
			}
			if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("Explain(%q) error = %v, want %q", entry, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantAddrs, x.Addrs); diff != "" {
				t.Errorf("Explain(%q).Addrs mismatch (-want +got):\n%s", entry, diff)
			}
			if diff := cmp.Diff(tc.wantLog, x.Log); diff != "" {
				t.Errorf("Explain(%q).Log mismatch (-want +got):\n%s", entry, diff)
			}
			if x.Provider != "k8s" || x.Args["kubeconfig"] != kubeconfig {
				t.Errorf("Explain(%q) = provider %q, args %v; want k8s with kubeconfig %s", entry, x.Provider, x.Args, kubeconfig)
			}
			// One list per call, even for host_network=yes: the provider
			// lists the pods before it reads that key.
			if got := srv.Requests() - before; got != 1 {
				t.Errorf("API requests = %d, want 1", got)
			}
		})
	}
}

// TestK8sProviderSeesChanges checks that nothing is cached between calls:
// a pod that becomes ready is found by the next Resolve.
func TestK8sProviderSeesChanges(t *testing.T) {
	pods := []fakek8s.Pod{
		{Name: "conclave-0", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.10", Ready: ptr(true)},
		{Name: "conclave-1", Labels: map[string]string{"app": "conclave"}, Phase: "Pending"},
	}
	srv, kubeconfig := startK8s(t, pods)
	logger, logs := testLogger(t)
	r := &Resolver{LookupHost: noDNS(t), Logger: logger}
	entries := []string{`provider=k8s label_selector="app=conclave" kubeconfig=` + kubeconfig}

	addrs, errs := r.Resolve(t.Context(), entries, 7301)
	if len(errs) != 0 {
		t.Fatalf("first Resolve errs = %v, want none", errs)
	}
	if diff := cmp.Diff([]string{"10.8.0.10:7301"}, addrs); diff != "" {
		t.Errorf("first Resolve mismatch (-want +got):\n%s", diff)
	}
	// The provider's lines still reach the Resolver's logger, at debug.
	if want := `[DEBUG] discover: discover-k8s: ignoring pod "conclave-1", not running: "Pending"`; !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %q:\n%s", want, logs.String())
	}

	pods[1].Phase, pods[1].PodIP, pods[1].Ready = "Running", "10.8.0.11", ptr(true)
	srv.SetPods(pods)
	addrs, errs = r.Resolve(t.Context(), entries, 7301)
	if len(errs) != 0 {
		t.Fatalf("second Resolve errs = %v, want none", errs)
	}
	if diff := cmp.Diff([]string{"10.8.0.10:7301", "10.8.0.11:7301"}, addrs); diff != "" {
		t.Errorf("second Resolve mismatch (-want +got):\n%s", diff)
	}
	if got := srv.Requests(); got != 2 {
		t.Errorf("API requests = %d, want 2", got)
	}
}

// deadURL returns an http:// URL on loopback where nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return "http://" + addr
}
