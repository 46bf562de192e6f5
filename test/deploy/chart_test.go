package deploy

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/conclavehq/conclave/discover"
)

// chartMeta is the part of Chart.yaml the tests compare against.
type chartMeta struct {
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

func readChartMeta(t *testing.T) chartMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c chartMeta
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if c.Version == "" || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: version %q, appVersion %q: both are required", c.Version, c.AppVersion)
	}
	return c
}

// want is what a rendering must contain. Each test writes its own
// expectations out in full rather than reading values.yaml.
type want struct {
	rel, ns       string
	fullname      string // the API Service; the server objects are fullname-server
	clusterDomain string

	replicas       int
	datacenter     string
	readinessPath  string
	headless, k8s  bool
	extraJoin      []string // server.join.extra, as the agent must see them
	retryInterval  time.Duration
	logLevel       string
	logJSON        bool
	httpPort       int
	serfPort       int
	serverPort     int
	extraConfig    bool // the custom extraConfig: raft_multiplier 1, kv_max_value_size 1 MiB
	storage        string
	storageClass   *string
	requests       map[string]string
	limits         map[string]string
	uid, gid, fsg  int64
	antiAffinity   string // preferred or required
	topologyKey    string
	nodeSelector   map[string]string
	tolerations    []corev1.Toleration
	priorityClass  string
	podAnnotations map[string]string
	grace          int64
	partition      int32
	maxUnavailable int // 0: no PodDisruptionBudget

	image      string
	pullPolicy corev1.PullPolicy
	pullSecret string

	apiType        corev1.ServiceType
	apiPort        int32
	apiNotReady    bool
	apiAnnotations map[string]string
}

// defaultWant is what the chart renders with its default values.
func defaultWant(t *testing.T, rel, ns string) want {
	meta := readChartMeta(t)
	return want{
		rel:            rel,
		ns:             ns,
		fullname:       rel + "-conclave",
		clusterDomain:  "cluster.local",
		replicas:       3,
		datacenter:     "dc1",
		readinessPath:  "/v1/status/ready?voter",
		headless:       true,
		retryInterval:  5 * time.Second,
		logLevel:       "info",
		httpPort:       8500,
		serfPort:       8301,
		serverPort:     8300,
		storage:        "10Gi",
		requests:       map[string]string{"cpu": "100m", "memory": "128Mi"},
		limits:         map[string]string{"memory": "512Mi"},
		uid:            100,
		gid:            1000,
		fsg:            1000,
		antiAffinity:   "preferred",
		topologyKey:    "kubernetes.io/hostname",
		grace:          30,
		maxUnavailable: 1,
		image:          "conclave:" + meta.AppVersion,
		pullPolicy:     corev1.PullIfNotPresent,
		apiType:        corev1.ServiceTypeClusterIP,
		apiPort:        8500,
		apiNotReady:    true,
	}
}

func (w want) serverName() string { return w.fullname + "-server" }

func (w want) headlessDNS() string {
	return fmt.Sprintf("%s.%s.svc.%s", w.serverName(), w.ns, w.clusterDomain)
}

func (w want) serverSelector() map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "conclave",
		"app.kubernetes.io/instance":  w.rel,
		"app.kubernetes.io/component": "server",
	}
}

// k8sEntry is the k8s provider's retry_join entry.
func (w want) k8sEntry() string {
	return fmt.Sprintf(`provider=k8s namespace=%s label_selector="app.kubernetes.io/component=server,app.kubernetes.io/instance=%s,app.kubernetes.io/name=conclave"`, w.ns, w.rel)
}

// retryJoin is the retry_join list the agent must end up with.
func (w want) retryJoin() []string {
	var j []string
	if w.headless {
		j = append(j, w.headlessDNS())
	}
	if w.k8s {
		j = append(j, w.k8sEntry())
	}
	return append(j, w.extraJoin...)
}

func TestHelmLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"custom values", []string{"-f", "testdata/custom-values.yaml"}},
		{"k8s provider only", []string{"-f", "testdata/k8s-only-values.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint output:\n%s\nwant 1 chart(s) linted, 0 chart(s) failed", out)
			}
		})
	}
}

func TestTemplateDefaults(t *testing.T) {
	out, err := runHelm(t, "version", "--short")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm %s", strings.TrimSpace(out))

	w := defaultWant(t, "rel", "conclave-system")
	m := mustRender(t, w.rel, w.ns)
	checkChart(t, m, w)
}

func TestTemplateCustomValues(t *testing.T) {
	w := defaultWant(t, "prod", "data")
	w.clusterDomain = "k8s.example"
	w.replicas = 5
	w.datacenter = "eu-west"
	w.readinessPath = "/v1/status/ready"
	w.k8s = true
	// The $( must reach the agent as it is: the chart writes it $$( so
	// that Kubernetes does not take it for a variable.
	w.extraJoin = []string{"10.9.0.10", "conclave-legacy.example.com:18301", "provider=aws tag_key=conclave tag_value=price$(usd)"}
	w.retryInterval = 2 * time.Second
	w.logLevel = "debug"
	w.logJSON = true
	w.httpPort, w.serfPort, w.serverPort = 18500, 18301, 18300
	w.extraConfig = true
	w.storage = "20Gi"
	class := "fast-ssd"
	w.storageClass = &class
	w.requests = map[string]string{"cpu": "500m", "memory": "1Gi"}
	w.limits = map[string]string{"cpu": "2", "memory": "2Gi"}
	w.uid, w.gid, w.fsg = 10001, 10002, 10003
	w.antiAffinity = "required"
	w.topologyKey = "topology.kubernetes.io/zone"
	w.nodeSelector = map[string]string{"node-role.example.com/conclave": "true"}
	w.tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "conclave", Effect: corev1.TaintEffectNoSchedule}}
	w.priorityClass = "conclave-critical"
	w.podAnnotations = map[string]string{"example.com/team": "storage"}
	w.grace = 45
	w.partition = 4
	w.maxUnavailable = 2
	w.image = "registry.example.com/conclave:0.2.0-rc1"
	w.pullPolicy = corev1.PullAlways
	w.pullSecret = "regcred"
	w.apiType = corev1.ServiceTypeLoadBalancer
	w.apiPort = 80
	w.apiNotReady = false
	w.apiAnnotations = map[string]string{"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}

	m := mustRender(t, w.rel, w.ns, "-f", "testdata/custom-values.yaml")
	checkChart(t, m, w)
}

