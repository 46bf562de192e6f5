//go:build !linux

package e2e

import "syscall"

// procAttr puts an agent in a process group of its own, which Kill and
// Stop signal. Only Linux can also tie the agent's life to the test's.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
