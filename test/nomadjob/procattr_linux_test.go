package nomadjob

import "syscall"

// procAttr puts an agent in a process group of its own, which stop and
// kill signal, and has the kernel kill it if the test binary dies: a
// -timeout panic skips the cleanups that would.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