// TestTemplateK8sProviderOnly is discovery through go-discover's k8s
// provider alone, which needs the readiness that does not wait for a leader.
func TestTemplateK8sProviderOnly(t *testing.T) {
	w := defaultWant(t, "rel", "default")
	w.headless = false
	w.k8s = true
	w.readinessPath = "/v1/status/ready"
	m := mustRender(t, w.rel, w.ns, "-f", "testdata/k8s-only-values.yaml")
	checkChart(t, m, w)
}

func TestTemplateSingleServer(t *testing.T) {
	w := defaultWant(t, "solo", "default")
	w.replicas = 1
	m := mustRender(t, w.rel, w.ns, "--set", "server.replicas=1")
	checkChart(t, m, w)
}

// checkChart checks every object of a rendering against w.
func checkChart(t *testing.T, m *manifests, w want) {
	t.Helper()
	meta := readChartMeta(t)

	wantKinds := map[string]int{"StatefulSet": 1, "Service": 2, "ConfigMap": 1, "Pod": 1}
	if w.maxUnavailable > 0 {
		wantKinds["PodDisruptionBudget"] = 1
	}
	if w.k8s {
		wantKinds["ServiceAccount"], wantKinds["Role"], wantKinds["RoleBinding"] = 1, 1, 1
	}
	if diff := cmp.Diff(wantKinds, m.Kinds); diff != "" {
		t.Errorf("rendered kinds (-want +got):\n%s", diff)
	}

	// Every object: namespace and the standard labels.
	stdLabels := map[string]string{
		"helm.sh/chart":                "conclave-" + meta.Version,
		"app.kubernetes.io/name":       "conclave",
		"app.kubernetes.io/instance":   w.rel,
		"app.kubernetes.io/version":    meta.AppVersion,
		"app.kubernetes.io/managed-by": "Helm",
	}
	for kind, om := range m.objectMetas() {
		if om.Namespace != w.ns {
			t.Errorf("%s namespace = %q, want %q", kind, om.Namespace, w.ns)
		}
		for k, v := range stdLabels {
			if om.Labels[k] != v {
				t.Errorf("%s label %s = %q, want %q", kind, k, om.Labels[k], v)
			}
		}
	}

	sts := m.StatefulSets[w.serverName()]
	if sts == nil {
		t.Fatalf("no StatefulSet %q; got %v", w.serverName(), slices.Collect(maps.Keys(m.StatefulSets)))
	}
	checkStatefulSet(t, m, sts, w)
	checkServices(t, m, sts, w)
	checkDisruptionBudget(t, m, sts, w)
	checkRBAC(t, m, sts, w)
	checkAgent(t, m, sts, w)
	checkHelmTest(t, m, w)
}

// objectMetas returns the metadata of every object, keyed by kind/name.
func (m *manifests) objectMetas() map[string]metav1.ObjectMeta {
	out := make(map[string]metav1.ObjectMeta)
	add := func(kind string, om metav1.ObjectMeta) { out[kind+"/"+om.Name] = om }
	for _, o := range m.StatefulSets {
		add("StatefulSet", o.ObjectMeta)
	}
	for _, o := range m.Services {
		add("Service", o.ObjectMeta)
	}
	for _, o := range m.ConfigMaps {
		add("ConfigMap", o.ObjectMeta)
	}
	for _, o := range m.PDBs {
		add("PodDisruptionBudget", o.ObjectMeta)
	}
	for _, o := range m.ServiceAccounts {
		add("ServiceAccount", o.ObjectMeta)
	}
	for _, o := range m.Roles {
		add("Role", o.ObjectMeta)
	}
	for _, o := range m.RoleBindings {
		add("RoleBinding", o.ObjectMeta)
	}
	for _, o := range m.Pods {
		add("Pod", o.ObjectMeta)
	}
	return out
}

func serverContainer(t *testing.T, sts *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	cs := sts.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "conclave" {
		t.Fatalf("containers = %d, want one named conclave", len(cs))
	}
	return &cs[0]
}

// quantities turns a ResourceList into strings for comparison.
func quantities(l corev1.ResourceList) map[string]string {
	if len(l) == 0 {
		return nil
	}
	out := make(map[string]string)
	for k, q := range l {
		out[string(k)] = q.String()
	}
	return out
}

