package config

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func TestFlagsAddTo(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want Flags
	}{
		{
			name: "none given",
			want: Flags{},
		},
		{
			name: "booleans without value",
			args: []string{"-server", "-bootstrap", "-log-json", "-enable-debug", "-dev"},
			want: Flags{Server: ptr(true), Bootstrap: ptr(true), LogJSON: ptr(true), EnableDebug: ptr(true), Dev: ptr(true)},
		},
		{
			name: "booleans set to false",
			args: []string{"-server=false", "-bootstrap=false", "-log-json=0", "-enable-debug=false", "-dev=f"},
			want: Flags{Server: ptr(false), Bootstrap: ptr(false), LogJSON: ptr(false), EnableDebug: ptr(false), Dev: ptr(false)},
		},
		{
			name: "zero values are given",
			args: []string{"-node=", "-http-port", "0", "-retry-max=0", "-bootstrap-expect=0", "-retry-interval=0s"},
			want: Flags{NodeName: ptr(""), HTTPPort: ptr(0), RetryMax: ptr(0), BootstrapExpect: ptr(0), RetryInterval: ptr(time.Duration(0))},
		},
		{
			name: "every value flag",
			args: []string{
				"-node", "n1", "-datacenter", "dc2", "-data-dir", "/var/lib/conclave", "-bootstrap-expect", "3",
				"-bind", "{{ GetPrivateIP }}", "-advertise", "10.0.0.1", "-client", "0.0.0.0",
				"-http-port", "1", "-serf-lan-port", "0x10", "-server-port", "3",
				"-retry-interval", "1m", "-retry-max", "5", "-log-level", "debug",
			},
			want: Flags{
				NodeName: ptr("n1"), Datacenter: ptr("dc2"), DataDir: ptr("/var/lib/conclave"), BootstrapExpect: ptr(3),
				BindAddr: ptr("{{ GetPrivateIP }}"), AdvertiseAddr: ptr("10.0.0.1"), ClientAddr: ptr("0.0.0.0"),
				HTTPPort: ptr(1), SerfLANPort: ptr(16), ServerPort: ptr(3),
				RetryInterval: ptr(time.Minute), RetryMax: ptr(5), LogLevel: ptr("debug"),
			},
		},
		{
			name: "retry-join appends",
			args: []string{"-retry-join", "a", "-retry-join=b", "-retry-join", "provider=aws tag_key=k tag_value=v"},
			want: Flags{RetryJoin: []string{"a", "b", "provider=aws tag_key=k tag_value=v"}},
		},
		{
			name: "last one wins",
			args: []string{"-server", "-server=false", "-http-port=1", "-http-port=2"},
			want: Flags{Server: ptr(false), HTTPPort: ptr(2)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseFlags(t, tc.args...)
			if diff := cmp.Diff(&tc.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestFlagsAddToErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-http-port", "http"}, `invalid value "http" for flag -http-port: not an integer`},
		{[]string{"-retry-max=99999999999999999999"}, `invalid value "99999999999999999999" for flag -retry-max: out of range`},
		{[]string{"-server=yes"}, `invalid boolean value "yes" for -server: not a boolean`},
		{[]string{"-retry-interval", "5 parsecs"}, `invalid value "5 parsecs" for flag -retry-interval: not a duration such as "30s" or "1m30s"`},
		{[]string{"-config-file", "x"}, `flag provided but not defined: -config-file`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("agent", flag.ContinueOnError)
			fs.SetOutput(new(strings.Builder))
			new(Flags).AddTo(fs)
			err := fs.Parse(tc.args)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q) error = %v, want %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestFlagsUsage(t *testing.T) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	new(Flags).AddTo(fs)
	fs.PrintDefaults()
	got := out.String()

	for _, want := range []string{
		"  -server\n",
		"  -http-port port\n",
		"  -retry-interval duration\n",
		"  -retry-join address\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("PrintDefaults() does not contain %q:\n%s", want, got)
		}
	}
	// A flag that is not given has no value, so no "(default …)" may appear.
	if strings.Contains(got, "(default") {
		t.Errorf("PrintDefaults() shows a default value:\n%s", got)
	}
	if strings.Contains(got, "panic") {
		t.Errorf("PrintDefaults() reports a panic:\n%s", got)
	}
}
