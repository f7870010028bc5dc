package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// forwarded are the signals `ledger run` catches: Ctrl-C and Ctrl-Break
// (os.Interrupt) and the console's close, logoff and shutdown (SIGTERM).
var forwarded = []os.Signal{os.Interrupt, syscall.SIGTERM}

// fdPassing says that --socket cannot hand a socket over here: Windows has
// no inheritable fd 3 for the child to find.
const fdPassing = false

// startWithSocket is never reached: runRun refuses --socket here.
func startWithSocket(*env, runOptions, string, []string, int, []string) (*exec.Cmd, error) {
	return nil, errors.New("--socket works on Linux and macOS only")
}

// execHelper is the --socket helper, which Windows never starts.
func execHelper([]string) error {
	return exitError{code: exitCannotRun, msg: "--socket works on Linux and macOS only"}
}

// reachedByTerminal: the console delivers Ctrl-C and Ctrl-Break to every
// process attached to it, the child included (it shares ledger run's
// console), so ledger run only outlives them, waits for the child and
// releases the port. Windows cannot send a single process a signal.
func reachedByTerminal(os.Signal, int) bool { return true }

// terminate stops the child: Windows has no SIGTERM to send, only
// TerminateProcess.
func terminate(child *exec.Cmd) { _ = child.Process.Kill() }

// sameJob: Windows has no process groups to tell the command's children
// by; the port's only listener is still taken as the heir.
func sameJob(int) bool { return false }
