package fakek8s

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func ptr[T any](v T) *T { return &v }

// testPods is a small cluster: two namespaces, every phase, every state of
// the Ready condition.
var testPods = []Pod{
	{Name: "conclave-1", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", PodIP: "10.8.0.11", HostIP: "192.168.0.1", Ready: ptr(true)},
	{Name: "conclave-0", Namespace: "default", Labels: map[string]string{"app": "conclave", "tier": "server"}, Phase: "Running", PodIP: "10.8.0.10", Ready: ptr(false)},
	{Name: "web-0", Labels: map[string]string{"app": "web"}, Phase: "Pending"},
	{Name: "conclave-0", Namespace: "prod", Labels: map[string]string{"app": "conclave", "tier": "client"}, Phase: "Running", PodIP: "10.9.0.10",
		Annotations: map[string]string{"consul.hashicorp.com/auto-join-port": "9301"}},
}

// get sends GET path to s and returns the status code and body.
func get(t *testing.T, s *Server, path string) (int, []byte) {
	t.Helper()
	return do(t, s, http.MethodGet, path)
}

func do(t *testing.T, s *Server, method, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL()+path, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, body
}

// listNames lists pods at path and returns them as namespace/name.
func listNames(t *testing.T, s *Server, path string) []string {
	t.Helper()
	code, body := get(t, s, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s, want 200", path, code, body)
	}
	var list corev1.PodList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET %s: decode: %v\n%s", path, err, body)
	}
	if list.Kind != "PodList" || list.APIVersion != "v1" {
		t.Errorf("GET %s: kind %q apiVersion %q, want PodList v1", path, list.Kind, list.APIVersion)
	}
	names := []string{}
	for _, p := range list.Items {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return names
}

func TestListFilters(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	s.SetPods(testPods)

	cases := []struct {
		name string
		path string
		want []string
	}{
		{"one namespace, sorted by name", "/api/v1/namespaces/default/pods", []string{"default/conclave-0", "default/conclave-1", "default/web-0"}},
		{"all namespaces", "/api/v1/pods", []string{"default/conclave-0", "default/conclave-1", "default/web-0", "prod/conclave-0"}},
		{"empty namespace", "/api/v1/namespaces/staging/pods", []string{}},
		{"label equality", "/api/v1/pods?labelSelector=" + url.QueryEscape("app=conclave"), []string{"default/conclave-0", "default/conclave-1", "prod/conclave-0"}},
		{"label set-based", "/api/v1/pods?labelSelector=" + url.QueryEscape("app=conclave,tier in (client)"), []string{"prod/conclave-0"}},
		{"label inequality", "/api/v1/namespaces/default/pods?labelSelector=" + url.QueryEscape("app!=conclave"), []string{"default/web-0"}},
		{"label exists", "/api/v1/pods?labelSelector=tier", []string{"default/conclave-0", "default/conclave-1", "prod/conclave-0"}},
		{"label does not exist", "/api/v1/pods?labelSelector=" + url.QueryEscape("!tier"), []string{"default/web-0"}},
		{"field phase", "/api/v1/pods?fieldSelector=" + url.QueryEscape("status.phase=Pending"), []string{"default/web-0"}},
		{"field name and namespace", "/api/v1/pods?fieldSelector=" + url.QueryEscape("metadata.name=conclave-0,metadata.namespace!=default"), []string{"prod/conclave-0"}},
		{"field pod IP", "/api/v1/pods?fieldSelector=" + url.QueryEscape("status.podIP=10.8.0.11"), []string{"default/conclave-1"}},
		{"limit is ignored", "/api/v1/namespaces/prod/pods?limit=500", []string{"prod/conclave-0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, listNames(t, s, tc.path)); diff != "" {
				t.Errorf("GET %s mismatch (-want +got):\n%s", tc.path, diff)
			}
		})
	}
	if got, want := s.Requests(), len(cases); got != want {
		t.Errorf("Requests() = %d, want %d", got, want)
	}
}

