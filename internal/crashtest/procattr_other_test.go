//go:build !linux

package crashtest

import "syscall"

// procAttr: outside Linux there is no parent-death signal; t.Cleanup still
// kills the service whenever the test ends normally or fails.
func procAttr() *syscall.SysProcAttr { return nil }
