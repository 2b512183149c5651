package pgtest

import "syscall"

// sysProcAttr runs the server as cred (nil: as this process), and has the
// kernel send it SIGQUIT (immediate shutdown) when the thread that started
// it ends.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