// subset reports whether every label of sel is in lbls: whether a
// matchLabels selector selects a pod with lbls.
func subset(sel, lbls map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

func checkStatefulSet(t *testing.T, m *manifests, sts *appsv1.StatefulSet, w want) {
	t.Helper()
	s := sts.Spec
	if s.Replicas == nil || int(*s.Replicas) != w.replicas {
		t.Errorf("replicas = %v, want %d", s.Replicas, w.replicas)
	}
	if s.ServiceName != w.serverName() {
		t.Errorf("serviceName = %q, want the headless Service %q", s.ServiceName, w.serverName())
	}
	if s.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy = %q, want Parallel", s.PodManagementPolicy)
	}
	if s.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("updateStrategy.type = %q, want RollingUpdate", s.UpdateStrategy.Type)
	}
	if ru := s.UpdateStrategy.RollingUpdate; ru == nil || ru.Partition == nil || *ru.Partition != w.partition {
		t.Errorf("updateStrategy.rollingUpdate = %+v, want partition %d", ru, w.partition)
	}
	// The selector is immutable and the pod labels change the pod
	// template: both are exactly the stable selector labels.
	if s.Selector == nil || len(s.Selector.MatchExpressions) > 0 {
		t.Fatalf("selector = %+v, want matchLabels only", s.Selector)
	}
	if diff := cmp.Diff(w.serverSelector(), s.Selector.MatchLabels); diff != "" {
		t.Errorf("selector (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.serverSelector(), s.Template.Labels); diff != "" {
		t.Errorf("pod template labels (-want +got):\n%s", diff)
	}

	ps := s.Template.Spec
	if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds != w.grace {
		t.Errorf("terminationGracePeriodSeconds = %v, want %d", ps.TerminationGracePeriodSeconds, w.grace)
	}
	if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
		t.Errorf("enableServiceLinks = %v, want false", ps.EnableServiceLinks)
	}
	if ps.PriorityClassName != w.priorityClass {
		t.Errorf("priorityClassName = %q, want %q", ps.PriorityClassName, w.priorityClass)
	}
	if diff := cmp.Diff(w.nodeSelector, ps.NodeSelector); diff != "" {
		t.Errorf("nodeSelector (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.tolerations, ps.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	var secrets []string
	for _, r := range ps.ImagePullSecrets {
		secrets = append(secrets, r.Name)
	}
	if w.pullSecret != "" && !slices.Equal(secrets, []string{w.pullSecret}) || w.pullSecret == "" && len(secrets) > 0 {
		t.Errorf("imagePullSecrets = %q, want %q", secrets, w.pullSecret)
	}

	// Non-root, with the data volume writable through fsGroup.
	psc := ps.SecurityContext
	if psc == nil {
		t.Fatal("no pod securityContext")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod runAsNonRoot = %v, want true", psc.RunAsNonRoot)
	}
	for _, f := range []struct {
		name string
		got  *int64
		want int64
	}{{"runAsUser", psc.RunAsUser, w.uid}, {"runAsGroup", psc.RunAsGroup, w.gid}, {"fsGroup", psc.FSGroup, w.fsg}} {
		if f.got == nil || *f.got != f.want {
			t.Errorf("pod %s = %v, want %d", f.name, f.got, f.want)
		}
	}
	if psc.FSGroupChangePolicy == nil || *psc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch {
		t.Errorf("fsGroupChangePolicy = %v, want OnRootMismatch", psc.FSGroupChangePolicy)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile = %+v, want RuntimeDefault", psc.SeccompProfile)
	}

	checkAntiAffinity(t, ps.Affinity, w)

	c := serverContainer(t, sts)
	if c.Image != w.image || c.ImagePullPolicy != w.pullPolicy {
		t.Errorf("image = %q (%s), want %q (%s)", c.Image, c.ImagePullPolicy, w.image, w.pullPolicy)
	}
	csc := c.SecurityContext
	if csc == nil {
		t.Fatal("no container securityContext")
	}
	if csc.RunAsNonRoot == nil || !*csc.RunAsNonRoot {
		t.Errorf("container runAsNonRoot = %v, want true", csc.RunAsNonRoot)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation = %v, want false", csc.AllowPrivilegeEscalation)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem = %v, want true", csc.ReadOnlyRootFilesystem)
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Error("privileged container")
	}
	if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) > 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and no add", csc.Capabilities)
	}
	if diff := cmp.Diff(w.requests, quantities(c.Resources.Requests)); diff != "" {
		t.Errorf("resources.requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.limits, quantities(c.Resources.Limits)); diff != "" {
		t.Errorf("resources.limits (-want +got):\n%s", diff)
	}

	// Ports, by name: the probes and the Services refer to them.
	wantPorts := []corev1.ContainerPort{
		{Name: "http", ContainerPort: int32(w.httpPort), Protocol: corev1.ProtocolTCP},
		{Name: "serf-lan", ContainerPort: int32(w.serfPort), Protocol: corev1.ProtocolTCP},
		{Name: "serf-lan-udp", ContainerPort: int32(w.serfPort), Protocol: corev1.ProtocolUDP},
		{Name: "server", ContainerPort: int32(w.serverPort), Protocol: corev1.ProtocolTCP},
	}
	if diff := cmp.Diff(wantPorts, c.Ports); diff != "" {
		t.Errorf("container ports (-want +got):\n%s", diff)
	}

	// Probes: liveness (and startup) never need a leader; readiness is
	// the rollout gate, or plain "started".
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/v1/agent/health"},
		{"livenessProbe", c.LivenessProbe, "/v1/agent/health"},
		{"readinessProbe", c.ReadinessProbe, w.readinessPath},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s = %+v, want an httpGet probe", p.name, p.probe)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Port != intstr.FromString("http") || (g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP) {
			t.Errorf("%s = %s %s %v, want HTTP GET %s on port http", p.name, g.Scheme, g.Path, g.Port.String(), p.path)
		}
		if p.probe.TimeoutSeconds < 1 || p.probe.PeriodSeconds < 1 || p.probe.FailureThreshold < 1 {
			t.Errorf("%s timing %+v: timeout, period and failureThreshold must be set", p.name, p.probe)
		}
	}
	if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 120 {
		t.Errorf("startupProbe allows %ds to start, want at least 120s for opening a large snapshot", sp.PeriodSeconds*sp.FailureThreshold)
	}

	// Volumes: data on the PVC at data_dir, /tmp as the only scratch
	// space, and the extraConfig file.
	wantMounts := []corev1.VolumeMount{
		{Name: "data", MountPath: "/conclave/data"},
		{Name: "tmp", MountPath: "/tmp"},
	}
	if w.extraConfig {
		wantMounts = append(wantMounts, corev1.VolumeMount{Name: "config", MountPath: "/conclave/config", ReadOnly: true})
	}
	if diff := cmp.Diff(wantMounts, c.VolumeMounts); diff != "" {
		t.Errorf("volumeMounts (-want +got):\n%s", diff)
	}
	vols := make(map[string]corev1.Volume)
	for _, v := range ps.Volumes {
		vols[v.Name] = v
	}
	if _, ok := vols["data"]; ok {
		t.Error("a pod volume named data hides the PVC of volumeClaimTemplates")
	}
	if v, ok := vols["tmp"]; !ok || v.EmptyDir == nil {
		t.Errorf("volume tmp = %+v, want an emptyDir", v)
	}
	if v, ok := vols["config"]; w.extraConfig != ok || ok && (v.ConfigMap == nil || v.ConfigMap.Name != w.serverName()) {
		t.Errorf("volume config = %+v (present %t), want the ConfigMap %s only with extraConfig", v, ok, w.serverName())
	}
	if len(vols) != len(wantMounts)-1 {
		t.Errorf("volumes = %d, want %d", len(vols), len(wantMounts)-1)
	}

	if len(s.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates = %d, want 1", len(s.VolumeClaimTemplates))
	}
	vct := s.VolumeClaimTemplates[0]
	if vct.Name != "data" {
		t.Errorf("volumeClaimTemplate name = %q, want data", vct.Name)
	}
	// volumeClaimTemplates cannot change after install: a version label
	// there would make every chart upgrade fail.
	if diff := cmp.Diff(w.serverSelector(), vct.Labels); diff != "" {
		t.Errorf("volumeClaimTemplate labels (-want +got):\n%s", diff)
	}
	if !slices.Equal(vct.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("accessModes = %v, want [ReadWriteOnce]", vct.Spec.AccessModes)
	}
	if diff := cmp.Diff(map[string]string{"storage": w.storage}, quantities(vct.Spec.Resources.Requests)); diff != "" {
		t.Errorf("storage request (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.storageClass, vct.Spec.StorageClassName); diff != "" {
		t.Errorf("storageClassName (-want +got):\n%s", diff)
	}

	annotations := maps.Clone(w.podAnnotations)
	if w.extraConfig {
		if annotations == nil {
			annotations = make(map[string]string)
		}
		h := s.Template.Annotations["checksum/extra-config"]
		if len(h) != 64 {
			t.Errorf("checksum/extra-config = %q, want a sha256", h)
		}
		annotations["checksum/extra-config"] = h
	}
	if diff := cmp.Diff(annotations, s.Template.Annotations); diff != "" {
		t.Errorf("pod annotations (-want +got):\n%s", diff)
	}
}