func TestPodFields(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	s.SetPods(testPods)
	code, body := get(t, s, "/api/v1/pods")
	if code != http.StatusOK {
		t.Fatalf("GET = %d %s, want 200", code, body)
	}
	var list corev1.PodList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(list.Items) != 4 {
		t.Fatalf("got %d pods, want 4", len(list.Items))
	}
	ready := func(st corev1.ConditionStatus) []corev1.PodCondition {
		return []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	}
	want := []corev1.PodStatus{
		{Phase: corev1.PodRunning, PodIP: "10.8.0.10", PodIPs: []corev1.PodIP{{IP: "10.8.0.10"}}, Conditions: ready(corev1.ConditionFalse)},
		{Phase: corev1.PodRunning, PodIP: "10.8.0.11", HostIP: "192.168.0.1", PodIPs: []corev1.PodIP{{IP: "10.8.0.11"}}, Conditions: ready(corev1.ConditionTrue)},
		{Phase: corev1.PodPending},
		{Phase: corev1.PodRunning, PodIP: "10.9.0.10", PodIPs: []corev1.PodIP{{IP: "10.9.0.10"}}},
	}
	for i, p := range list.Items {
		if diff := cmp.Diff(want[i], p.Status); diff != "" {
			t.Errorf("pod %s/%s status mismatch (-want +got):\n%s", p.Namespace, p.Name, diff)
		}
	}
	if got := list.Items[3].Annotations["consul.hashicorp.com/auto-join-port"]; got != "9301" {
		t.Errorf("port annotation = %q, want 9301", got)
	}
	if diff := cmp.Diff(map[string]string{"app": "conclave", "tier": "server"}, list.Items[1].Labels); diff != "" {
		t.Errorf("labels mismatch (-want +got):\n%s", diff)
	}
}

func TestSetPodsCopies(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	pods := []Pod{{Name: "a", Labels: map[string]string{"app": "conclave"}, Phase: "Running", Ready: ptr(true)}}
	s.SetPods(pods)
	pods[0].Name = "changed"
	pods[0].Labels["app"] = "changed"
	*pods[0].Ready = false

	if diff := cmp.Diff([]string{"default/a"}, listNames(t, s, "/api/v1/pods?labelSelector=app%3Dconclave")); diff != "" {
		t.Errorf("list after changing the caller's slice mismatch (-want +got):\n%s", diff)
	}
	s.SetPods(nil)
	if diff := cmp.Diff([]string{}, listNames(t, s, "/api/v1/pods")); diff != "" {
		t.Errorf("list after SetPods(nil) mismatch (-want +got):\n%s", diff)
	}
}

// TestErrors checks that every error is a v1 Status with the API server's
// code, reason and message.
func TestErrors(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	s.SetPods(testPods)

	cases := []struct {
		name         string
		method, path string
		want         metav1.Status
	}{
		{
			name: "unknown path", method: "GET", path: "/api/v1/namespaces/default/services",
			want: status(404, metav1.StatusReasonNotFound, "the server could not find the requested resource"),
		},
		{
			name: "one pod", method: "GET", path: "/api/v1/namespaces/default/pods/conclave-0",
			want: status(404, metav1.StatusReasonNotFound, "the server could not find the requested resource"),
		},
		{
			name: "root", method: "GET", path: "/",
			want: status(404, metav1.StatusReasonNotFound, "the server could not find the requested resource"),
		},
		{
			name: "write", method: "POST", path: "/api/v1/namespaces/default/pods",
			want: status(405, metav1.StatusReasonMethodNotAllowed, "the server does not allow this method on the requested resource"),
		},
		{
			name: "bad label selector", method: "GET", path: "/api/v1/pods?labelSelector=" + url.QueryEscape("app in conclave"),
			want: status(400, metav1.StatusReasonBadRequest, "unable to parse requirement: found 'conclave' expected: '('"),
		},
		{
			name: "unsupported field", method: "GET", path: "/api/v1/pods?fieldSelector=" + url.QueryEscape("spec.nodeName=n1"),
			want: status(400, metav1.StatusReasonBadRequest, "field label not supported: spec.nodeName"),
		},
		{
			name: "watch", method: "GET", path: "/api/v1/pods?watch=true",
			want: status(400, metav1.StatusReasonBadRequest, "fakek8s: watch is not supported"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, s, tc.method, tc.path)
			if code != int(tc.want.Code) {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, code, tc.want.Code)
			}
			var got metav1.Status
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("decode Status: %v\n%s", err, body)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s %s Status mismatch (-want +got):\n%s", tc.method, tc.path, diff)
			}
		})
	}
	// Only the requests on pod list paths count.
	if got, want := s.Requests(), 4; got != want {
		t.Errorf("Requests() = %d, want %d", got, want)
	}
}

