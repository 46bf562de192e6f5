package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/conclavehq/conclave/agent/api"
)

// Terminate sends SIGTERM, as a rolling restart (Kubernetes, Nomad, docker
// stop) stops a server, and waits for the process to exit (SIGKILL after
// 20s). With the default leave_on_terminate = false the server does not
// leave: it keeps its place in the Raft configuration.
func (n *Node) Terminate() { n.signal(syscall.SIGTERM) }

// Runs is how many times the node was started.
func (n *Node) Runs() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.starts
}

// RunLog returns what the node logged in its run-th run (from 1).
func (n *Node) RunLog(run int) string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(n.Dir), fmt.Sprintf("%s.%d.log", n.Name, run)))
	return string(b)
}

// Check sends GET path to the node's HTTP API and returns the status code
// and the body, trimmed. code is 0 when no answer came back; body then
// holds the error.
func (n *Node) Check(path string) (code int, body string) {
	resp, err := httpClient.Get("http://" + n.HTTPAddr() + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(bytes.TrimSpace(b))
}

// VoterGate asks the node's rollout gate, GET /v1/status/ready?voter. When
// it answers 200, h is its HealthCheck; otherwise reason is the one-line
// reason (or the error when the node did not answer).
func (n *Node) VoterGate() (code int, h api.HealthCheck, reason string) {
	code, body := n.Check("/v1/status/ready?voter")
	if code != 200 {
		return code, h, body
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		return code, h, fmt.Sprintf("decode %q: %v", body, err)
	}
	return code, h, h.Reason
}
