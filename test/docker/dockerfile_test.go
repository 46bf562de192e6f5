package docker

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// finalStage returns the instructions of the last stage of the Dockerfile
// at path, from its FROM on, one per element: comments and blank lines
// dropped, continued lines joined, runs of white space made one space.
func finalStage(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stage []string
		cur   strings.Builder
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		instr := strings.Join(strings.Fields(cur.String()), " ")
		cur.Reset()
		if strings.HasPrefix(strings.ToUpper(instr), "FROM ") {
			stage = nil
		}
		stage = append(stage, instr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: the last instruction ends in a line continuation", path)
	}
	return stage
}

// comparable rewrites a final stage so that the two Dockerfiles can be
// compared: a COPY keeps its flags, except --from, and its destination,
// since its sources are the builder stage's in one file and the build
// context's in the other. Every other instruction stays as it is.
func comparable(stage []string) []string {
	out := make([]string, len(stage))
	for i, instr := range stage {
		f := strings.Fields(instr)
		if strings.ToUpper(f[0]) != "COPY" {
			out[i] = instr
			continue
		}
		kept := []string{"COPY"}
		for _, a := range f[1 : len(f)-1] {
			if strings.HasPrefix(a, "--") && !strings.HasPrefix(a, "--from=") {
				kept = append(kept, a)
			}
		}
		out[i] = strings.Join(append(kept, "-> "+f[len(f)-1]), " ")
	}
	return out
}

// TestDockerfilesAgree checks that Dockerfile.local, which `make image`
// builds, makes the same final image as the Dockerfile users build: the
// same instructions from FROM scratch on, the same files copied to the
// same places with the same owners. It needs no Docker engine.
func TestDockerfilesAgree(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "docker")
	user := finalStage(t, filepath.Join(dir, "Dockerfile"))
	local := finalStage(t, filepath.Join(dir, "Dockerfile.local"))
	if diff := cmp.Diff(comparable(user), comparable(local)); diff != "" {
		t.Errorf("final stages of Dockerfile and Dockerfile.local differ (-Dockerfile +Dockerfile.local):\n%s", diff)
	}

	// The instructions the image promises, each once, in the final stage.
	want := map[string]string{
		"FROM":        "FROM scratch",
		"USER":        "USER 100:1000",
		"VOLUME":      `VOLUME ["/conclave/data"]`,
		"EXPOSE":      "EXPOSE 8300 8301/tcp 8301/udp 8500",
		"ENTRYPOINT":  `ENTRYPOINT ["/bin/conclave"]`,
		"CMD":         `CMD ["agent", "-dev", "-client=0.0.0.0"]`,
		"HEALTHCHECK": `HEALTHCHECK --interval=10s --timeout=10s --start-period=10s --retries=3 CMD ["/bin/conclave", "health"]`,
	}
	got := map[string][]string{}
	for _, instr := range user {
		kw := strings.ToUpper(strings.Fields(instr)[0])
		got[kw] = append(got[kw], instr)
	}
	for kw, w := range want {
		if len(got[kw]) != 1 || got[kw][0] != w {
			t.Errorf("Dockerfile final stage: %s instructions = %q, want exactly [%q]", kw, got[kw], w)
		}
	}
	if n := len(got["RUN"]) + len(got["ADD"]); n > 0 {
		t.Errorf("Dockerfile final stage has %d RUN or ADD instructions; a scratch image has no shell and takes files by COPY only", n)
	}
}

func TestComparable(t *testing.T) {
	got := comparable([]string{
		"FROM scratch",
		"COPY --from=builder --chown=100:1000 /conclave/ /conclave/",
		"COPY rootfs/ /",
		`CMD ["agent"]`,
	})
	want := []string{
		"FROM scratch",
		"COPY --chown=100:1000 -> /conclave/",
		"COPY -> /",
		`CMD ["agent"]`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("comparable() mismatch (-want +got):\n%s", diff)
	}
}
