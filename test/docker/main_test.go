package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclavehq/conclave/test/testutil"
)

const (
	// runLifetime is how long the resources of one run may live. A later
	// run removes them once it has passed, so it must exceed the longest
	// run, timeouts included.
	runLifetime = 2 * time.Hour

	// imageRepo is the repository of the images the tests build.
	imageRepo = "conclave-test"

	// runLabel labels what the tests create directly, with the run's
	// prefix as its value.
	runLabel = "conclave.test.run"

	// cmdTimeout bounds one docker command; buildTimeout the image build,
	// which compiles the binary.
	cmdTimeout   = 2 * time.Minute
	buildTimeout = 15 * time.Minute
)

var (
	// dockerErr says why no Docker engine can be used; nil when one
	// answers.
	dockerErr error

	// prefix starts the name of everything this run creates:
	// cdt-<expiry>-<random>-. See the package doc.
	prefix = newPrefix(time.Now().Add(runLifetime))

	// The image, built on first use by testImage.
	imageOnce sync.Once
	imageTag  string
	imageErr  error
)

// prefixPattern matches a name made with newPrefix and captures its expiry.
var prefixPattern = regexp.MustCompile(`^cdt-([0-9a-f]{8,16})-[0-9a-f]{8}[-_]`)

func TestMain(m *testing.M) {
	dockerErr = checkDocker()
	if dockerErr == nil {
		sweep(time.Now())
	}
	code := m.Run()
	if imageTag != "" {
		if _, err := docker(context.Background(), "image", "rm", "--force", imageTag); err != nil {
			fmt.Fprintf(os.Stderr, "remove test image: %v\n", err)
		}
	}
	os.Exit(code)
}

// newPrefix returns a run prefix, cdt-<expiry>-<random>-, with expiry in
// hex Unix seconds.
func newPrefix(expiry time.Time) string {
	b := make([]byte, 4)
	rand.Read(b) // never fails (crypto/rand)
	return fmt.Sprintf("cdt-%x-%s-", expiry.Unix(), hex.EncodeToString(b))
}

// checkDocker returns nil when a Docker engine answers.
func checkDocker() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return errors.New("the docker CLI is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return err
	}
	return nil
}

// requireDocker skips the test when no Docker engine answers.
func requireDocker(t *testing.T) {
	t.Helper()
	if dockerErr != nil {
		t.Skipf("skipping: no Docker engine (docker info failed: %v)", dockerErr)
	}
}

// docker runs the docker CLI and returns its standard output, trimmed. The
// error names the command and holds its standard error.
func docker(ctx context.Context, args ...string) (string, error) {
	return run(ctx, nil, "docker", args...)
}

// run runs name with args and the extra environment env, and returns its
// standard output, trimmed.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("%s %s: %v: %s",
			name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// mustDocker runs docker with a timeout and fails the test on error.
func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cleanupDocker runs docker from a t.Cleanup and logs a failure: cleanup
// goes on with the rest.
func cleanupDocker(t testing.TB, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if _, err := docker(ctx, args...); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// pollInterval is how often poll checks a condition. Each check of a
// cluster sends several requests to every container; testutil.WaitFor's
// 20ms would load the machine that the containers run on.
const pollInterval = 250 * time.Millisecond

// poll calls cond every pollInterval until it returns nil, and fails the
// test with cond's last error if that does not happen within timeout.
func poll(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testutil.WaitEvery(t, timeout, pollInterval, cond)
}

// repoRoot returns the root of the repository: the test runs in
// test/docker.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// testImage builds the image with deploy/docker/build-local.sh on first
// use and returns its tag. TestMain removes it.
func testImage(t *testing.T) string {
	t.Helper()
	requireDocker(t)
	imageOnce.Do(func() {
		tag := imageRepo + ":" + strings.TrimSuffix(prefix, "-")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		start := time.Now()
		script := filepath.Join(repoRoot(t), "deploy", "docker", "build-local.sh")
		// Set before the build: a build that fails half-way may still
		// leave the tag for TestMain to remove.
		imageTag = tag
		_, imageErr = run(ctx, []string{"LABELS=" + runLabel + "=" + prefix}, script, tag)
		if imageErr == nil {
			t.Logf("built image %s in %s", tag, time.Since(start).Round(time.Second))
		}
	})
	if imageErr != nil {
		t.Fatalf("build image: %v", imageErr)
	}
	return imageTag
}

// sweep removes the containers, networks, volumes and images of earlier
// runs whose lifetime ended before now. Those of runs still going are left
// alone.
func sweep(now time.Time) {
	expired := func(name string) bool {
		m := prefixPattern.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		exp, err := strconv.ParseInt(m[1], 16, 64)
		return err == nil && now.Unix() > exp
	}
	list := func(args ...string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		out, err := docker(ctx, args...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sweep: %v\n", err)
			return nil
		}
		var names []string
		for _, name := range strings.Fields(out) {
			if expired(name) {
				names = append(names, name)
			}
		}
		return names
	}
	remove := func(args []string, names []string) {
		if len(names) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		fmt.Fprintf(os.Stderr, "sweep: removing %d leftovers of expired runs: %s\n", len(names), strings.Join(names, " "))
		if _, err := docker(ctx, append(args, names...)...); err != nil {
			fmt.Fprintf(os.Stderr, "sweep: %v\n", err)
		}
	}
	// Containers first: they hold the networks and volumes.
	remove([]string{"container", "rm", "--force", "--volumes"}, list("container", "ls", "--all", "--format", "{{.Names}}"))
	remove([]string{"network", "rm"}, list("network", "ls", "--format", "{{.Name}}"))
	remove([]string{"volume", "rm", "--force"}, list("volume", "ls", "--format", "{{.Name}}"))
	// An image's tag is a prefix without its final "-": add it back for
	// prefixPattern.
	var images []string
	for _, tag := range list("image", "ls", imageRepo, "--format", "{{.Tag}}-") {
		images = append(images, imageRepo+":"+strings.TrimSuffix(tag, "-"))
	}
	remove([]string{"image", "rm", "--force"}, images)
}

// composeCommand returns the Compose command line: "docker compose" when
// the plugin exists, else "docker-compose" (Compose v1).
func composeCommand() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := docker(ctx, "compose", "version"); err == nil {
		return []string{"docker", "compose"}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("neither docker compose nor docker-compose is installed")
}
