package nomadjob

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"
	"github.com/hashicorp/nomad/jobspec2"
)

const (
	// jobPath is the job file, relative to this directory.
	jobPath = "../../deploy/nomad/conclave.nomad.hcl"
	// jobName is the path Nomad's messages show: the one `nomad job run`
	// gets when it runs at the root of the repository.
	jobName = "deploy/nomad/conclave.nomad.hcl"
)

// Names the job and the tests agree on.
const (
	groupName      = "server"
	taskName       = "conclave"
	discoveryName  = "conclave-serf"
	healthName     = "conclave"
	retryJoinDest  = "local/conclave.d/retry-join.hcl"
	dataDirInImage = "/conclave/data"
)

func readJob(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(jobPath)
	if err != nil {
		t.Fatalf("read job: %v", err)
	}
	return b
}

// parseJob parses body as `nomad job run -var k=v ...` does: jobspec2 in
// strict mode, with vars as the -var arguments. The environment is left
// out, so that no NOMAD_VAR_ variable of the machine changes the result.
func parseJob(body []byte, vars ...string) (*api.Job, error) {
	return jobspec2.ParseWithConfig(&jobspec2.ParseConfig{
		Path:    jobName,
		Body:    body,
		ArgVars: vars,
		AllowFS: true,
		Strict:  true,
	})
}

// mustParseJob parses the job file with vars and returns the job, its
// server group and the group's task.
func mustParseJob(t *testing.T, vars ...string) (*api.Job, *api.TaskGroup, *api.Task) {
	t.Helper()
	job, err := parseJob(readJob(t), vars...)
	if err != nil {
		t.Fatalf("parse %s: %v", jobName, err)
	}
	if len(job.TaskGroups) != 1 || deref(job.TaskGroups[0].Name) != groupName {
		t.Fatalf("task groups = %v, want one named %q", groupNames(job), groupName)
	}
	tg := job.TaskGroups[0]
	if len(tg.Tasks) != 1 || tg.Tasks[0].Name != taskName {
		t.Fatalf("tasks of group %q: %d, want one named %q", groupName, len(tg.Tasks), taskName)
	}
	return job, tg, tg.Tasks[0]
}

