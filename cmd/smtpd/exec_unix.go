//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes cmd the leader of a new process group, which
// killProcessGroup kills whole, and which a ^C at the terminal (sent to the
// terminal's foreground group) does not reach. A cancelled cmd kills its
// group, not only sh.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
}

// killProcessGroup kills every process left in cmd's group with SIGKILL.
// It may be called after cmd was waited for: the group's ID stays taken
// while any process is in it, so it names no one else.
func killProcessGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
