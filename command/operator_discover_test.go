package command

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/fakek8s"
)

func runDiscover(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ui := cli.NewMockUi()
	return run(t, ui, &OperatorDiscoverCommand{Meta: Meta{Ui: ui}}, args...)
}

// k8sAPI starts a fake Kubernetes API with three pods, one of them not
// ready, and returns it with a kubeconfig for it.
func k8sAPI(t *testing.T) (*fakek8s.Server, string) {
	t.Helper()
	ready, notReady := true, false
	srv := fakek8s.Start(t, "127.0.0.1:0")
	srv.SetPods([]fakek8s.Pod{
		{Name: "conclave-0", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.10", Ready: &ready},
		{Name: "conclave-1", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.11", Ready: &notReady},
		{Name: "conclave-2", Labels: map[string]string{"app": "conclave"}, Phase: "Pending"},
		{Name: "conclave-3", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.13",
			Annotations: map[string]string{"consul.hashicorp.com/auto-join-port": "9301"}},
	})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := fakek8s.WriteKubeconfig(kubeconfig, srv.URL()); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	return srv, kubeconfig
}

func TestOperatorDiscoverCommand_local(t *testing.T) {
	_, good := k8sAPI(t)
	brokenAPI, broken := k8sAPI(t)
	brokenAPI.SetError(http.StatusForbidden)
	_, empty := k8sAPI(t)
	missing := filepath.Join(t.TempDir(), "missing")
	// Outside a pod, so that the provider's fallback to the in-cluster
	// configuration fails the same way everywhere.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	code, stdout, stderr := runDiscover(t,
		"10.0.0.1",
		"[fd00::1]:7301",
		`provider=k8s label_selector="app=conclave" kubeconfig=`+good,
		`provider=k8s label_selector="app=conclave" kubeconfig=`+broken+` api_token=s3cr3t`,
		`provider=k8s label_selector="app=web" kubeconfig=`+empty,
		"provider=nope",
		// go-multierror's message spans lines.
		"provider=k8s kubeconfig="+missing,
	)
	if code != 2 {
		t.Errorf("Run() = %d, want 2 (some entries found no address); stderr:\n%s", code, stderr)
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want empty", stderr)
	}
	if strings.Contains(stdout, "s3cr3t") {
		t.Errorf("output leaks a secret:\n%s", stdout)
	}
	stdout = strings.NewReplacer(good, "GOOD/kubeconfig", broken, "BROKEN/kubeconfig", empty, "EMPTY/kubeconfig", missing, "MISSING/kubeconfig").Replace(stdout)
	checkGolden(t, "operator_discover_local", stdout)
}

func TestOperatorDiscoverCommand_localOK(t *testing.T) {
	_, kubeconfig := k8sAPI(t)
	code, stdout, stderr := runDiscover(t, "-port=7301",
		"10.0.0.1", `provider=k8s label_selector="app=conclave" kubeconfig=`+kubeconfig)
	if code != 0 {
		t.Errorf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	want := `Entry     = 10.0.0.1
Addresses = 10.0.0.1:7301

Entry     = provider=k8s kubeconfig=` + kubeconfig + ` label_selector="app=conclave"
Provider  = k8s
Arguments = kubeconfig="` + kubeconfig + `" label_selector="app=conclave"
Addresses = 10.8.0.10:7301
            10.8.0.13:9301
Log       = [DEBUG] discover-k8s: ignoring pod "conclave-1", not ready state
            [DEBUG] discover-k8s: ignoring pod "conclave-2", not running: "Pending"
`
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestOperatorDiscoverCommand_localJSON(t *testing.T) {
	_, kubeconfig := k8sAPI(t)
	entry := `provider=k8s label_selector="app=conclave" kubeconfig=` + kubeconfig
	code, stdout, stderr := runDiscover(t, "-format=json", "10.0.0.1", entry, "10.0.0.2:bad")
	if code != 2 {
		t.Errorf("Run() = %d, want 2; stderr:\n%s", code, stderr)
	}
	var got []*api.DiscoverResult
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("decode output: %v\n%s", err, stdout)
	}
	want := []*api.DiscoverResult{
		{Entry: "10.0.0.1", Addrs: []string{"10.0.0.1:8301"}, Log: []string{}},
		{
			Entry:    `provider=k8s kubeconfig=` + kubeconfig + ` label_selector="app=conclave"`,
			Provider: "k8s",
			Args:     map[string]string{"provider": "k8s", "kubeconfig": kubeconfig, "label_selector": "app=conclave"},
			Addrs:    []string{"10.8.0.10:8301", "10.8.0.13:9301"},
			Log: []string{
				`[DEBUG] discover-k8s: ignoring pod "conclave-1", not ready state`,
				`[DEBUG] discover-k8s: ignoring pod "conclave-2", not running: "Pending"`,
			},
		},
		{Entry: "10.0.0.2:bad", Addrs: []string{}, Log: []string{}, Error: `invalid address: port "bad" is not a number from 1 to 65535`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON output mismatch (-want +got):\n%s", diff)
	}
}

// agentDiscoverJSON is an agent's answer to GET /v1/operator/discover.
const agentDiscoverJSON = `[
  {"Entry": "conclave.default.svc.cluster.local", "Provider": "", "Args": null,
   "Addrs": ["10.8.0.10:8301", "10.8.0.11:8301"], "Log": [], "Error": ""},
  {"Entry": "provider=k8s label_selector=\"app=conclave\" namespace=prod", "Provider": "k8s",
   "Args": {"provider": "k8s", "label_selector": "app=conclave", "namespace": "prod"},
   "Addrs": [], "Log": ["[DEBUG] discover-k8s: ignoring pod \"conclave-0\", not ready state"],
   "Error": "provider k8s: no addresses found"}
]`

func TestOperatorDiscoverCommand_viaAgent(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/operator/discover": ok(agentDiscoverJSON)})
	entries := []string{"conclave.default.svc.cluster.local", `provider=k8s label_selector="app=conclave" namespace=prod`}

	code, stdout, stderr := runDiscover(t, append([]string{"-via-agent", "-http-addr=" + agent.addr}, entries...)...)
	if code != 2 {
		t.Errorf("Run() = %d, want 2; stderr:\n%s", code, stderr)
	}
	checkGolden(t, "operator_discover_via_agent", stdout)

	// -port and -timeout are sent only when set, so that the agent uses
	// its own gossip port.
	code, _, stderr = runDiscover(t, append([]string{"-via-agent", "-http-addr=" + agent.addr, "-port=7301", "-timeout=5s", "-format=json"}, entries...)...)
	if code != 2 {
		t.Errorf("Run(-port -timeout) = %d, want 2; stderr:\n%s", code, stderr)
	}
	q := "q=conclave.default.svc.cluster.local&q=provider%3Dk8s+label_selector%3D%22app%3Dconclave%22+namespace%3Dprod"
	want := []string{
		"GET /v1/operator/discover?" + q,
		"GET /v1/operator/discover?port=7301&" + q + "&timeout=5s",
	}
	if diff := cmp.Diff(want, agent.requests()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

func TestOperatorDiscoverCommand_viaAgentOK(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/operator/discover": ok(
		`[{"Entry": "10.0.0.1", "Args": null, "Addrs": ["10.0.0.1:8301"], "Log": [], "Error": ""}]`)})
	t.Setenv(api.HTTPAddrEnv, agent.addr)
	code, stdout, stderr := runDiscover(t, "-via-agent", "10.0.0.1")
	if code != 0 {
		t.Errorf("Run() = %d, want 0; stderr:\n%s", code, stderr)
	}
	if want := "Entry     = 10.0.0.1\nAddresses = 10.0.0.1:8301\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
}

func TestOperatorDiscoverCommand_errors(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/operator/discover": {
		code: http.StatusGatewayTimeout,
		body: `entry "provider=aws tag_key=role" did not resolve within 30s; a go-discover provider call cannot be interrupted, so it goes on in the background` + "\n",
	}})
	cases := []struct {
		name       string
		args       []string
		wantPrefix string
	}{
		{name: "no entry", wantPrefix: "Must specify at least one retry_join entry"},
		{name: "flag after an entry", args: []string{"10.0.0.1", "-via-agent"}, wantPrefix: "Flag -via-agent after an entry: give the options before the entries"},
		{name: "bad format", args: []string{"-format=yaml", "10.0.0.1"}, wantPrefix: `invalid -format "yaml"`},
		{name: "port zero", args: []string{"-port=0", "10.0.0.1"}, wantPrefix: "Invalid -port 0: want a number from 1 to 65535"},
		{name: "port too big", args: []string{"-port=65536", "10.0.0.1"}, wantPrefix: "Invalid -port 65536: want a number from 1 to 65535"},
		{name: "timeout zero", args: []string{"-timeout=0s", "10.0.0.1"}, wantPrefix: "Invalid -timeout 0s: want a positive duration, at most 2m0s with -via-agent"},
		{name: "agent timeout too long", args: []string{"-via-agent", "-timeout=3m", "10.0.0.1"}, wantPrefix: "Invalid -timeout 3m0s: "},
		{name: "http-addr without via-agent", args: []string{"-http-addr=" + agent.addr, "10.0.0.1"}, wantPrefix: "-http-addr needs -via-agent: "},
		{name: "dead agent", args: []string{"-via-agent", "-http-addr=" + deadAddr(t), "10.0.0.1"}, wantPrefix: "Error resolving entries via the agent: "},
		{
			name:       "agent timed out",
			args:       []string{"-via-agent", "-http-addr=" + agent.addr, "provider=aws tag_key=role"},
			wantPrefix: `Error resolving entries via the agent: Unexpected response code: 504 (entry "provider=aws tag_key=role" did not resolve within 30s;`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runDiscover(t, tc.args...)
			if code != 1 {
				t.Errorf("Run(%q) = %d, want 1", tc.args, code)
			}
			if stdout != "" {
				t.Errorf("Run(%q) stdout = %q, want empty", tc.args, stdout)
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
}

// TestOperatorDiscoverCommand_timeout checks that a Kubernetes API that
// never answers does not hang the command: it gives up at -timeout and
// names the entry.
func TestOperatorDiscoverCommand_timeout(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}`)
	}))
	t.Cleanup(hung.Close)
	// Let the abandoned provider call end before the server closes.
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := fakek8s.WriteKubeconfig(kubeconfig, hung.URL); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}

	entry := "provider=k8s kubeconfig=" + kubeconfig + " secret_key=s3cr3t"
	code, stdout, stderr := runDiscover(t, "-timeout=200ms", "10.0.0.1", entry)
	if code != 1 || stdout != "" {
		t.Errorf("Run() = %d with stdout %q, want 1 and nothing", code, stdout)
	}
	checkOneLineError(t, stderr, `Error resolving entries: entry "provider=k8s kubeconfig=`+kubeconfig+
		` secret_key=[redacted]" did not resolve within 200ms`)
}