func TestJobSpec(t *testing.T) {
	job, tg, task := mustParseJob(t)

	t.Run("service job with three servers on distinct hosts", func(t *testing.T) {
		if got := deref(job.Type); got != "service" {
			t.Errorf("job type = %q, want service", got)
		}
		if got := deref(tg.Count); got != 3 {
			t.Errorf("count = %d, want 3", got)
		}
		if !slices.ContainsFunc(tg.Constraints, func(c *api.Constraint) bool {
			return c.Operand == "distinct_hosts" && c.RTarget == "true"
		}) {
			t.Errorf("group constraints %s have no distinct_hosts = true", constraints(tg.Constraints))
		}
	})

	t.Run("docker driver on the host network", func(t *testing.T) {
		if task.Driver != "docker" {
			t.Errorf("driver = %q, want docker", task.Driver)
		}
		want := map[string]any{"image": "conclave:local", "network_mode": "host"}
		for k, v := range want {
			if task.Config[k] != v {
				t.Errorf("config.%s = %v, want %v", k, task.Config[k], v)
			}
		}
		if len(tg.Networks) != 1 || tg.Networks[0].Mode != "host" {
			t.Fatalf("group networks = %d, want one in host mode", len(tg.Networks))
		}
		ports := map[string]int{}
		for _, p := range tg.Networks[0].ReservedPorts {
			ports[p.Label] = p.Value
		}
		if d := cmp.Diff(map[string]int{"server": 8300, "serf": 8301, "http": 8500}, ports); d != "" {
			t.Errorf("static ports (-want +got):\n%s", d)
		}
	})

	args := taskArgs(t, task)

	t.Run("server flags", func(t *testing.T) {
		for _, want := range []string{
			"agent",
			"-server",
			"-bootstrap-expect=3",
			"-node=${node.unique.name}",
			"-data-dir=" + dataDirInImage,
			"-bind=${NOMAD_IP_serf}",
			"-client=${NOMAD_IP_http}",
			"-server-port=${NOMAD_PORT_server}",
			"-serf-lan-port=${NOMAD_PORT_serf}",
			"-http-port=${NOMAD_PORT_http}",
			"-config-dir=${NOMAD_TASK_DIR}/conclave.d",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("args %q lack %q", args, want)
			}
		}
		if args[0] != "agent" {
			t.Errorf("args[0] = %q, want agent", args[0])
		}
		// retry_join must come only from the rendered file: a -retry-join
		// flag would replace the file's list.
		for _, a := range args {
			if strings.HasPrefix(a, "-retry-join") {
				t.Errorf("args have %q; retry_join must come from the template", a)
			}
		}
	})

	t.Run("host volume mounted at data_dir", func(t *testing.T) {
		vol, ok := tg.Volumes["data"]
		if !ok {
			t.Fatalf("group volumes %v have no \"data\"", keys(tg.Volumes))
		}
		if vol.Type != "host" || vol.Source != "conclave-data" || vol.ReadOnly {
			t.Errorf("volume data = type %q source %q read_only %t, want host, conclave-data, false",
				vol.Type, vol.Source, vol.ReadOnly)
		}
		if len(task.VolumeMounts) != 1 {
			t.Fatalf("volume mounts = %d, want 1", len(task.VolumeMounts))
		}
		m := task.VolumeMounts[0]
		if deref(m.Volume) != "data" || deref(m.Destination) != dataDirInImage || deref(m.ReadOnly) {
			t.Errorf("volume mount = %q at %q (read_only %t), want data at %s, writable",
				deref(m.Volume), deref(m.Destination), deref(m.ReadOnly), dataDirInImage)
		}
		if tg.EphemeralDisk == nil || !deref(tg.EphemeralDisk.Sticky) {
			t.Error("ephemeral_disk.sticky is not true: updates may move a server off its volume's host")
		}
	})

	t.Run("retry_join from the Nomad service catalog", func(t *testing.T) {
		disc := service(t, tg, discoveryName)
		if disc.Provider != "nomad" || disc.PortLabel != "serf" {
			t.Errorf("service %s = provider %q port %q, want nomad, serf", discoveryName, disc.Provider, disc.PortLabel)
		}
		// Discovery must not wait for any check: the gate cannot pass
		// before the cluster has bootstrapped.
		if len(disc.Checks) != 0 {
			t.Errorf("service %s has %d checks, want none", discoveryName, len(disc.Checks))
		}
		tmpl := retryJoinTemplate(t, task)
		body := deref(tmpl.EmbeddedTmpl)
		for _, want := range []string{
			fmt.Sprintf("nomadService %q", discoveryName),
			`ne .AllocID (env "NOMAD_ALLOC_ID")`,
			"retry_join = [",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("template data lacks %q:\n%s", want, body)
			}
		}
		if got := deref(tmpl.ChangeMode); got != "noop" {
			t.Errorf("template change_mode = %q, want noop", got)
		}
		if deref(tmpl.Envvars) {
			t.Error("template env = true, want a file in -config-dir")
		}
	})

	t.Run("health checks", func(t *testing.T) {
		svc := service(t, tg, healthName)
		if svc.Provider != "nomad" || svc.PortLabel != "http" {
			t.Errorf("service %s = provider %q port %q, want nomad, http", healthName, svc.Provider, svc.PortLabel)
		}
		type check struct {
			Type, Path, OnUpdate string
			Restarts             int
		}
		got := map[string]check{}
		for _, c := range svc.Checks {
			ch := check{Type: c.Type, Path: c.Path, OnUpdate: c.OnUpdate}
			if c.CheckRestart != nil {
				ch.Restarts = c.CheckRestart.Limit
			}
			got[c.Name] = ch
		}
		want := map[string]check{
			"alive": {Type: "http", Path: "/v1/agent/health", Restarts: 3},
			"ready": {Type: "http", Path: "/v1/status/ready", OnUpdate: "ignore"},
			"voter": {Type: "http", Path: "/v1/status/ready?voter"},
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("checks of service %s (-want +got):\n%s", healthName, d)
		}
	})

	t.Run("rolling update gated by the checks", func(t *testing.T) {
		u := tg.Update
		if u == nil {
			t.Fatal("group has no update block")
		}
		if got := deref(u.MaxParallel); got != 1 {
			t.Errorf("update.max_parallel = %d, want 1", got)
		}
		if got := deref(u.HealthCheck); got != "checks" {
			t.Errorf("update.health_check = %q, want checks", got)
		}
		if deref(u.AutoRevert) {
			t.Error("update.auto_revert = true, want false")
		}
		if deref(u.ProgressDeadline) <= deref(u.HealthyDeadline) {
			t.Errorf("update.progress_deadline %s is not above healthy_deadline %s",
				deref(u.ProgressDeadline), deref(u.HealthyDeadline))
		}
		m := tg.Migrate
		if m == nil || deref(m.MaxParallel) != 1 || deref(m.HealthCheck) != "checks" {
			t.Errorf("migrate = %+v, want max_parallel 1 and health_check checks", m)
		}
	})

	t.Run("restart, reschedule and disconnect", func(t *testing.T) {
		r := tg.RestartPolicy
		if r == nil {
			t.Fatal("group has no restart block")
		}
		if deref(r.Attempts) != 3 || deref(r.Interval) != 10*time.Minute || deref(r.Mode) != "fail" {
			t.Errorf("restart = %d attempts in %s, mode %q; want 3 in 10m0s, fail",
				deref(r.Attempts), deref(r.Interval), deref(r.Mode))
		}
		if !deref(r.RenderTemplates) {
			t.Error("restart.render_templates is not true: a restarted server would join the catalog of its first start")
		}
		rs := tg.ReschedulePolicy
		if rs == nil {
			t.Fatal("group has no reschedule block")
		}
		if !deref(rs.Unlimited) || deref(rs.DelayFunction) != "exponential" || deref(rs.MaxDelay) != 10*time.Minute {
			t.Errorf("reschedule = unlimited %t, %q, max_delay %s; want true, exponential, 10m0s",
				deref(rs.Unlimited), deref(rs.DelayFunction), deref(rs.MaxDelay))
		}
		d := tg.Disconnect
		if d == nil || deref(d.Replace) || deref(d.Reconcile) != "keep_original" {
			t.Errorf("disconnect = %+v, want replace false, reconcile keep_original", d)
		}
	})

	t.Run("graceful stop", func(t *testing.T) {
		if task.KillSignal != "SIGTERM" {
			t.Errorf("kill_signal = %q, want SIGTERM", task.KillSignal)
		}
		// The agent's graceful shutdown takes up to 15s.
		if got := deref(task.KillTimeout); got < 16*time.Second || got > 30*time.Second {
			t.Errorf("kill_timeout = %s, want above the agent's 15s and within Nomad's default max_kill_timeout (30s)", got)
		}
		if got := task.Env["CONCLAVE_HTTP_ADDR"]; got != "${NOMAD_ADDR_http}" {
			t.Errorf("env CONCLAVE_HTTP_ADDR = %q, want ${NOMAD_ADDR_http}", got)
		}
	})
}

