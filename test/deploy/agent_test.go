package deploy

import (
	"context"
	"flag"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-discover/provider/k8s"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/conclavehq/conclave/config"
	"github.com/conclavehq/conclave/discover"
)

// testPod is one server pod as the kubelet would start it.
type testPod struct {
	Name string // metadata.name
	IP   string // status.podIP
}

// serverPods returns the pods of a StatefulSet with n replicas, with IPs
// 10.1.0.1, 10.1.0.2 and so on.
func serverPods(sts *appsv1.StatefulSet, n int) []testPod {
	pods := make([]testPod, n)
	for i := range pods {
		pods[i] = testPod{Name: sts.Name + "-" + strconv.Itoa(i), IP: "10.1.0." + strconv.Itoa(i+1)}
	}
	return pods
}

// expand replaces $(NAME) in s with env[NAME] and $$ with $, as the
// kubelet does with a container's command, args and env values. It returns
// the names referenced but not defined, which the kubelet would leave in
// the string as they are.
func expand(s string, env map[string]string) (string, []string) {
	var (
		b       strings.Builder
		missing []string
	)
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String(), missing
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
				missing = append(missing, name)
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), missing
}

// podEnv resolves the environment of container c in pod p, as the kubelet
// would: literal values (expanded), the downward API fields the chart uses,
// and keys of the rendered ConfigMaps.
func podEnv(t *testing.T, m *manifests, c *corev1.Container, p testPod) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for _, ev := range c.Env {
		switch {
		case ev.ValueFrom == nil:
			v, missing := expand(ev.Value, env)
			if len(missing) > 0 {
				t.Errorf("env %s = %q refers to undefined variables %v", ev.Name, ev.Value, missing)
			}
			env[ev.Name] = v
		case ev.ValueFrom.FieldRef != nil:
			switch ev.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				env[ev.Name] = p.Name
			case "status.podIP":
				env[ev.Name] = p.IP
			default:
				t.Fatalf("env %s: unexpected fieldRef %q", ev.Name, ev.ValueFrom.FieldRef.FieldPath)
			}
		case ev.ValueFrom.ConfigMapKeyRef != nil:
			ref := ev.ValueFrom.ConfigMapKeyRef
			cm, ok := m.ConfigMaps[ref.Name]
			if !ok {
				t.Fatalf("env %s: ConfigMap %q is not rendered", ev.Name, ref.Name)
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				t.Fatalf("env %s: ConfigMap %q has no key %q", ev.Name, ref.Name, ref.Key)
			}
			env[ev.Name] = v
		default:
			t.Fatalf("env %s: unexpected valueFrom %+v", ev.Name, ev.ValueFrom)
		}
	}
	return env
}

// pathList collects the values of a repeated flag.
type pathList []string

func (l *pathList) String() string     { return strings.Join(*l, ",") }
func (l *pathList) Set(v string) error { *l = append(*l, v); return nil }