func checkAntiAffinity(t *testing.T, a *corev1.Affinity, w want) {
	t.Helper()
	if a == nil || a.PodAntiAffinity == nil || a.NodeAffinity != nil || a.PodAffinity != nil {
		t.Fatalf("affinity = %+v, want podAntiAffinity only", a)
	}
	pa := a.PodAntiAffinity
	var term corev1.PodAffinityTerm
	switch w.antiAffinity {
	case "preferred":
		if len(pa.RequiredDuringSchedulingIgnoredDuringExecution) != 0 || len(pa.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Fatalf("podAntiAffinity = %+v, want one preferred term", pa)
		}
		if wt := pa.PreferredDuringSchedulingIgnoredDuringExecution[0].Weight; wt != 100 {
			t.Errorf("preferred anti-affinity weight = %d, want 100", wt)
		}
		term = pa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	case "required":
		if len(pa.PreferredDuringSchedulingIgnoredDuringExecution) != 0 || len(pa.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Fatalf("podAntiAffinity = %+v, want one required term", pa)
		}
		term = pa.RequiredDuringSchedulingIgnoredDuringExecution[0]
	default:
		t.Fatalf("bad want.antiAffinity %q", w.antiAffinity)
	}
	if term.TopologyKey != w.topologyKey {
		t.Errorf("anti-affinity topologyKey = %q, want %q", term.TopologyKey, w.topologyKey)
	}
	if term.LabelSelector == nil || term.LabelSelector.MatchExpressions != nil {
		t.Fatalf("anti-affinity labelSelector = %+v, want matchLabels", term.LabelSelector)
	}
	if diff := cmp.Diff(w.serverSelector(), term.LabelSelector.MatchLabels); diff != "" {
		t.Errorf("anti-affinity labelSelector (-want +got):\n%s", diff)
	}
}

func checkServices(t *testing.T, m *manifests, sts *appsv1.StatefulSet, w want) {
	t.Helper()
	c := serverContainer(t, sts)
	named := make(map[string]corev1.ContainerPort)
	for _, p := range c.Ports {
		named[p.Name] = p
	}
	// Every Service port targets a container port by name, with the same
	// protocol.
	targets := func(svc *corev1.Service) {
		for _, p := range svc.Spec.Ports {
			cp, ok := named[p.TargetPort.StrVal]
			if p.TargetPort.Type != intstr.String || !ok || cp.Protocol != p.Protocol {
				t.Errorf("Service %s port %s targets %v (%s), which is no container port of that protocol", svc.Name, p.Name, p.TargetPort.String(), p.Protocol)
			}
		}
		if !subset(svc.Spec.Selector, sts.Spec.Template.Labels) || !maps.Equal(svc.Spec.Selector, w.serverSelector()) {
			t.Errorf("Service %s selector %v does not select exactly the server pods %v", svc.Name, svc.Spec.Selector, w.serverSelector())
		}
	}

	hs := m.Services[w.serverName()]
	if hs == nil {
		t.Fatalf("no headless Service %q", w.serverName())
	}
	if hs.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless Service clusterIP = %q, want None", hs.Spec.ClusterIP)
	}
	// The heart of the discovery design: DNS lists pods before they are
	// ready.
	if !hs.Spec.PublishNotReadyAddresses {
		t.Error("headless Service publishNotReadyAddresses = false, want true")
	}
	wantHeadless := []corev1.ServicePort{
		{Name: "serf-lan", Port: int32(w.serfPort), TargetPort: intstr.FromString("serf-lan"), Protocol: corev1.ProtocolTCP},
		{Name: "serf-lan-udp", Port: int32(w.serfPort), TargetPort: intstr.FromString("serf-lan-udp"), Protocol: corev1.ProtocolUDP},
		{Name: "server", Port: int32(w.serverPort), TargetPort: intstr.FromString("server"), Protocol: corev1.ProtocolTCP},
	}
	if diff := cmp.Diff(wantHeadless, hs.Spec.Ports); diff != "" {
		t.Errorf("headless Service ports (-want +got):\n%s", diff)
	}
	targets(hs)

	api := m.Services[w.fullname]
	if api == nil {
		t.Fatalf("no API Service %q", w.fullname)
	}
	if api.Spec.Type != w.apiType || api.Spec.ClusterIP != "" {
		t.Errorf("API Service type %q clusterIP %q, want %q with an allocated IP", api.Spec.Type, api.Spec.ClusterIP, w.apiType)
	}
	if api.Spec.PublishNotReadyAddresses != w.apiNotReady {
		t.Errorf("API Service publishNotReadyAddresses = %t, want %t", api.Spec.PublishNotReadyAddresses, w.apiNotReady)
	}
	wantAPI := []corev1.ServicePort{{Name: "http", Port: w.apiPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}
	if diff := cmp.Diff(wantAPI, api.Spec.Ports); diff != "" {
		t.Errorf("API Service ports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(w.apiAnnotations, api.Annotations); diff != "" {
		t.Errorf("API Service annotations (-want +got):\n%s", diff)
	}
	targets(api)
}

func checkDisruptionBudget(t *testing.T, m *manifests, sts *appsv1.StatefulSet, w want) {
	t.Helper()
	pdb := m.PDBs[w.serverName()]
	if w.maxUnavailable == 0 {
		if len(m.PDBs) != 0 {
			t.Errorf("PodDisruptionBudgets %v, want none", slices.Collect(maps.Keys(m.PDBs)))
		}
		return
	}
	if pdb == nil {
		t.Fatalf("no PodDisruptionBudget %q", w.serverName())
	}
	if mu := pdb.Spec.MaxUnavailable; mu == nil || *mu != intstr.FromInt(w.maxUnavailable) || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget maxUnavailable %v minAvailable %v, want maxUnavailable %d only", mu, pdb.Spec.MinAvailable, w.maxUnavailable)
	}
	if pdb.Spec.Selector == nil || !maps.Equal(pdb.Spec.Selector.MatchLabels, w.serverSelector()) || !subset(pdb.Spec.Selector.MatchLabels, sts.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget selector %+v, want the server pods %v", pdb.Spec.Selector, w.serverSelector())
	}
}