// TestJobServersVariable checks that the servers variable sets the count
// and bootstrap_expect together, and that Nomad refuses counts that make no
// sense for a Raft cluster.
func TestJobServersVariable(t *testing.T) {
	_, tg, task := mustParseJob(t, "servers=5")
	if got := deref(tg.Count); got != 5 {
		t.Errorf("count with servers=5 = %d, want 5", got)
	}
	if args := taskArgs(t, task); !slices.Contains(args, "-bootstrap-expect=5") {
		t.Errorf("args with servers=5 = %q, want -bootstrap-expect=5", args)
	}

	body := readJob(t)
	rule := fmt.Sprintf("This was checked by the validation rule at %s:%d,", jobName, lineOf(t, string(body), "  validation {"))
	for _, n := range []string{"1", "4"} {
		t.Run("servers="+n, func(t *testing.T) {
			_, err := parseJob(body, "servers="+n)
			if err == nil {
				t.Fatalf("parse with servers=%s: no error", n)
			}
			for _, want := range []string{
				"Invalid value for cmd variable",
				"The servers value must be an odd number of at least 3",
				rule,
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("parse with servers=%s: error %q lacks %q", n, err, want)
				}
			}
		})
	}
}

// TestBrokenJobFails parses broken copies of the job and checks that Nomad
// rejects each with its own message, at the right place.
func TestBrokenJobFails(t *testing.T) {
	good := string(readJob(t))
	lastBrace := strings.LastIndex(good, "}")

	// Each case replaces old with new in the job, or, when old is empty,
	// cuts the job before its last closing brace. Nomad's error must name
	// the line of old (of the job block for a cut job) and contain want.
	cases := []struct {
		name     string
		old, new string
		want     []string
	}{
		{
			name: "unclosed block",
			want: []string{"Unclosed configuration block", "There is no closing brace for this block before the end of the file."},
		},
		{
			name: "misspelled update argument",
			old:  "max_parallel      = 1",
			new:  "max_paralel       = 1",
			want: []string{"Unsupported argument", `An argument named "max_paralel" is not expected here. Did you mean "max_parallel"?`},
		},
		{
			name: "string where a number belongs",
			old:  "count = var.servers",
			new:  `count = "three"`,
			want: []string{"Unsuitable value type", "a number is required"},
		},
		{
			name: "bad duration",
			old:  `healthy_deadline  = "5m"`,
			new:  `healthy_deadline  = "5 minutes"`,
			want: []string{"Unsuitable duration value", `time: unknown unit " minutes" in duration "5 minutes"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body string
			var line int
			if tc.old == "" {
				body = good[:lastBrace]
				line = lineOf(t, good, `job "conclave" {`)
			} else {
				line = lineOf(t, good, tc.old)
				body = strings.Replace(good, tc.old, tc.new, 1)
			}
			_, err := parseJob([]byte(body))
			if err == nil {
				t.Fatal("parse: no error")
			}
			t.Logf("Nomad: %v", err)
			at := fmt.Sprintf("%s:%d,", jobName, line)
			for _, want := range append([]string{at}, tc.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("parse error %q lacks %q", err, want)
				}
			}
		})
	}
}

// lineOf returns the line number of the only occurrence of s in body.
func lineOf(t *testing.T, body, s string) int {
	t.Helper()
	if n := strings.Count(body, s); n != 1 {
		t.Fatalf("the job has %d copies of %q, want 1: update this test", n, s)
	}
	return 1 + strings.Count(body[:strings.Index(body, s)], "\n")
}

// taskArgs returns the task's config.args as strings.
func taskArgs(t *testing.T, task *api.Task) []string {
	t.Helper()
	raw, ok := task.Config["args"].([]any)
	if !ok || len(raw) == 0 {
		t.Fatalf("config.args = %#v, want a list of strings", task.Config["args"])
	}
	args := make([]string, len(raw))
	for i, a := range raw {
		s, ok := a.(string)
		if !ok {
			t.Fatalf("config.args[%d] = %#v, want a string", i, a)
		}
		args[i] = s
	}
	return args
}

// service returns the group service named name.
func service(t *testing.T, tg *api.TaskGroup, name string) *api.Service {
	t.Helper()
	for _, s := range tg.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("group %q has no service %q", deref(tg.Name), name)
	return nil
}

// retryJoinTemplate returns the template that renders retry_join.
func retryJoinTemplate(t *testing.T, task *api.Task) *api.Template {
	t.Helper()
	for _, tmpl := range task.Templates {
		if deref(tmpl.DestPath) == retryJoinDest {
			return tmpl
		}
	}
	t.Fatalf("task %q has no template with destination %q", task.Name, retryJoinDest)
	return nil
}

func constraints(cs []*api.Constraint) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%q %s %q", c.LTarget, c.Operand, c.RTarget))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func groupNames(job *api.Job) []string {
	var names []string
	for _, tg := range job.TaskGroups {
		names = append(names, deref(tg.Name))
	}
	return names
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// deref returns *p, or the zero value for a nil p: the api package leaves
// what the job does not set as nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// TestDocumentedTasks parses the job with each task block that
// website/deployment-nomad.md documents (the exec and raw_exec
// alternatives) in place of the job's own task, and checks that they run
// the agent as the job does: the same args apart from -data-dir, the same
// env, stop settings and rendered retry_join.
func TestDocumentedTasks(t *testing.T) {
	doc, err := os.ReadFile("../../website/deployment-nomad.md")
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	var blocks []string
	for _, part := range strings.Split(string(doc), "```hcl\n")[1:] {
		block, _, ok := strings.Cut(part, "\n```")
		if ok && strings.HasPrefix(block, `task "conclave" {`) {
			blocks = append(blocks, block+"\n")
		}
	}
	if len(blocks) != 2 {
		t.Fatalf("the page has %d task blocks, want 2 (exec and raw_exec)", len(blocks))
	}

	job := string(readJob(t))
	const open, closing = "    task \"conclave\" {\n", "\n    }\n"
	start := strings.Index(job, open)
	n := strings.Index(job[start:], closing)
	if start < 0 || n < 0 {
		t.Fatalf("cannot find the job's task block (%q to %q): update this test", open, closing)
	}
	end := start + n + len(closing)
	_, _, dockerTask := mustParseJob(t)
	dockerArgs := taskArgs(t, dockerTask)
	cat := catalog{}
	cat.register(discoveryName, "self", "10.0.0.1", 8301)
	cat.register(discoveryName, "other", "10.0.0.2", 8301)
	env := map[string]string{"NOMAD_ALLOC_ID": "self"}
	wantJoin := retryJoinOf(t, renderTemplate(t, retryJoinTemplate(t, dockerTask), env, cat))

	for _, block := range blocks {
		var indented strings.Builder
		for _, line := range strings.SplitAfter(block, "\n") {
			if strings.TrimSpace(line) != "" {
				indented.WriteString("    ")
			}
			indented.WriteString(line)
		}
		parsed, err := parseJob([]byte(job[:start] + indented.String() + job[end:]))
		if err != nil {
			t.Errorf("parse the job with the page's task block:\n%s\nerror: %v", block, err)
			continue
		}
		task := parsed.TaskGroups[0].Tasks[0]
		t.Run(task.Driver, func(t *testing.T) {
			args := taskArgs(t, task)
			if len(args) != len(dockerArgs) {
				t.Fatalf("args = %q, want the job's %q apart from -data-dir", args, dockerArgs)
			}
			for i := range args {
				if args[i] != dockerArgs[i] && !strings.HasPrefix(args[i], "-data-dir=") {
					t.Errorf("args[%d] = %q, want the job's %q", i, args[i], dockerArgs[i])
				}
			}
			if d := cmp.Diff(dockerTask.Env, task.Env); d != "" {
				t.Errorf("env (-job +page):\n%s", d)
			}
			if task.KillSignal != dockerTask.KillSignal || deref(task.KillTimeout) != deref(dockerTask.KillTimeout) {
				t.Errorf("kill_signal %q, kill_timeout %s; want the job's %q, %s",
					task.KillSignal, deref(task.KillTimeout), dockerTask.KillSignal, deref(dockerTask.KillTimeout))
			}
			tmpl := retryJoinTemplate(t, task)
			if got := deref(tmpl.ChangeMode); got != "noop" {
				t.Errorf("template change_mode = %q, want noop", got)
			}
			if d := cmp.Diff(wantJoin, retryJoinOf(t, renderTemplate(t, tmpl, env, cat))); d != "" {
				t.Errorf("rendered retry_join (-job +page):\n%s", d)
			}
			dataDir := ""
			for _, a := range args {
				if v, ok := strings.CutPrefix(a, "-data-dir="); ok {
					dataDir = v
				}
			}
			switch task.Driver {
			case "exec":
				if len(task.VolumeMounts) != 1 || deref(task.VolumeMounts[0].Destination) != dataDir {
					t.Errorf("exec task: volume mounted at %v, want one mount at -data-dir %q", task.VolumeMounts, dataDir)
				}
			case "raw_exec":
				if len(task.VolumeMounts) != 0 || !strings.HasPrefix(dataDir, "/opt/conclave/data") {
					t.Errorf("raw_exec task: %d volume mounts and -data-dir %q, want no mount and the host path /opt/conclave/data", len(task.VolumeMounts), dataDir)
				}
			default:
				t.Errorf("driver %q, want exec or raw_exec", task.Driver)
			}
		})
	}
}
