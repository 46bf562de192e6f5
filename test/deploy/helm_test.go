package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const (
	// chartDir is the chart under test, relative to this package.
	chartDir = "../../deploy/helm/conclave"

	// helmInstall is the command that installs the helm the tests expect.
	helmInstall = "go install helm.sh/helm/v3/cmd/helm@v3.22.0"

	// helmTimeout bounds one helm command. Rendering takes well under a
	// second; the slack is for a loaded machine.
	helmTimeout = 2 * time.Minute
)

var (
	helmOnce sync.Once
	helmBin  string
)

// helm returns the path of the helm binary: from PATH, else from
// $(go env GOBIN) or $(go env GOPATH)/bin, where `go install` puts it. It
// fails the test with the install command when there is none.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		if p, err := exec.LookPath("helm"); err == nil {
			helmBin = p
			return
		}
		out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
		if err != nil {
			return
		}
		// One line each, GOBIN first; GOBIN is usually empty.
		gobin, gopath, _ := strings.Cut(string(out), "\n")
		var dirs []string
		if gobin = strings.TrimSpace(gobin); gobin != "" {
			dirs = append(dirs, gobin)
		}
		for _, p := range filepath.SplitList(strings.TrimSpace(gopath)) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
		for _, d := range dirs {
			p := filepath.Join(d, "helm")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				helmBin = p
				return
			}
		}
	})
	if helmBin == "" {
		t.Fatalf("helm not found in PATH, $(go env GOBIN) or $(go env GOPATH)/bin; install it with:\n\t%s", helmInstall)
	}
	return helmBin
}

// runHelm runs helm with args and returns its stdout. The error carries
// stderr, where helm writes its error messages. helm's cache, config and
// data directories are temporary, so the tests read and write nothing of
// the user's.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := helm(t)
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// manifests are the objects of one helm template run, decoded strictly.
type manifests struct {
	StatefulSets    map[string]*appsv1.StatefulSet
	Services        map[string]*corev1.Service
	ConfigMaps      map[string]*corev1.ConfigMap
	PDBs            map[string]*policyv1.PodDisruptionBudget
	ServiceAccounts map[string]*corev1.ServiceAccount
	Roles           map[string]*rbacv1.Role
	RoleBindings    map[string]*rbacv1.RoleBinding
	Pods            map[string]*corev1.Pod

	// Kinds counts the objects of each kind.
	Kinds map[string]int
}

// docSep separates the documents of helm template's output.
var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// render runs helm template on the chart as release rel in namespace ns,
// with extra helm arguments (-f, --set), and decodes the result.
func render(t *testing.T, rel, ns string, args ...string) (*manifests, error) {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", rel, chartDir, "--namespace", ns}, args...)...)
	if err != nil {
		return nil, err
	}
	return decode(out)
}

// mustRender is render for values that must render.
func mustRender(t *testing.T, rel, ns string, args ...string) *manifests {
	t.Helper()
	m, err := render(t, rel, ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// decode splits helm template's output into documents and decodes each
// into its k8s.io/api type with sigs.k8s.io/yaml's UnmarshalStrict: a
// duplicate key, an unknown field or a value of the wrong type is an error.
func decode(out string) (*manifests, error) {
	m := &manifests{
		StatefulSets:    map[string]*appsv1.StatefulSet{},
		Services:        map[string]*corev1.Service{},
		ConfigMaps:      map[string]*corev1.ConfigMap{},
		PDBs:            map[string]*policyv1.PodDisruptionBudget{},
		ServiceAccounts: map[string]*corev1.ServiceAccount{},
		Roles:           map[string]*rbacv1.Role{},
		RoleBindings:    map[string]*rbacv1.RoleBinding{},
		Pods:            map[string]*corev1.Pod{},
		Kinds:           map[string]int{},
	}
	for _, doc := range docSep.Split(out, -1) {
		if isEmptyDoc(doc) {
			continue
		}
		source := "unknown template"
		if i := strings.Index(doc, "# Source: "); i >= 0 {
			source = strings.SplitN(doc[i+len("# Source: "):], "\n", 2)[0]
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s: %v", source, err)
		}
		var (
			obj  any
			name func() string
		)
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			obj, name = o, func() string { m.StatefulSets[o.Name] = o; return o.Name }
		case "v1 Service":
			o := &corev1.Service{}
			obj, name = o, func() string { m.Services[o.Name] = o; return o.Name }
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			obj, name = o, func() string { m.ConfigMaps[o.Name] = o; return o.Name }
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			obj, name = o, func() string { m.PDBs[o.Name] = o; return o.Name }
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			obj, name = o, func() string { m.ServiceAccounts[o.Name] = o; return o.Name }
		case "rbac.authorization.k8s.io/v1 Role":
			o := &rbacv1.Role{}
			obj, name = o, func() string { m.Roles[o.Name] = o; return o.Name }
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			o := &rbacv1.RoleBinding{}
			obj, name = o, func() string { m.RoleBindings[o.Name] = o; return o.Name }
		case "v1 Pod":
			o := &corev1.Pod{}
			obj, name = o, func() string { m.Pods[o.Name] = o; return o.Name }
		default:
			return nil, fmt.Errorf("%s: unexpected object %s %s", source, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s: strict decode of %s: %v", source, tm.Kind, err)
		}
		if name() == "" {
			return nil, fmt.Errorf("%s: %s without a name", source, tm.Kind)
		}
		m.Kinds[tm.Kind]++
	}
	return m, nil
}

// isEmptyDoc reports whether a document holds only comments and blanks.
func isEmptyDoc(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// renderNotes renders the chart's NOTES.txt, which helm template leaves
// out. It copies the chart and adds a template that embeds the rendered
// notes in a ConfigMap; helm names every template by its path, so the
// notes can be included like any other.
func renderNotes(t *testing.T, rel, ns string, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "conclave")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatalf("copy chart: %v", err)
	}
	const probe = `apiVersion: v1
kind: ConfigMap
metadata:
  name: rendered-notes
data:
  NOTES.txt: {{ include "conclave/templates/NOTES.txt" . | toJson }}
`
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-rendered-notes.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runHelm(t, append([]string{"template", rel, dir, "--namespace", ns,
		"--show-only", "templates/zz-rendered-notes.yaml"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(out), &cm); err != nil {
		t.Fatalf("decode rendered notes: %v", err)
	}
	return cm.Data["NOTES.txt"]
}
