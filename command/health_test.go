package command

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/api"
)

const (
	aliveJSON = `{"Node":"c1","Check":"alive","Healthy":true,"Reason":"serving HTTP"}`
	readyJSON = `{"Node":"c1","Check":"ready","Healthy":true,"Reason":"agent started; raft follower"}`
	voterJSON = `{"Node":"c1","Check":"voter","Healthy":true,"Reason":"voter, applied index 40 of the leader's 41; failure tolerance 1 of 3 voters","AppliedIndex":40,"LeaderLastIndex":41}`
)

func TestHealthCommand(t *testing.T) {
	cases := []struct {
		name       string
		routes     map[string]reply
		args       []string
		wantCode   int
		wantReq    string
		wantStdout string
		wantStderr string
	}{
		{
			name:       "liveness",
			routes:     map[string]reply{"GET /v1/agent/health": ok(aliveJSON)},
			wantReq:    "GET /v1/agent/health",
			wantStdout: "Healthy (alive): serving HTTP\n",
		},
		{
			name:       "readiness",
			routes:     map[string]reply{"GET /v1/status/ready": ok(readyJSON)},
			args:       []string{"-ready"},
			wantReq:    "GET /v1/status/ready",
			wantStdout: "Healthy (ready): agent started; raft follower\n",
		},
		{
			name:       "not ready",
			routes:     map[string]reply{"GET /v1/status/ready": {503, "agent is shutting down\n"}},
			args:       []string{"-ready"},
			wantCode:   1,
			wantReq:    "GET /v1/status/ready",
			wantStderr: "Unhealthy (ready): agent is shutting down\n",
		},
		{
			name:       "voter",
			routes:     map[string]reply{"GET /v1/status/ready": ok(voterJSON)},
			args:       []string{"-voter"},
			wantReq:    "GET /v1/status/ready?voter=",
			wantStdout: "Healthy (voter): voter, applied index 40 of the leader's 41; failure tolerance 1 of 3 voters\n",
		},
		{
			name:       "voter wins over ready",
			routes:     map[string]reply{"GET /v1/status/ready": {503, "failure tolerance 0: server c3 is unhealthy\n"}},
			args:       []string{"-ready", "-voter"},
			wantCode:   1,
			wantReq:    "GET /v1/status/ready?voter=",
			wantStderr: "Unhealthy (voter): failure tolerance 0: server c3 is unhealthy\n",
		},
		{
			name:       "voter on a client",
			routes:     map[string]reply{"GET /v1/status/ready": {400, "this agent is not a server\n"}},
			args:       []string{"-voter"},
			wantCode:   1,
			wantReq:    "GET /v1/status/ready?voter=",
			wantStderr: "Unhealthy (voter): this agent is not a server\n",
		},
		{
			name:       "unknown route",
			routes:     map[string]reply{},
			wantCode:   1,
			wantReq:    "GET /v1/agent/health",
			wantStderr: "Unhealthy (alive): no route for GET /v1/agent/health\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent := newFakeAgent(t, tc.routes)
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &HealthCommand{Meta: Meta{Ui: ui}}, append([]string{"-http-addr=" + agent.addr}, tc.args...)...)
			if code != tc.wantCode || stdout != tc.wantStdout || stderr != tc.wantStderr {
				t.Errorf("Run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if got := agent.requests(); !cmp.Equal(got, []string{tc.wantReq}) {
				t.Errorf("requests = %q, want [%q]", got, tc.wantReq)
			}
		})
	}
}

// TestHealthCommandEnvAddr: like every client command, health finds the
// agent through CONCLAVE_HTTP_ADDR.
func TestHealthCommandEnvAddr(t *testing.T) {
	agent := newFakeAgent(t, map[string]reply{"GET /v1/agent/health": ok(aliveJSON)})
	t.Setenv(api.HTTPAddrEnv, agent.addr)
	ui := cli.NewMockUi()
	if code, stdout, stderr := run(t, ui, &HealthCommand{Meta: Meta{Ui: ui}}); code != 0 || stdout != "Healthy (alive): serving HTTP\n" {
		t.Errorf("Run() = %d, stdout %q, stderr %q; want 0 and the reason", code, stdout, stderr)
	}
}

// TestHealthCommandTimeout: an agent that does not answer fails the check
// after -timeout, not after the client's default.
func TestHealthCommandTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ui := cli.NewMockUi()
	start := time.Now()
	code, stdout, stderr := run(t, ui, &HealthCommand{Meta: Meta{Ui: ui}}, "-http-addr="+srv.Listener.Addr().String(), "-ready", "-timeout=200ms")
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Run() took %s, want about 200ms", elapsed)
	}
	if code != 1 || stdout != "" || stderr != "Unhealthy (ready): no answer from the agent within 200ms\n" {
		t.Errorf("Run() = %d, stdout %q, stderr %q; want 1 and no answer within 200ms", code, stdout, stderr)
	}
}

func TestHealthCommandErrors(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		wantPrefix string
	}{
		{name: "dead agent", args: []string{"-http-addr=" + deadAddr(t)}, wantPrefix: "Unhealthy (alive): cannot reach the agent: Get "},
		{name: "zero timeout", args: []string{"-timeout=0s"}, wantPrefix: "invalid -timeout 0s: want a positive duration"},
		{name: "extra argument", args: []string{"now"}, wantPrefix: "This command takes no arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ui := cli.NewMockUi()
			code, stdout, stderr := run(t, ui, &HealthCommand{Meta: Meta{Ui: ui}}, tc.args...)
			if code != 1 || stdout != "" {
				t.Errorf("Run(%q) = %d, stdout %q; want 1 and no output", tc.args, code, stdout)
			}
			checkOneLineError(t, stderr, tc.wantPrefix)
		})
	}
	ui := cli.NewMockUi()
	if code, _, stderr := run(t, ui, &HealthCommand{Meta: Meta{Ui: ui}}, "-bogus"); code != 1 || !strings.Contains(stderr, "Usage: conclave health") {
		t.Errorf("Run(-bogus) = %d, stderr %q; want 1 and the usage", code, stderr)
	}
}
