//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup starts cmd in a process group of its own.
func ownProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the process group that ownProcessGroup made for pid.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// terminatePID sends pid SIGTERM.
func terminatePID(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }
