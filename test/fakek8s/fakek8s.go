// Package fakek8s is an HTTP server that imitates the part of the
// Kubernetes API that go-discover's k8s provider uses: listing pods, in one
// namespace or in all of them, filtered by label and field selectors. Tests
// point the real provider (and so client-go) at it through a kubeconfig
// written by WriteKubeconfig:
//
//	srv := fakek8s.Start(t, "127.0.0.1:0")
//	srv.SetPods([]fakek8s.Pod{{Name: "conclave-0", Labels: map[string]string{"app": "conclave"},
//		Phase: "Running", PodIP: "10.8.0.11"}})
//	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
//	if err := fakek8s.WriteKubeconfig(kubeconfig, srv.URL()); err != nil { ... }
//	// retry_join = ["provider=k8s label_selector=\"app=conclave\" kubeconfig=" + kubeconfig]
//
// It serves plain HTTP with no authentication, answers JSON in the API's
// own shapes (a v1 PodList; a v1 Status for every error), and keeps the pods
// in memory. Label selectors are evaluated by Kubernetes' own parser
// (k8s.io/apimachinery/pkg/labels), so set-based selectors such as
// "tier in (server)" work as on a real cluster. Field selectors support the
// fields it models: metadata.name, metadata.namespace, status.phase and
// status.podIP; any other field is refused with 400, as the API refuses an
// unknown field label.
//
// Routes:
//
//	GET /api/v1/namespaces/{namespace}/pods   the pods of one namespace
//	GET /api/v1/pods                          the pods of every namespace
//
// Pods are listed sorted by namespace, then name, as the API server lists
// them. Any other path answers 404 and any other method 405, with a Status
// body. watch is refused with 400; limit and continue are ignored (one page
// holds everything).
package fakek8s

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// Pod is one pod as the fake API reports it: the fields go-discover's k8s
// provider reads.
type Pod struct {
	// Name is the pod's name. Namespace is its namespace; "" means
	// "default".
	Name, Namespace string

	// Labels are matched by label selectors. Annotations are reported as
	// they are; the provider reads the port annotation
	// "consul.hashicorp.com/auto-join-port" (a number here, as Pod has no
	// container ports to name).
	Labels, Annotations map[string]string

	// Phase is status.phase: "Pending", "Running", "Succeeded", "Failed"
	// or "Unknown". The provider only takes Running pods.
	Phase string

	// PodIP and HostIP are status.podIP and status.hostIP; "" leaves them
	// out, as for a pod not yet scheduled or started.
	PodIP, HostIP string

	// Ready is the status of the pod's Ready condition: nil means the pod
	// has no Ready condition at all.
	Ready *bool
}

// Server is a running fake Kubernetes API. Its methods are safe for
// concurrent use.
type Server struct {
	url      string
	srv      *http.Server
	requests atomic.Int64

	mu      sync.Mutex
	pods    []Pod
	errCode int
}

// Start starts a fake API listening on addr, such as "127.0.0.1:0" or a
// Docker bridge gateway address "172.30.5.1:0", and stops it when the test
// ends (tb.Cleanup). It fails the test if it cannot listen. It serves no
// pods until SetPods.
func Start(tb testing.TB, addr string) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("fakek8s: listen on %s: %v", addr, err)
	}
	s := &Server{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve returns http.ErrServerClosed once Close is called.
		_ = s.srv.Serve(ln)
	}()
	tb.Cleanup(func() {
		_ = s.srv.Close()
		<-done
	})
	return s
}

// URL returns the base URL of the API, http://host:port.
func (s *Server) URL() string { return s.url }

// SetPods replaces every pod the API knows with pods. The slice and its
// maps are copied: the caller may change them afterwards.
func (s *Server) SetPods(pods []Pod) {
	cp := make([]Pod, len(pods))
	for i, p := range pods {
		p.Labels = maps.Clone(p.Labels)
		p.Annotations = maps.Clone(p.Annotations)
		if p.Ready != nil {
			ready := *p.Ready
			p.Ready = &ready
		}
		cp[i] = p
	}
	s.mu.Lock()
	s.pods = cp
	s.mu.Unlock()
}

// SetError makes every request, whatever its path, answer code with a
// Status body, as a broken API server or a proxy in front of it would.
// code must be from 400 to 599; 0 restores normal answers.
func (s *Server) SetError(code int) {
	if code != 0 && (code < 400 || code > 599) {
		panic(fmt.Sprintf("fakek8s: SetError(%d): want 0 or an error status from 400 to 599", code))
	}
	s.mu.Lock()
	s.errCode = code
	s.mu.Unlock()
}

// Requests returns how many pod list requests the server has received,
// including those answered with an error (SetError, a bad selector).
func (s *Server) Requests() int { return int(s.requests.Load()) }

// ServeHTTP answers one request of the Kubernetes API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	namespace, isList := listNamespace(r.URL.Path)
	if isList {
		s.requests.Add(1)
	}
	s.mu.Lock()
	code := s.errCode
	s.mu.Unlock()
	switch {
	case code != 0:
		writeStatus(w, code, fmt.Sprintf("fakek8s: injected error: %d %s", code, http.StatusText(code)))
	case !isList:
		writeStatus(w, http.StatusNotFound, "the server could not find the requested resource")
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		writeStatus(w, http.StatusMethodNotAllowed, "the server does not allow this method on the requested resource")
	default:
		s.list(w, r.URL.Query(), namespace)
	}
}

