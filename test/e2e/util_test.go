package e2e

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func itoa(i int) string { return strconv.Itoa(i) }

func asExit(err error, target *interface{ ExitCode() int }) bool {
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		*target = ee
		return true
	}
	return false
}

func pid(t *testing.T, n *Node) int {
	t.Helper()
	p := n.PID()
	if p == 0 {
		t.Fatalf("%s is not running", n.Name)
	}
	return p
}
