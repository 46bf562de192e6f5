package docker

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conclavehq/conclave/agent/api"
	"github.com/conclavehq/conclave/test/testutil"
)

// composeTimeout bounds one Compose command; up and down start or stop
// four containers.
const composeTimeout = 5 * time.Minute

// TestCompose brings deploy/compose/docker-compose.yml up as a project of
// its own, with the test image and a free loopback port, and checks what
// the file promises: one cluster of three voters with one leader, four
// alive members, a key/value store that works through the published
// server and through the client agent, and every container healthy by
// its healthcheck (conclave health -ready).
func TestCompose(t *testing.T) {
	image := testImage(t)
	compose, err := composeCommand()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	project := prefix + "compose"
	port := testutil.Ports(t, 1)[0]
	file := filepath.Join(repoRoot(t), "deploy", "compose", "docker-compose.yml")
	env := []string{"CONCLAVE_IMAGE=" + image, "CONCLAVE_HTTP_PORT=" + strconv.Itoa(port)}
	composeRun := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), composeTimeout)
		defer cancel()
		return run(ctx, env, compose[0], slices.Concat(compose[1:], []string{"--file", file, "--project-name", project}, args)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, err := composeRun("logs", "--no-color", "--tail=100")
			t.Logf("compose logs:\n%s", logs)
			if err != nil {
				t.Log(err)
			}
		}
		if _, err := composeRun("down", "--volumes", "--timeout", "20"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	start := time.Now()
	if _, err := composeRun("up", "--detach"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s up --detach took %s", strings.Join(compose, " "), time.Since(start).Round(time.Millisecond))

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c, err := api.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 90*time.Second, func() error {
		cfg, err := c.RaftConfiguration()
		if err != nil {
			return fmt.Errorf("raft configuration through %s: %w", addr, err)
		}
		var voters []string
		leaders := 0
		for _, s := range cfg.Servers {
			if s.Voter {
				voters = append(voters, s.Node)
			}
			if s.Leader {
				leaders++
			}
		}
		slices.Sort(voters)
		if want := []string{"server-1", "server-2", "server-3"}; !slices.Equal(voters, want) || leaders != 1 {
			return fmt.Errorf("raft configuration has voters %q and %d leaders, want %q and 1", voters, leaders, want)
		}
		members, err := c.Members()
		if err != nil {
			return fmt.Errorf("members: %w", err)
		}
		var alive []string
		for _, m := range members {
			if m.Status == api.MemberStatusAlive {
				alive = append(alive, m.Name+"/"+m.Tags[api.TagRole])
			}
		}
		slices.Sort(alive)
		if want := []string{"client-1/" + api.RoleClient, "server-1/" + api.RoleServer, "server-2/" + api.RoleServer, "server-3/" + api.RoleServer}; !slices.Equal(alive, want) {
			return fmt.Errorf("alive members %q, want %q", alive, want)
		}
		return nil
	})
	t.Logf("cluster formed %s after up", time.Since(start).Round(time.Millisecond))

	// A write through the published server is read by the CLI in the
	// client agent's container, and the other way round. The client may
	// still be learning of the servers, so it gets a few tries.
	if err := c.KVPut(&api.KVPair{Key: "compose/from-http", Value: []byte("one")}); err != nil {
		t.Fatalf("put through %s: %v", addr, err)
	}
	poll(t, 30*time.Second, func() error {
		out, err := composeRun("exec", "-T", "client-1", "/bin/conclave", "kv", "get", "compose/from-http")
		if err == nil && out != "one" {
			err = fmt.Errorf("conclave kv get in client-1 printed %q, want \"one\"", out)
		}
		return err
	})
	poll(t, 30*time.Second, func() error {
		_, err := composeRun("exec", "-T", "client-1", "/bin/conclave", "kv", "put", "compose/from-client", "two")
		return err
	})
	kv, _, err := c.KVGet("compose/from-client", &api.QueryOptions{Consistent: true})
	if err != nil || kv == nil || string(kv.Value) != "two" {
		t.Errorf("get compose/from-client through %s = %+v, %v; want \"two\"", addr, kv, err)
	}

	ids, err := composeRun("ps", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(ids)); n != 4 {
		t.Fatalf("%s ps --quiet lists %d containers, want 4", strings.Join(compose, " "), n)
	}
	poll(t, 60*time.Second, func() error {
		out := mustDocker(t, append([]string{"container", "inspect", "--format", "{{.Name}} {{.State.Health.Status}}"}, strings.Fields(ids)...)...)
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasSuffix(line, " healthy") {
				return fmt.Errorf("not every container is healthy: %q", out)
			}
		}
		return nil
	})
}