// loadAgentConfig starts the agent of pod p on paper: it expands the
// container's args with the pod's environment, parses them with the agent's
// own flags, writes the mounted ConfigMap files to a temporary directory,
// and loads the configuration with config.Load, exactly as `conclave agent`
// would. data_dir is replaced by a temporary directory (config.Load creates
// it and checks that it is writable) once it is checked to be the mount
// path of the data volume.
func loadAgentConfig(t *testing.T, m *manifests, sts *appsv1.StatefulSet, p testPod) *config.LoadResult {
	t.Helper()
	c := serverContainer(t, sts)
	if want := []string{"/bin/conclave"}; !slices.Equal(c.Command, want) {
		t.Fatalf("command = %q, want %q", c.Command, want)
	}
	env := podEnv(t, m, c, p)
	var args []string
	for _, a := range c.Args {
		v, missing := expand(a, env)
		if len(missing) > 0 {
			t.Errorf("arg %q refers to undefined variables %v", a, missing)
		}
		args = append(args, v)
	}
	if len(args) == 0 || args[0] != "agent" {
		t.Fatalf("args = %q, want the agent command first", args)
	}

	var (
		flags config.Flags
		dirs  pathList
		files pathList
	)
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags.AddTo(fs)
	fs.Var(&dirs, "config-dir", "")
	fs.Var(&files, "config-file", "")
	if err := fs.Parse(args[1:]); err != nil {
		t.Fatalf("agent flags %q: %v", args[1:], err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("agent flags: unexpected arguments %q", fs.Args())
	}
	if len(files) > 0 {
		t.Fatalf("agent flags: unexpected -config-file %q", files)
	}

	mounts := make(map[string]corev1.VolumeMount)
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	if flags.DataDir == nil {
		t.Fatal("no -data-dir")
	}
	if vm, ok := mounts[*flags.DataDir]; !ok || vm.Name != "data" {
		t.Errorf("-data-dir=%s is not where the data volume is mounted (mounts %+v)", *flags.DataDir, c.VolumeMounts)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	flags.DataDir = &dataDir

	var paths []string
	for _, d := range dirs {
		paths = append(paths, configMapDir(t, m, sts, mounts, d))
	}

	res, err := config.Load(config.LoadOptions{Paths: paths, Flags: &flags})
	if err != nil {
		t.Fatalf("config.Load of pod %s: %v", p.Name, err)
	}
	return res
}

// configMapDir writes the files of the ConfigMap volume mounted at path to
// a temporary directory and returns it.
func configMapDir(t *testing.T, m *manifests, sts *appsv1.StatefulSet, mounts map[string]corev1.VolumeMount, path string) string {
	t.Helper()
	vm, ok := mounts[path]
	if !ok {
		t.Fatalf("-config-dir=%s is not a mount path", path)
	}
	var vol *corev1.Volume
	for i := range sts.Spec.Template.Spec.Volumes {
		if v := &sts.Spec.Template.Spec.Volumes[i]; v.Name == vm.Name {
			vol = v
		}
	}
	if vol == nil || vol.ConfigMap == nil {
		t.Fatalf("-config-dir=%s: volume %q is not a ConfigMap volume", path, vm.Name)
	}
	cm, ok := m.ConfigMaps[vol.ConfigMap.Name]
	if !ok {
		t.Fatalf("-config-dir=%s: ConfigMap %q is not rendered", path, vol.ConfigMap.Name)
	}
	dir := t.TempDir()
	if len(vol.ConfigMap.Items) == 0 {
		t.Fatalf("-config-dir=%s: the volume mounts every key of %s; the chart mounts chosen items", path, cm.Name)
	}
	for _, item := range vol.ConfigMap.Items {
		data, ok := cm.Data[item.Key]
		if !ok {
			t.Fatalf("-config-dir=%s: ConfigMap %s has no key %q", path, cm.Name, item.Key)
		}
		if err := os.WriteFile(filepath.Join(dir, item.Path), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeK8s stands in for the Kubernetes API behind go-discover's k8s
// provider: it selects pods by namespace and label selector, as the API
// server does, and passes them to the real provider's PodAddrs, which keeps
// only Running and Ready pods.
type fakeK8s struct {
	t    *testing.T
	pods []corev1.Pod
	args []map[string]string // the args of every call
}

func (f *fakeK8s) Addrs(args map[string]string, l *log.Logger) ([]string, error) {
	f.args = append(f.args, args)
	sel, err := labels.Parse(args["label_selector"])
	if err != nil {
		f.t.Errorf("k8s provider: label_selector %q: %v", args["label_selector"], err)
		return nil, err
	}
	var list corev1.PodList
	for _, p := range f.pods {
		if p.Namespace == args["namespace"] && sel.Matches(labels.Set(p.Labels)) {
			list.Items = append(list.Items, p)
		}
	}
	return k8s.PodAddrs(&list, args, l)
}

func (f *fakeK8s) Help() string { return "fake k8s" }

// staticProvider answers every call with the same addresses, and records
// the args.
type staticProvider struct {
	addrs []string
	args  []map[string]string
}

func (s *staticProvider) Addrs(args map[string]string, _ *log.Logger) ([]string, error) {
	s.args = append(s.args, args)
	return s.addrs, nil
}

func (s *staticProvider) Help() string { return "static" }

// k8sPods builds the server pods as the API server would list them: the
// pod template's labels and spec, Running, with an IP, and Ready or not.
// A pod of another release, which the label selector must skip, is added.
func k8sPods(sts *appsv1.StatefulSet, pods []testPod, ready bool) []corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	mk := func(name, ns, ip string, lbls map[string]string) corev1.Pod {
		var p corev1.Pod
		p.Name, p.Namespace, p.Labels = name, ns, lbls
		p.Spec = *sts.Spec.Template.Spec.DeepCopy()
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = ip
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		return p
	}
	var out []corev1.Pod
	for _, tp := range pods {
		out = append(out, mk(tp.Name, sts.Namespace, tp.IP, sts.Spec.Template.Labels))
	}
	other := make(map[string]string)
	for k, v := range sts.Spec.Template.Labels {
		other[k] = v
	}
	other["app.kubernetes.io/instance"] = "another-release"
	out = append(out, mk("another-release-conclave-server-0", sts.Namespace, "10.9.9.9", other))
	return out
}

// resolveJoin resolves retry_join entries with the agent's own resolver
// (discover.Resolver), with DNS and the providers faked: the headless
// Service's name resolves to every pod IP, as CoreDNS answers for a Service
// with publishNotReadyAddresses, ready or not. It returns the addresses and
// the errors of the entries that failed.
func resolveJoin(entries []string, port int, headlessDNS string, pods []testPod, providers map[string]discover.Provider) ([]string, []error) {
	r := &discover.Resolver{
		Providers: providers,
		LookupHost: func(_ context.Context, host string) ([]string, error) {
			if host != headlessDNS {
				return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			var ips []string
			for _, p := range pods {
				ips = append(ips, p.IP)
			}
			return ips, nil
		},
	}
	return r.Resolve(context.Background(), entries, port)
}
