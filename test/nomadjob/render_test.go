package nomadjob

import (
	"fmt"
	"sort"
	"testing"

	dep "github.com/hashicorp/consul-template/dependency"
	ctemplate "github.com/hashicorp/consul-template/template"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/nomad/api"
	"github.com/zclconf/go-cty/cty"

	"github.com/google/go-cmp/cmp"
)

// nomadFunctionDenylist is the Nomad client's default
// template.function_denylist (client/config.DefaultTemplateFunctionDenylist).
var nomadFunctionDenylist = []string{"executeTemplate", "plugin", "writeToFile"}

// catalog is Nomad's native service catalog: the registrations of each
// service name, in the order Nomad returns them.
type catalog map[string][]*dep.NomadService

// register adds the registration of service name for the allocation
// allocID at addr:port.
func (c catalog) register(name, allocID, addr string, port int) {
	c[name] = append(c[name], &dep.NomadService{
		ID:      fmt.Sprintf("_nomad-task-%s-%s-%s-%d", allocID, groupName, name, port),
		Name:    name,
		Address: addr,
		Port:    port,
		JobID:   "conclave",
		AllocID: allocID,
	})
}

// deregister removes every registration of the allocation allocID.
func (c catalog) deregister(allocID string) {
	for name, regs := range c {
		var keep []*dep.NomadService
		for _, r := range regs {
			if r.AllocID != allocID {
				keep = append(keep, r)
			}
		}
		c[name] = keep
	}
}

// renderTemplate renders tmpl as Nomad's template runner does, with
// consul-template: it executes the template, hands the brain the catalog's
// data for each Nomad service the template asked for, and executes it
// again. Nomad writes the result only once no dependency is missing, so
// that is required here. env is the task's environment.
func renderTemplate(t *testing.T, tmpl *api.Template, env map[string]string, c catalog) string {
	t.Helper()
	tt, err := ctemplate.NewTemplate(&ctemplate.NewTemplateInput{
		Contents:         deref(tmpl.EmbeddedTmpl),
		Destination:      deref(tmpl.DestPath),
		ErrMissingKey:    deref(tmpl.ErrMissingKey),
		LeftDelim:        deref(tmpl.LeftDelim),
		RightDelim:       deref(tmpl.RightDelim),
		FunctionDenylist: nomadFunctionDenylist,
	})
	if err != nil {
		t.Fatalf("parse template %s: %v", deref(tmpl.DestPath), err)
	}
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)

	brain := ctemplate.NewBrain()
	in := &ctemplate.ExecuteInput{Brain: brain, Env: envList}
	res, err := tt.Execute(in)
	if err != nil {
		t.Fatalf("execute template %s: %v", deref(tmpl.DestPath), err)
	}
	for _, d := range res.Missing.List() {
		q, ok := d.(*dep.NomadServiceQuery)
		if !ok {
			t.Fatalf("template %s depends on %s; this test only serves Nomad services", deref(tmpl.DestPath), d)
		}
		brain.Remember(q, registrationsFor(c, q))
	}
	res, err = tt.Execute(in)
	if err != nil {
		t.Fatalf("execute template %s: %v", deref(tmpl.DestPath), err)
	}
	if n := res.Missing.Len(); n != 0 {
		t.Fatalf("template %s still misses %d dependencies: %v", deref(tmpl.DestPath), n, res.Missing.List())
	}
	return string(res.Output)
}

// registrationsFor returns the catalog's registrations for the service
// that q names. Its String is "nomad.service(<name>)"; the job uses no
// tag, region or choose filter, so the name is all there is.
func registrationsFor(c catalog, q *dep.NomadServiceQuery) []*dep.NomadService {
	for name, regs := range c {
		if q.String() == fmt.Sprintf("nomad.service(%s)", name) {
			return regs
		}
	}
	return []*dep.NomadService{}
}

// retryJoinOf parses a rendered retry_join file as HCL, as the agent
// does, and returns its list.
func retryJoinOf(t *testing.T, rendered string) []string {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(rendered), retryJoinDest, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("rendered retry_join is not HCL: %v\n%s", diags, rendered)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatalf("rendered retry_join: %v\n%s", diags, rendered)
	}
	if len(attrs) != 1 || attrs["retry_join"] == nil {
		t.Fatalf("rendered file sets %d attributes, want only retry_join:\n%s", len(attrs), rendered)
	}
	v, diags := attrs["retry_join"].Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("retry_join value: %v", diags)
	}
	if !v.Type().IsTupleType() {
		t.Fatalf("retry_join is a %s, want a list", v.Type().FriendlyName())
	}
	out := []string{}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() != cty.String {
			t.Fatalf("retry_join element is a %s, want a string", e.Type().FriendlyName())
		}
		out = append(out, e.AsString())
	}
	return out
}

func TestRetryJoinTemplate(t *testing.T) {
	_, _, task := mustParseJob(t)
	tmpl := retryJoinTemplate(t, task)

	self := "2b3a6f0e-0000-4000-8000-000000000001"
	cases := []struct {
		name string
		regs func(c catalog)
		want []string
	}{
		{
			name: "first server: only itself",
			regs: func(c catalog) { c.register(discoveryName, self, "10.0.0.1", 8301) },
			want: []string{},
		},
		{
			name: "every server registered",
			regs: func(c catalog) {
				c.register(discoveryName, "alloc-b", "10.0.0.2", 8301)
				c.register(discoveryName, self, "10.0.0.1", 8301)
				c.register(discoveryName, "alloc-c", "10.0.0.3", 8301)
				c.register(healthName, "alloc-b", "10.0.0.2", 8500)
			},
			want: []string{"10.0.0.2:8301", "10.0.0.3:8301"},
		},
		{
			name: "IPv6 addresses in brackets",
			regs: func(c catalog) {
				c.register(discoveryName, self, "fd00::1", 8301)
				c.register(discoveryName, "alloc-b", "fd00::2", 8301)
			},
			want: []string{"[fd00::2]:8301"},
		},
		{
			name: "empty catalog",
			regs: func(catalog) {},
			want: []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := catalog{}
			tc.regs(c)
			out := renderTemplate(t, tmpl, map[string]string{"NOMAD_ALLOC_ID": self}, c)
			t.Logf("rendered:\n%s", out)
			if d := cmp.Diff(tc.want, retryJoinOf(t, out)); d != "" {
				t.Errorf("retry_join (-want +got):\n%s", d)
			}
		})
	}
}