// checkRBAC: the ServiceAccount, Role and RoleBinding exist only with the
// k8s provider, and give it exactly what it calls.
func checkRBAC(t *testing.T, m *manifests, sts *appsv1.StatefulSet, w want) {
	t.Helper()
	ps := sts.Spec.Template.Spec
	if !w.k8s {
		if len(m.ServiceAccounts)+len(m.Roles)+len(m.RoleBindings) != 0 {
			t.Errorf("RBAC objects rendered without the k8s provider: %v", m.Kinds)
		}
		if ps.ServiceAccountName != "" || ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("serviceAccountName %q automount %v, want none and false", ps.ServiceAccountName, ps.AutomountServiceAccountToken)
		}
		return
	}
	name := w.serverName()
	if m.ServiceAccounts[name] == nil {
		t.Errorf("no ServiceAccount %q", name)
	}
	if ps.ServiceAccountName != name || ps.AutomountServiceAccountToken == nil || !*ps.AutomountServiceAccountToken {
		t.Errorf("serviceAccountName %q automount %v, want %q and true", ps.ServiceAccountName, ps.AutomountServiceAccountToken, name)
	}
	role := m.Roles[name]
	if role == nil {
		t.Fatalf("no Role %q", name)
	}
	wantRules := []rbacRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}
	var gotRules []rbacRule
	for _, r := range role.Rules {
		gotRules = append(gotRules, rbacRule{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames})
	}
	if diff := cmp.Diff(wantRules, gotRules); diff != "" {
		t.Errorf("Role rules (-want +got):\n%s", diff)
	}
	rb := m.RoleBindings[name]
	if rb == nil {
		t.Fatalf("no RoleBinding %q", name)
	}
	if rb.RoleRef.APIGroup != "rbac.authorization.k8s.io" || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != name {
		t.Errorf("RoleBinding roleRef = %+v, want Role %s", rb.RoleRef, name)
	}
	if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != name || rb.Subjects[0].Namespace != w.ns {
		t.Errorf("RoleBinding subjects = %+v, want ServiceAccount %s/%s", rb.Subjects, w.ns, name)
	}
}

type rbacRule struct {
	APIGroups, Resources, Verbs, ResourceNames []string
}

// checkAgent loads the configuration of the first and the last server pod
// with Conclave's own loader, and resolves its retry_join entries with
// Conclave's own resolver.
func checkAgent(t *testing.T, m *manifests, sts *appsv1.StatefulSet, w want) {
	t.Helper()
	cm := m.ConfigMaps[w.serverName()]
	if cm == nil {
		t.Fatalf("no ConfigMap %q", w.serverName())
	}
	if got := cm.Data["bootstrap-expect"]; got != strconv.Itoa(w.replicas) {
		t.Errorf("ConfigMap bootstrap-expect = %q, want replicas %d", got, w.replicas)
	}
	if _, ok := cm.Data["extra.hcl"]; ok != w.extraConfig {
		t.Errorf("ConfigMap extra.hcl present = %t, want %t", ok, w.extraConfig)
	}

	pods := serverPods(sts, w.replicas)
	c := serverContainer(t, sts)
	for _, p := range []testPod{pods[0], pods[len(pods)-1]} {
		env := podEnv(t, m, c, p)
		if got, want := env["CONCLAVE_HTTP_ADDR"], "127.0.0.1:"+strconv.Itoa(w.httpPort); got != want {
			t.Errorf("CONCLAVE_HTTP_ADDR = %q, want %q (for kubectl exec ... conclave)", got, want)
		}
		res := loadAgentConfig(t, m, sts, p)
		cfg := res.Config
		if w.replicas == 1 {
			// bootstrap_expect = 1 becomes bootstrap = true, with a warning.
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "Single-server bootstrap") {
				t.Errorf("config warnings = %q, want only Single-server bootstrap", res.Warnings)
			}
		} else if len(res.Warnings) > 0 {
			t.Errorf("config warnings = %q, want none", res.Warnings)
		}
		type agentView struct {
			NodeName, Datacenter, BindAddr, AdvertiseAddr, ClientAddr string
			Server                                                    bool
			BootstrapExpect                                           int
			Bootstrap                                                 bool
			HTTP, SerfLAN, ServerPort                                 int
			RetryJoin                                                 []string
			RetryInterval                                             time.Duration
			LogLevel                                                  string
			LogJSON                                                   bool
			RaftMultiplier, KVMaxValueSize                            int
		}
		got := agentView{
			cfg.NodeName, cfg.Datacenter, cfg.BindAddr, cfg.AdvertiseAddr, cfg.ClientAddr,
			cfg.Server, cfg.BootstrapExpect, cfg.Bootstrap,
			cfg.Ports.HTTP, cfg.Ports.SerfLAN, cfg.Ports.Server,
			cfg.RetryJoin, cfg.RetryInterval, cfg.LogLevel, cfg.LogJSON,
			cfg.Performance.RaftMultiplier, cfg.KVMaxValueSize,
		}
		wantView := agentView{
			NodeName: p.Name, Datacenter: w.datacenter,
			BindAddr: "0.0.0.0", AdvertiseAddr: p.IP, ClientAddr: "0.0.0.0",
			Server: true, BootstrapExpect: w.replicas,
			HTTP: w.httpPort, SerfLAN: w.serfPort, ServerPort: w.serverPort,
			RetryJoin: w.retryJoin(), RetryInterval: w.retryInterval,
			LogLevel: w.logLevel, LogJSON: w.logJSON,
			RaftMultiplier: 2, KVMaxValueSize: 512 << 10,
		}
		if w.replicas == 1 {
			wantView.BootstrapExpect, wantView.Bootstrap = 0, true
		}
		if w.extraConfig {
			wantView.RaftMultiplier, wantView.KVMaxValueSize = 1, 1<<20
		}
		if diff := cmp.Diff(wantView, got); diff != "" {
			t.Errorf("agent configuration of pod %s (-want +got):\n%s", p.Name, diff)
		}
		if _, err := discover.NewJoiner(discover.JoinerConfig{
			Entries:     cfg.RetryJoin,
			DefaultPort: cfg.Ports.SerfLAN,
			Join:        func([]string) (int, error) { return 0, nil },
		}); err != nil {
			t.Errorf("the agent would refuse retry_join %q: %v", cfg.RetryJoin, err)
		}
	}

	checkDiscovery(t, sts, pods, w)
}