func status(code int32, reason metav1.StatusReason, msg string) metav1.Status {
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: code,
	}
}

func TestSetError(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	s.SetPods(testPods)
	s.SetError(http.StatusInternalServerError)
	for _, path := range []string{"/api/v1/pods", "/api/v1/namespaces/default/pods", "/version"} {
		code, body := get(t, s, path)
		var got metav1.Status
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("GET %s: decode Status: %v\n%s", path, err, body)
		}
		want := status(500, metav1.StatusReasonInternalError, "fakek8s: injected error: 500 Internal Server Error")
		if code != 500 || !cmp.Equal(want, got) {
			t.Errorf("GET %s = %d %+v, want 500 %+v", path, code, got, want)
		}
	}
	if got := s.Requests(); got != 2 {
		t.Errorf("Requests() = %d, want 2 (the two pod lists)", got)
	}

	s.SetError(0)
	if diff := cmp.Diff([]string{"prod/conclave-0"}, listNames(t, s, "/api/v1/namespaces/prod/pods")); diff != "" {
		t.Errorf("list after SetError(0) mismatch (-want +got):\n%s", diff)
	}

	defer func() {
		if recover() == nil {
			t.Error("SetError(200) did not panic")
		}
	}()
	s.SetError(http.StatusOK)
}

// TestClientGo lists pods with client-go through the kubeconfig
// WriteKubeconfig writes, as go-discover's k8s provider does.
func TestClientGo(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:<port>", s.URL())
	}
	s.SetPods(testPods)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := WriteKubeconfig(path, s.URL()); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	if cfg.Host != s.URL() {
		t.Errorf("kubeconfig host = %q, want %q", cfg.Host, s.URL())
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("new clientset: %v", err)
	}

	list, err := clientset.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{
		LabelSelector: "app=conclave",
		FieldSelector: "status.phase=Running",
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name+" "+p.Status.PodIP)
	}
	if diff := cmp.Diff([]string{"conclave-0 10.8.0.10", "conclave-1 10.8.0.11"}, names); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}

	s.SetError(http.StatusServiceUnavailable)
	_, err = clientset.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("List with SetError(503) error = %v, want a ServiceUnavailable StatusError", err)
	}
	if got := s.Requests(); got != 2 {
		t.Errorf("Requests() = %d, want 2 (client-go does not retry without Retry-After)", got)
	}
}

func TestWriteKubeconfigRejects(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{"https://127.0.0.1:6443", "127.0.0.1:6443", "http://", "http://a\"b:1"} {
		if err := WriteKubeconfig(filepath.Join(dir, "kubeconfig"), u); err == nil {
			t.Errorf("WriteKubeconfig(%q) = nil, want an error", u)
		}
	}
}

// TestConcurrentUse races SetPods and SetError against lists; run with
// -race.
func TestConcurrentUse(t *testing.T) {
	s := Start(t, "127.0.0.1:0")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			s.SetPods(testPods[:i%len(testPods)])
			s.SetError([]int{0, 500}[i%2])
		}
		s.SetError(0)
	})
	for range 50 {
		code, body := get(t, s, "/api/v1/pods")
		if code != http.StatusOK && code != http.StatusInternalServerError {
			t.Fatalf("GET = %d %s, want 200 or 500", code, body)
		}
	}
	wg.Wait()
	if got := s.Requests(); got != 50 {
		t.Errorf("Requests() = %d, want 50", got)
	}
}
