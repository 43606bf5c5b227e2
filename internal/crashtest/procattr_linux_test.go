package crashtest

import "syscall"

// procAttr makes the kernel kill the service should the test process itself
// die (a panic, a -timeout), so no run leaves an orphan behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
