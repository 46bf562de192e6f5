package e2e

import "testing"

// pid returns the process ID of a running node, failing the test if it
// is not running.
func pid(t *testing.T, n *Node) int {
	t.Helper()
	p := n.PID()
	if p == 0 {
		t.Fatalf("%s is not running", n.Name)
	}
	return p
}
