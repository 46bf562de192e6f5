package agent

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/agent/httpapi"
	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/test/fakek8s"
	"github.com/conclavehq/conclave/test/testutil"
)

// getDiscover sends GET /v1/operator/discover with query q and returns the
// status code and body.
func getDiscover(t *testing.T, a *Agent, q url.Values) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + "/v1/operator/discover?" + q.Encode())
	if err != nil {
		t.Fatalf("GET /v1/operator/discover: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /v1/operator/discover: read body: %v", err)
	}
	return resp.StatusCode, string(body)
}

// writeKubeconfig writes a kubeconfig for the API at serverURL.
func writeKubeconfig(t *testing.T, serverURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := fakek8s.WriteKubeconfig(path, serverURL); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	return path
}

func TestOperatorDiscover(t *testing.T) {
	ready, notReady := true, false
	good := fakek8s.Start(t, "127.0.0.1:0")
	good.SetPods([]fakek8s.Pod{
		{Name: "conclave-0", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.10", Ready: &ready},
		{Name: "conclave-1", Labels: map[string]string{"app": "conclave"}, Phase: "Running", PodIP: "10.8.0.11", Ready: &notReady},
	})
	broken := fakek8s.Start(t, "127.0.0.1:0")
	broken.SetError(http.StatusInternalServerError)
	goodConfig, brokenConfig := writeKubeconfig(t, good.URL()), writeKubeconfig(t, broken.URL())
	goodEntry := `provider=k8s label_selector="app=conclave" kubeconfig=` + goodConfig
	brokenEntry := `provider=k8s label_selector="app=conclave" kubeconfig=` + brokenConfig + ` api_token=s3cr3t`

	// Every agent answers, client or server, with its own gossip port as
	// the default.
	server := testAgent(t, "server", nil)
	client := testAgent(t, "client", func(c *config.Config) { c.Server = false })
	for _, a := range []*Agent{server, client} {
		t.Run(a.cfg.NodeName, func(t *testing.T) {
			port := strconv.Itoa(a.cfg.Ports.SerfLAN)
			code, body := getDiscover(t, a, url.Values{"q": {"10.0.0.1", goodEntry, brokenEntry}})
			if code != http.StatusOK {
				t.Fatalf("GET = %d %s, want 200", code, body)
			}
			// Empty lists are [], not null, for scripts.
			if !strings.Contains(body, `"Addrs": []`) || !strings.Contains(body, `"Log": []`) {
				t.Errorf("body lacks empty Addrs and Log lists:\n%s", body)
			}
			if strings.Contains(body, "s3cr3t") {
				t.Errorf("body leaks a secret:\n%s", body)
			}

			c, err := api.NewClient(a.HTTPAddr())
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			got, err := c.Discover([]string{"10.0.0.1", goodEntry, brokenEntry}, 0, 0)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			want := []*api.DiscoverResult{
				{Entry: "10.0.0.1", Addrs: []string{"10.0.0.1:" + port}, Log: []string{}},
				{
					Entry:    `provider=k8s kubeconfig=` + goodConfig + ` label_selector="app=conclave"`,
					Provider: "k8s",
					Args:     map[string]string{"provider": "k8s", "label_selector": "app=conclave", "kubeconfig": goodConfig},
					Addrs:    []string{"10.8.0.10:" + port},
					Log:      []string{`[DEBUG] discover-k8s: ignoring pod "conclave-1", not ready state`},
				},
				{
					Entry:    `provider=k8s api_token=[redacted] kubeconfig=` + brokenConfig + ` label_selector="app=conclave"`,
					Provider: "k8s",
					Args:     map[string]string{"provider": "k8s", "label_selector": "app=conclave", "kubeconfig": brokenConfig, "api_token": "[redacted]"},
					Addrs:    []string{},
					Log:      []string{},
					Error:    "provider k8s: discover-k8s: error listing pods: fakek8s: injected error: 500 Internal Server Error",
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Discover mismatch (-want +got):\n%s", diff)
			}

			// An explicit port replaces the agent's.
			got, err = c.Discover([]string{"10.0.0.1", goodEntry}, 7000, 5*time.Second)
			if err != nil {
				t.Fatalf("Discover with port 7000: %v", err)
			}
			if len(got) != 2 || !cmp.Equal(got[0].Addrs, []string{"10.0.0.1:7000"}) || !cmp.Equal(got[1].Addrs, []string{"10.8.0.10:7000"}) {
				t.Errorf("Discover with port 7000 = %+v %+v, want addresses on port 7000", got[0], got[1])
			}
		})
	}
}

func TestOperatorDiscoverBadRequests(t *testing.T) {
	a := testAgent(t, "client", func(c *config.Config) { c.Server = false })
	many := url.Values{}
	for i := range httpapi.MaxDiscoverEntries + 1 {
		many.Add("q", fmt.Sprintf("10.0.0.%d", i))
	}
	cases := []struct {
		name string
		q    url.Values
		want string
	}{
		{"no q", url.Values{}, "missing query parameter q: give each retry_join entry to resolve as a q parameter"},
		{"too many entries", many, "too many entries: 65, at most 64"},
		{"port zero", url.Values{"q": {"10.0.0.1"}, "port": {"0"}}, `invalid port "0": want a number from 1 to 65535`},
		{"port not a number", url.Values{"q": {"10.0.0.1"}, "port": {"serf"}}, `invalid port "serf": want a number from 1 to 65535`},
		{"timeout not a duration", url.Values{"q": {"10.0.0.1"}, "timeout": {"30"}}, `invalid timeout "30": want a duration such as 10s, at most 2m0s`},
		{"timeout too long", url.Values{"q": {"10.0.0.1"}, "timeout": {"3m"}}, `invalid timeout "3m": want a duration such as 10s, at most 2m0s`},
		{"timeout zero", url.Values{"q": {"10.0.0.1"}, "timeout": {"0s"}}, `invalid timeout "0s": want a duration such as 10s, at most 2m0s`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := getDiscover(t, a, tc.q)
			if code != http.StatusBadRequest || body != tc.want+"\n" {
				t.Errorf("GET ?%s = %d %q, want 400 %q", tc.q.Encode(), code, body, tc.want)
			}
		})
	}
}

// hangingAPI is a Kubernetes API that holds every request until released,
// then answers an empty pod list.
type hangingAPI struct {
	*httptest.Server
	release     chan struct{}
	releaseOnce sync.Once
}

func startHangingAPI(t *testing.T) *hangingAPI {
	t.Helper()
	h := &hangingAPI{release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-h.release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}`)
	}))
	// Release first, so that Close does not wait for held requests.
	t.Cleanup(h.Close)
	t.Cleanup(h.Release)
	return h
}

// Release lets every held request, and every later one, be answered.
func (h *hangingAPI) Release() { h.releaseOnce.Do(func() { close(h.release) }) }

// TestOperatorDiscoverTimeout checks that a provider call that hangs
// never hangs the handler: it answers 504 at the timeout; the calls left
// running hold their slots, so that once httpapi.MaxDiscoverCalls of them hang the
// endpoint answers 503 at once; and the slots come back when the calls end.
func TestOperatorDiscoverTimeout(t *testing.T) {
	hung := startHangingAPI(t)
	entry := "provider=k8s kubeconfig=" + writeKubeconfig(t, hung.URL)
	a := testAgent(t, "client", func(c *config.Config) { c.Server = false })

	want504 := fmt.Sprintf("entry %q did not resolve within 300ms; "+
		"a go-discover provider call cannot be interrupted, so it goes on in the background\n", entry)
	for i := range httpapi.MaxDiscoverCalls {
		start := time.Now()
		code, body := getDiscover(t, a, url.Values{"q": {"10.0.0.1", entry, "10.0.0.2"}, "timeout": {"300ms"}})
		if code != http.StatusGatewayTimeout || body != want504 {
			t.Fatalf("request %d = %d %q, want 504 %q", i, code, body, want504)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("request %d took %s, want about 300ms", i, took)
		}
	}

	code, body := getDiscover(t, a, url.Values{"q": {"10.0.0.1"}})
	if want := "4 discover requests are still running; try again later\n"; code != http.StatusServiceUnavailable || body != want {
		t.Errorf("request with every slot taken = %d %q, want 503 %q", code, body, want)
	}

	hung.Release()
	testutil.WaitFor(t, 15*time.Second, func() error {
		code, body := getDiscover(t, a, url.Values{"q": {"10.0.0.1"}})
		if code != http.StatusOK {
			return fmt.Errorf("GET = %d %s, want 200", code, body)
		}
		return nil
	})
}