// checkDiscovery resolves each retry_join entry as the agent would, for a
// fresh cluster whose pods are Running but not Ready (the voter gate cannot
// be met before bootstrap), and again once they are Ready.
func checkDiscovery(t *testing.T, sts *appsv1.StatefulSet, pods []testPod, w want) {
	t.Helper()
	var all []string
	for _, p := range pods {
		all = append(all, p.IP+":"+strconv.Itoa(w.serfPort))
	}
	aws := &staticProvider{addrs: []string{"10.7.0.1"}}
	for _, ready := range []bool{false, true} {
		k := &fakeK8s{t: t, pods: k8sPods(sts, pods, ready)}
		providers := map[string]discover.Provider{"k8s": k, "aws": aws}
		if w.headless {
			addrs, errs := resolveJoin([]string{w.headlessDNS()}, w.serfPort, w.headlessDNS(), pods, providers)
			if len(errs) > 0 || !slices.Equal(addrs, all) {
				t.Errorf("ready=%t: headless Service entry resolved to %q (errors %v), want every pod %q", ready, addrs, errs, all)
			}
		}
		if w.k8s {
			addrs, _ := resolveJoin([]string{w.k8sEntry()}, w.serfPort, w.headlessDNS(), pods, providers)
			// go-discover's k8s provider skips pods that are not Ready:
			// alone, it cannot find a fresh cluster gated on ?voter.
			want := all
			if !ready {
				want = nil
			}
			if !slices.Equal(addrs, want) {
				t.Errorf("ready=%t: k8s provider entry resolved to %q, want %q", ready, addrs, want)
			}
			if len(k.args) != 1 || k.args[0]["namespace"] != w.ns {
				t.Errorf("k8s provider args = %v, want namespace %s", k.args, w.ns)
			}
		}
	}
	for _, e := range w.extraJoin {
		if strings.HasPrefix(e, "provider=aws") {
			addrs, errs := resolveJoin([]string{e}, w.serfPort, w.headlessDNS(), pods, map[string]discover.Provider{"aws": aws})
			if len(errs) > 0 || !slices.Equal(addrs, []string{"10.7.0.1:" + strconv.Itoa(w.serfPort)}) {
				t.Errorf("entry %q resolved to %q (errors %v)", e, addrs, errs)
			}
		}
	}
	for _, args := range aws.args {
		if args["tag_value"] != "price$(usd)" {
			t.Errorf("aws provider tag_value = %q, want price$(usd) unexpanded", args["tag_value"])
		}
	}
}

// checkHelmTest: the `helm test` pod asks the API Service for the peers.
func checkHelmTest(t *testing.T, m *manifests, w want) {
	t.Helper()
	p := m.Pods[w.fullname+"-test-peers"]
	if p == nil {
		t.Fatalf("no helm test pod %q", w.fullname+"-test-peers")
	}
	if p.Annotations["helm.sh/hook"] != "test" || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("test pod hook %q restartPolicy %q, want test and Never", p.Annotations["helm.sh/hook"], p.Spec.RestartPolicy)
	}
	// Not hook-succeeded: helm test --logs reads the logs after the
	// cleanup, so it would find the pod gone (helm/helm#9098).
	if got := p.Annotations["helm.sh/hook-delete-policy"]; got != "before-hook-creation" {
		t.Errorf("test pod hook-delete-policy = %q, want before-hook-creation", got)
	}
	if len(p.Spec.Containers) != 1 {
		t.Fatalf("test pod containers = %d, want 1", len(p.Spec.Containers))
	}
	c := p.Spec.Containers[0]
	wantArgs := []string{"operator", "raft", "list-peers", fmt.Sprintf("-http-addr=%s:%d", w.fullname, w.apiPort)}
	if c.Image != w.image || !slices.Equal(c.Command, []string{"/bin/conclave"}) || !slices.Equal(c.Args, wantArgs) {
		t.Errorf("test pod runs %s %q %q, want %s /bin/conclave %q", c.Image, c.Command, c.Args, w.image, wantArgs)
	}
	if sc := p.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("test pod securityContext = %+v, want runAsNonRoot", sc)
	}
}

