package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/conclavehq/conclave/agent/api"
)

// imageFile is what TestImage expects of one path in the image.
type imageFile struct {
	mode     fs.FileMode
	uid, gid int
	contains string // for a regular file: a line it must contain
}

// imageConfig is the part of an image's configuration that TestImage
// checks, as docker image inspect reports it.
type imageConfig struct {
	User         string
	ExposedPorts map[string]struct{}
	Volumes      map[string]struct{}
	WorkingDir   string
	Entrypoint   []string
	Cmd          []string
	Healthcheck  struct{ Test []string }
}

// TestImage checks the image that build-local.sh builds: its
// configuration, its files (nothing but the ones it is made of, with
// their owners and modes), and that its default command runs a working
// server as the conclave user, healthy by its own HEALTHCHECK and stopped
// cleanly by docker stop.
func TestImage(t *testing.T) {
	image := testImage(t)

	t.Run("config", func(t *testing.T) {
		var got imageConfig
		out := mustDocker(t, "image", "inspect", "--format", "{{json .Config}}", image)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("decode image config %s: %v", out, err)
		}
		want := imageConfig{
			User:         "100:1000",
			ExposedPorts: map[string]struct{}{"8300/tcp": {}, "8301/tcp": {}, "8301/udp": {}, "8500/tcp": {}},
			Volumes:      map[string]struct{}{"/conclave/data": {}},
			WorkingDir:   "/conclave",
			Entrypoint:   []string{"/bin/conclave"},
			Cmd:          []string{"agent", "-dev", "-client=0.0.0.0"},
		}
		want.Healthcheck.Test = []string{"CMD", "/bin/conclave", "health"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("image config mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("files", func(t *testing.T) {
		name := prefix + "export"
		mustDocker(t, "container", "create", "--name", name, "--label", runLabel+"="+prefix, image)
		t.Cleanup(func() { cleanupDocker(t, "container", "rm", "--force", "--volumes", name) })
		want := map[string]imageFile{
			"bin/conclave":                      {mode: 0o755},
			"etc/ssl/certs/ca-certificates.crt": {mode: 0o644, contains: "-----BEGIN CERTIFICATE-----"},
			"etc/passwd":                        {mode: 0o644, contains: "conclave:x:100:1000:Conclave:/conclave:/sbin/nologin"},
			"etc/group":                         {mode: 0o644, contains: "conclave:x:1000:"},
			"tmp":                               {mode: fs.ModeDir | fs.ModeSticky | 0o777},
			"conclave":                          {mode: fs.ModeDir | 0o755, uid: 100, gid: 1000},
			"conclave/config":                   {mode: fs.ModeDir | 0o755, uid: 100, gid: 1000},
			"conclave/data":                     {mode: fs.ModeDir | 0o700, uid: 100, gid: 1000},
		}
		// What the engine adds to every container's file system.
		engine := []string{".dockerenv", "dev/console", "etc/hostname", "etc/hosts", "etc/resolv.conf"}

		var files []string
		exportImage(t, name, func(h *tar.Header, r io.Reader) {
			path := strings.TrimSuffix(h.Name, "/")
			if h.Typeflag == tar.TypeReg {
				files = append(files, path)
			}
			w, ok := want[path]
			if !ok {
				return
			}
			delete(want, path)
			if got := h.FileInfo().Mode(); got != w.mode || h.Uid != w.uid || h.Gid != w.gid {
				t.Errorf("%s: mode %s, owner %d:%d; want mode %s, owner %d:%d", path, got, h.Uid, h.Gid, w.mode, w.uid, w.gid)
			}
			if h.Typeflag != tar.TypeReg {
				return
			}
			body, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read %s: %v", path, err)
			}
			if !strings.Contains(string(body), w.contains) {
				t.Errorf("%s does not contain %q", path, w.contains)
			}
			if path == "bin/conclave" {
				checkStatic(t, body)
			}
		})
		for path := range want {
			t.Errorf("%s is missing from the image", path)
		}
		wantFiles := append([]string{"bin/conclave", "etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt"}, engine...)
		slices.Sort(files)
		slices.Sort(wantFiles)
		if diff := cmp.Diff(wantFiles, files); diff != "" {
			t.Errorf("regular files in the image (-want +got):\n%s", diff)
		}
	})

	t.Run("version", func(t *testing.T) {
		out := mustDocker(t, "run", "--rm", "--label", runLabel+"="+prefix, image, "version")
		if !strings.HasPrefix(out, "Conclave v") || !strings.Contains(out, "Revision ") {
			t.Errorf("docker run %s version printed %q, want \"Conclave v...\" and a revision", image, out)
		}
	})

	t.Run("default command", func(t *testing.T) {
		name := prefix + "dev"
		// The image's HEALTHCHECK, checked every second instead of every
		// 10 s so that the test need not wait.
		mustDocker(t, "run", "--detach", "--name", name, "--label", runLabel+"="+prefix,
			"--publish", "127.0.0.1::8500", "--health-interval=1s", image)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := exec.Command("docker", "container", "logs", "--tail", "100", name).CombinedOutput()
				t.Logf("logs of %s:\n%s", name, out)
			}
			cleanupDocker(t, "container", "rm", "--force", "--volumes", name)
		})
		addr := strings.Fields(mustDocker(t, "container", "port", name, "8500/tcp"))[0]
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("docker port %s 8500/tcp = %q, want 127.0.0.1:<port>", name, addr)
		}
		c, err := api.NewClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		poll(t, 60*time.Second, func() error {
			leader, err := c.Leader()
			if err == nil && leader == "" {
				err = fmt.Errorf("no leader yet")
			}
			return err
		})
		if err := c.KVPut(&api.KVPair{Key: "image/test", Value: []byte("ok")}); err != nil {
			t.Fatalf("put through the published port: %v", err)
		}
		kv, _, err := c.KVGet("image/test", nil)
		if err != nil || kv == nil || string(kv.Value) != "ok" {
			t.Fatalf("get image/test = %+v, %v; want \"ok\"", kv, err)
		}

		// The agent runs as the conclave user, not root, and so does
		// anything else in the container (the HEALTHCHECK's conclave health
		// may be running at this moment).
		top := strings.Split(strings.TrimSpace(mustDocker(t, "container", "top", name, "-o", "pid,uid,gid,args")), "\n")
		agents := 0
		for _, line := range top[1:] {
			f := strings.Fields(line) // PID UID GID COMMAND ARGS...
			if len(f) < 4 || f[1] != "100" || f[2] != "1000" {
				t.Errorf("docker top %s: process %q, want UID 100 and GID 1000", name, line)
				continue
			}
			if f[3] == "/bin/conclave" && len(f) > 4 && f[4] == "agent" {
				agents++
			}
		}
		if h := strings.Fields(top[0]); !slices.Equal(h, []string{"PID", "UID", "GID", "COMMAND"}) || agents != 1 {
			t.Errorf("docker top %s = %q, want one /bin/conclave agent process", name, top)
		}

		poll(t, 60*time.Second, func() error {
			out := mustDocker(t, "container", "inspect", "--format", "{{json .State.Health}}", name)
			var h struct {
				Status string
				Log    []struct {
					ExitCode int
					Output   string
				}
			}
			if err := json.Unmarshal([]byte(out), &h); err != nil {
				return fmt.Errorf("decode health %s: %w", out, err)
			}
			if h.Status == "healthy" {
				return nil
			}
			last := "no check yet"
			if n := len(h.Log); n > 0 {
				last = fmt.Sprintf("exit %d: %s", h.Log[n-1].ExitCode, strings.TrimSpace(h.Log[n-1].Output))
			}
			return fmt.Errorf("health %s; last check %s", h.Status, last)
		})

		// docker stop sends SIGTERM to the agent, PID 1 of the container:
		// it must shut down cleanly, well within the grace period.
		start := time.Now()
		mustDocker(t, "container", "stop", "--time", stopTimeout, name)
		took := time.Since(start)
		if code := mustDocker(t, "container", "inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
			t.Errorf("exit code after docker stop = %s, want 0", code)
		}
		if took > 15*time.Second {
			t.Errorf("docker stop took %s; want the agent to exit on SIGTERM, not to be killed", took.Round(time.Millisecond))
		}
	})
}

// exportImage streams the file system of container name (docker export)
// to fn, one tar entry at a time.
func exportImage(t *testing.T, name string, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "container", "export", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read docker export: %v", err)
		}
		fn(h, tr)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker export %s: %v: %s", name, err, stderr.String())
	}
}

// checkStatic fails the test unless bin is a static ELF executable: it
// names no program interpreter (dynamic loader) and no shared library, so
// it runs on an empty file system.
func checkStatic(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("bin/conclave is not an ELF file: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("bin/conclave has a program interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("bin/conclave needs shared libraries %q", libs)
	}
}
