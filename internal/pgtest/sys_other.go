//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr runs the server as cred (nil: as this process). Outside
// Linux a server whose test binary dies without running Main's cleanup is
// left running.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