// TestTemplateScalingKeepsPodTemplate: changing replicas changes
// bootstrap_expect in the ConfigMap, not the pod template, so a scale-down
// is not also a rolling update of the remaining servers. With Parallel pod
// management the StatefulSet controller would do both at once, and could
// stop more servers than the cluster can lose.
func TestTemplateScalingKeepsPodTemplate(t *testing.T) {
	three := mustRender(t, "rel", "default", "--set", "server.replicas=3")
	five := mustRender(t, "rel", "default", "--set", "server.replicas=5")
	name := "rel-conclave-server"
	if diff := cmp.Diff(three.StatefulSets[name].Spec.Template, five.StatefulSets[name].Spec.Template); diff != "" {
		t.Errorf("pod template changes with replicas (-3 +5):\n%s", diff)
	}
	if a, b := three.ConfigMaps[name].Data["bootstrap-expect"], five.ConfigMaps[name].Data["bootstrap-expect"]; a != "3" || b != "5" {
		t.Errorf("bootstrap-expect = %q and %q, want 3 and 5", a, b)
	}
}

// TestTemplateExtraConfigRollsServers: a change to extraConfig changes the
// pod template (through its checksum), so that helm upgrade applies it.
func TestTemplateExtraConfigRollsServers(t *testing.T) {
	name := "rel-conclave-server"
	checksum := func(cfg string) string {
		m := mustRender(t, "rel", "default", "--set-string", "server.extraConfig="+cfg)
		return m.StatefulSets[name].Spec.Template.Annotations["checksum/extra-config"]
	}
	a, b := checksum("kv_max_value_size = 1024"), checksum("kv_max_value_size = 2048")
	if a == "" || b == "" || a == b {
		t.Errorf("checksum/extra-config = %q and %q, want two different hashes", a, b)
	}
}

func TestTemplateStorageClass(t *testing.T) {
	empty, fast := "", "fast"
	for _, tc := range []struct {
		value string
		want  *string
	}{
		{"", nil},     // the cluster's default StorageClass
		{"-", &empty}, // no dynamic provisioning
		{"fast", &fast},
	} {
		t.Run(strconv.Quote(tc.value), func(t *testing.T) {
			m := mustRender(t, "rel", "default", "--set-string", "server.storage.storageClass="+tc.value)
			got := m.StatefulSets["rel-conclave-server"].Spec.VolumeClaimTemplates[0].Spec.StorageClassName
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("storageClassName (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTemplateWithoutDisruptionBudget(t *testing.T) {
	m := mustRender(t, "rel", "default", "--set", "server.disruptionBudget.enabled=false")
	if len(m.PDBs) != 0 {
		t.Errorf("PodDisruptionBudgets = %v, want none", slices.Collect(maps.Keys(m.PDBs)))
	}
}

// TestTemplateNames: object names follow the release, and stay within
// Kubernetes' limits for long names.
func TestTemplateNames(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name, rel string
		args      []string
		api, sts  string
	}{
		{"release", "rel", nil, "rel-conclave", "rel-conclave-server"},
		{"release containing the chart name", "conclave", nil, "conclave", "conclave-server"},
		{"nameOverride", "rel", []string{"--set", "nameOverride=kv"}, "rel-kv", "rel-kv-server"},
		{"fullnameOverride", "rel", []string{"--set", "fullnameOverride=quorum"}, "quorum", "quorum-server"},
		{"long fullnameOverride", "rel", []string{"--set", "fullnameOverride=" + long}, long, strings.Repeat("a", 45) + "-server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, tc.rel, "default", tc.args...)
			sts := m.StatefulSets[tc.sts]
			if sts == nil {
				t.Fatalf("StatefulSets %v, want %q", slices.Collect(maps.Keys(m.StatefulSets)), tc.sts)
			}
			// The controller-revision-hash label is the name plus 11
			// characters, and a label value has at most 63.
			if len(sts.Name) > 52 {
				t.Errorf("StatefulSet name %q has %d characters, want at most 52", sts.Name, len(sts.Name))
			}
			if m.Services[tc.api] == nil || m.Services[tc.sts] == nil || m.ConfigMaps[tc.sts] == nil {
				t.Errorf("Services %v ConfigMaps %v, want API Service %q and %q for the rest", slices.Collect(maps.Keys(m.Services)), slices.Collect(maps.Keys(m.ConfigMaps)), tc.api, tc.sts)
			}
			if sts.Spec.ServiceName != tc.sts {
				t.Errorf("serviceName = %q, want %q", sts.Spec.ServiceName, tc.sts)
			}
		})
	}
}

func TestTemplateRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in helm's error
	}{
		{"no servers", []string{"--set", "server.replicas=0"}, "at '/server/replicas': minimum: got 0, want 1"},
		{"even servers", []string{"--set", "server.replicas=4"},
			"conclave: server.replicas is 4; it must be odd (1, 3, 5, ...): 4 servers need a quorum of 3 and tolerate 1 failure(s), as 3 do; use 3 or 5"},
		{"replicas not a number", []string{"--set", "server.replicas=three"}, "at '/server/replicas': got string, want integer"},
		{"unknown key", []string{"--set", "server.replica=3"}, "at '/server': additional properties 'replica' not allowed"},
		{"unknown readiness", []string{"--set", "server.readiness=ready"}, "at '/server/readiness': value must be one of 'voter', 'started'"},
		{"unknown anti-affinity", []string{"--set", "server.antiAffinity=hard"}, "at '/server/antiAffinity': value must be one of 'preferred', 'required'"},
		{"voter gate without headless discovery", []string{"--set", "server.join.headlessService=false", "--set", "server.join.k8sProvider=true"},
			"conclave: server.readiness=voter needs server.join.headlessService=true"},
		{"no way to join", []string{"--set", "server.join.headlessService=false", "--set", "server.readiness=started"},
			"conclave: server.replicas is 3 but retry_join is empty"},
		{"port collision", []string{"--set", "server.ports.http=8301"},
			"conclave: server.ports must be three different ports; got http=8301 serfLan=8301 server=8300"},
		{"budget above failure tolerance", []string{"--set", "server.disruptionBudget.maxUnavailable=2"},
			"conclave: server.disruptionBudget.maxUnavailable is 2, but 3 servers tolerate only 1 down at once"},
		{"root user", []string{"--set", "server.securityContext.runAsUser=0"}, "at '/server/securityContext/runAsUser': minimum: got 0, want 1"},
		{"bad storage size", []string{"--set", "server.storage.size=lots"}, "at '/server/storage/size': 'lots' does not match pattern"},
		{"retry interval without unit", []string{"--set-string", "server.retryInterval=5"}, "at '/server/retryInterval': '5' does not match pattern"},
		{"short grace period", []string{"--set", "server.terminationGracePeriodSeconds=5"}, "at '/server/terminationGracePeriodSeconds': minimum: got 5, want 20"},
		{"port out of range", []string{"--set", "server.ports.server=70000"}, "at '/server/ports/server': maximum: got 70,000, want 65,535"},
		{"bad log level", []string{"--set", "server.logLevel=verbose"}, "at '/server/logLevel': value must be one of"},
		{"bad datacenter", []string{"--set", "server.datacenter=dc 1"}, "at '/server/datacenter': 'dc 1' does not match pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, "rel", "default", tc.args...)
			if err == nil {
				t.Fatalf("helm template %q succeeded, want an error containing %q", tc.args, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template %q error:\n%v\nwant it to contain %q", tc.args, err, tc.want)
			}
			// helm lint --strict refuses what the schema refuses. It renders
			// in lint mode, where the template function fail only logs.
			if strings.HasPrefix(tc.want, "conclave: ") {
				return
			}
			if out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, tc.args...)...); err == nil {
				t.Errorf("helm lint --strict %q succeeded:\n%s", tc.args, out)
			}
		})
	}
}

