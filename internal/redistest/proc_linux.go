package redistest

import (
	"os/exec"
	"syscall"
)

// orphanGuard kills redis-server if the test process dies without running
// its cleanups (a panic, a timeout), so no server outlives its test.
func orphanGuard(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
