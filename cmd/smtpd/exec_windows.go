package main

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts cmd in a new process group, so that a Ctrl-C at
// the console does not reach it. Windows cannot kill a process group:
// the nearest equivalent, a job object, is not in the standard library.
// A cancelled cmd kills sh alone (exec's default), and the processes it
// started may outlive it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// killProcessGroup kills sh, when it still runs; see setProcessGroup.
func killProcessGroup(cmd *exec.Cmd) error {
	return cmd.Process.Kill()
}