// listNamespace reports whether path lists pods and, if so, in which
// namespace; "" means every namespace.
func listNamespace(path string) (namespace string, ok bool) {
	if path == "/api/v1/pods" {
		return "", true
	}
	rest, ok := strings.CutPrefix(path, "/api/v1/namespaces/")
	if !ok {
		return "", false
	}
	namespace, ok = strings.CutSuffix(rest, "/pods")
	if !ok || namespace == "" || strings.Contains(namespace, "/") {
		return "", false
	}
	return namespace, true
}

// list answers a pod list request.
func (s *Server) list(w http.ResponseWriter, q url.Values, namespace string) {
	if v := q.Get("watch"); v == "true" || v == "1" {
		writeStatus(w, http.StatusBadRequest, "fakek8s: watch is not supported")
		return
	}
	labelSel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	fieldSel, err := parseFieldSelector(q.Get("fieldSelector"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}

	s.mu.Lock()
	pods := slices.Clone(s.pods)
	s.mu.Unlock()
	slices.SortStableFunc(pods, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(podNamespace(a), podNamespace(b)), cmp.Compare(a.Name, b.Name))
	})

	list := corev1.PodList{
		TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
		ListMeta: metav1.ListMeta{ResourceVersion: "1"},
		Items:    []corev1.Pod{},
	}
	for _, p := range pods {
		if namespace != "" && podNamespace(p) != namespace {
			continue
		}
		if !labelSel.Matches(labels.Set(p.Labels)) || !fieldSel.Matches(podFields(p)) {
			continue
		}
		list.Items = append(list.Items, toAPIPod(p))
	}
	writeJSON(w, http.StatusOK, list)
}

// selectableFields are the pod fields a field selector may name here.
var selectableFields = []string{"metadata.name", "metadata.namespace", "status.phase", "status.podIP"}

// parseFieldSelector parses a field selector and refuses fields this fake
// does not model, with the API server's message.
func parseFieldSelector(s string) (fields.Selector, error) {
	sel, err := fields.ParseSelector(s)
	if err != nil {
		return nil, err
	}
	for _, req := range sel.Requirements() {
		if !slices.Contains(selectableFields, req.Field) {
			return nil, fmt.Errorf("field label not supported: %s", req.Field)
		}
	}
	return sel, nil
}

// podFields returns the values field selectors are matched against.
func podFields(p Pod) fields.Set {
	return fields.Set{
		"metadata.name":      p.Name,
		"metadata.namespace": podNamespace(p),
		"status.phase":       p.Phase,
		"status.podIP":       p.PodIP,
	}
}

func podNamespace(p Pod) string {
	if p.Namespace == "" {
		return metav1.NamespaceDefault
	}
	return p.Namespace
}

// toAPIPod returns p as the API would report it.
func toAPIPod(p Pod) corev1.Pod {
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            p.Name,
			Namespace:       podNamespace(p),
			Labels:          p.Labels,
			Annotations:     p.Annotations,
			ResourceVersion: "1",
		},
		Status: corev1.PodStatus{
			Phase:  corev1.PodPhase(p.Phase),
			PodIP:  p.PodIP,
			HostIP: p.HostIP,
		},
	}
	if p.PodIP != "" {
		pod.Status.PodIPs = []corev1.PodIP{{IP: p.PodIP}}
	}
	if p.Ready != nil {
		status := corev1.ConditionFalse
		if *p.Ready {
			status = corev1.ConditionTrue
		}
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	}
	return pod
}

// writeStatus answers code with a v1 Status, the API's error body, which
// client-go turns into the error its callers see.
func writeStatus(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   statusReason(code),
		Code:     int32(code),
	})
}

// statusReason is the Status reason the API server gives with code.
func statusReason(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusInternalServerError:
		return metav1.StatusReasonInternalError
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	default:
		return metav1.StatusReasonUnknown
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the types above are encoded; they always marshal.
		panic(fmt.Sprintf("fakek8s: encode answer: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// WriteKubeconfig writes a kubeconfig to path whose current context points
// at the API at serverURL (http://host:port, as URL returns) over plain
// HTTP with no credentials. The file is world-readable (it holds no
// secret) so that it can be mounted into a container that runs as another
// user.
func WriteKubeconfig(path, serverURL string) error {
	u, err := url.Parse(serverURL)
	if err != nil {
		return fmt.Errorf("kubeconfig server %q: %w", serverURL, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("kubeconfig server %q: want http://host:port", serverURL)
	}
	if strings.ContainsAny(serverURL, "\"\\\n") {
		return errors.New("kubeconfig server URL contains a quote, backslash or newline")
	}
	kubeconfig := `apiVersion: v1
kind: Config
clusters:
- name: fakek8s
  cluster:
    server: "` + serverURL + `"
users:
- name: fakek8s
  user: {}
contexts:
- name: fakek8s
  context:
    cluster: fakek8s
    user: fakek8s
    namespace: default
current-context: fakek8s
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o644); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
