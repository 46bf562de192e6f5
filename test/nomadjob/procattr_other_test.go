//go:build unix && !linux

package nomadjob

import "syscall"

// procAttr puts an agent in a process group of its own, which stop and
// kill signal.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