func TestNotes(t *testing.T) {
	voter := renderNotes(t, "rel", "conclave-system")
	for _, s := range []string{
		"3 server(s) in StatefulSet rel-conclave-server, namespace conclave-system",
		"through rel-conclave-server.conclave-system.svc.cluster.local\n",
		"kubectl -n conclave-system exec rel-conclave-server-0 -- conclave operator raft list-peers",
		"kubectl -n conclave-system port-forward svc/rel-conclave 8500:8500",
		"Readiness is the rollout gate (/v1/status/ready?voter)",
		"conclave force-leave <pod>",
	} {
		if !strings.Contains(voter, s) {
			t.Errorf("NOTES.txt with default values:\n%s\nwant it to contain %q", voter, s)
		}
	}
	if strings.Contains(voter, "WARNING") {
		t.Errorf("NOTES.txt with default values warns:\n%s", voter)
	}

	started := renderNotes(t, "rel", "default", "-f", "testdata/k8s-only-values.yaml")
	for _, s := range []string{
		"WARNING: server.readiness=started",
		"The k8s provider (ServiceAccount rel-conclave-server) lists only Running and Ready pods.",
	} {
		if !strings.Contains(started, s) {
			t.Errorf("NOTES.txt with the k8s provider only:\n%s\nwant it to contain %q", started, s)
		}
	}
}

// TestValuesDocumented: every key of values.yaml has a comment right above
// it (keys inside Kubernetes' own structures, such as resources, are
// documented by Kubernetes), and every value the schema knows has a default
// in values.yaml. The schema's additionalProperties: false, checked by helm
// lint, covers the other direction.
func TestValuesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		stack []string // the key path, by indentation
		prev  string
	)
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "- ") {
			if trimmed != "" {
				prev = trimmed
			}
			continue
		}
		key, _, ok := strings.Cut(trimmed, ":")
		if !ok {
			t.Fatalf("values.yaml:%d: cannot read %q", i+1, line)
		}
		depth := (len(line) - len(strings.TrimLeft(line, " "))) / 2
		stack = append(stack[:min(depth, len(stack))], key)
		path := strings.Join(stack, ".")
		if !strings.HasPrefix(path, "server.resources.") && !strings.HasPrefix(prev, "#") {
			t.Errorf("values.yaml:%d: %s has no comment above it", i+1, path)
		}
		prev = trimmed
	}

	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	sb, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := yaml.Unmarshal(sb, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	var walk func(prefix string, s, v map[string]any)
	walk = func(prefix string, s, v map[string]any) {
		props, _ := s["properties"].(map[string]any)
		for k, ps := range props {
			if prefix == "" && k == "global" {
				continue // helm's own, for subcharts
			}
			val, ok := v[k]
			if !ok {
				t.Errorf("values.schema.json has %s%s, values.yaml has no default for it", prefix, k)
				continue
			}
			if sub, ok := ps.(map[string]any); ok {
				if vm, ok := val.(map[string]any); ok && sub["properties"] != nil {
					walk(prefix+k+".", sub, vm)
				}
			}
		}
	}
	walk("", schema, values)
}

// TestCustomValuesAreStrict: the non-default values file sets every value
// the chart has, to something other than its default, so that the other
// tests exercise each one.
func TestCustomValuesAreStrict(t *testing.T) {
	// Booleans kept at their default, because another test covers the
	// other side.
	covered := map[string]string{
		"server.join.headlessService":     "TestTemplateK8sProviderOnly",
		"server.disruptionBudget.enabled": "TestTemplateWithoutDisruptionBudget",
	}
	defaults := loadYAMLMap(t, filepath.Join(chartDir, "values.yaml"))
	custom := loadYAMLMap(t, "testdata/custom-values.yaml")
	var walk func(prefix string, d, c map[string]any)
	walk = func(prefix string, d, c map[string]any) {
		for k, dv := range d {
			if prefix == "" && (k == "nameOverride" || k == "fullnameOverride") {
				continue // TestTemplateNames
			}
			cv, ok := c[k]
			if !ok {
				t.Errorf("testdata/custom-values.yaml does not set %s%s", prefix, k)
				continue
			}
			dm, dIsMap := dv.(map[string]any)
			cm, cIsMap := cv.(map[string]any)
			if dIsMap && cIsMap && prefix+k != "server.resources" {
				walk(prefix+k+".", dm, cm)
				continue
			}
			if _, ok := covered[prefix+k]; !ok && cmp.Equal(dv, cv) {
				t.Errorf("testdata/custom-values.yaml sets %s%s to its default %v", prefix, k, dv)
			}
		}
	}
	walk("", defaults, custom)
}

func loadYAMLMap(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}
