//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals `ledger run` passes on to its child.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// fdPassing says that --socket can hand a bound socket over as fd 3 here.
const fdPassing = true

// startWithSocket binds the port and starts the command with the listening
// socket as fd 3 (systemd socket activation).
func startWithSocket(e *env, o runOptions, path string, argv []string, port int, env []string) (*exec.Cmd, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(o.bind, strconv.Itoa(port)))
	if err != nil {
		return nil, exitError{code: 1, msg: fmt.Sprintf("cannot bind port %d on %s: %v", port, o.bind, err)}
	}
	lf, err := ln.(*net.TCPListener).File()
	ln.Close() // lf is a duplicate: the socket stays bound and listening
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	defer lf.Close() // the parent's copy: only the child keeps the port
	// A blocking socket, as systemd passes it: runtimes that want it
	// non-blocking (Go, Node) set that themselves; Python's socket.fromfd
	// with no timeout expects it blocking.
	if err := syscall.SetNonblock(int(lf.Fd()), false); err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}

	// LISTEN_PID must be the PID of the process that receives the socket,
	// and os/exec cannot set the environment after fork, when that PID is
	// known. So the child is this binary again (execHelper), which sets
	// LISTEN_PID to its own PID and then execs the command: exec keeps the
	// PID, so the command sees LISTEN_PID == getpid(), and the PID
	// registered is the command's. The status pipe (fd 4 in the helper,
	// close-on-exec there) reports whether that exec happened: EOF means
	// it did; anything written is the error.
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the ledger binary for --socket: %w", err)
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("status pipe: %w", err)
	}
	defer sr.Close()
	env = withEnv(env, "LISTEN_FDS", "1", "LISTEN_FDNAMES", o.req.ServiceName)
	cmd := &exec.Cmd{
		Path:       self,
		Args:       append([]string{self, "run", execHelperArg, path}, argv...),
		Env:        env,
		Stdin:      e.stdin,
		Stdout:     e.stdout,
		Stderr:     e.stderr,
		ExtraFiles: []*os.File{lf, sw},
	}
	err = cmd.Start()
	sw.Close()
	if err != nil {
		return nil, startError(argv[0], err)
	}
	msg, _ := io.ReadAll(sr)
	if len(msg) > 0 {
		_ = cmd.Wait()
		code, text, _ := strings.Cut(string(msg), " ")
		n, _ := strconv.Atoi(code)
		return nil, exitError{code: n, msg: fmt.Sprintf("cannot start %q: %s", argv[0], text)}
	}
	return cmd, nil
}

// execHelper runs in the child of `ledger run --socket`: args are the
// resolved path and the command's argv. It sets LISTEN_PID to its own PID
// and replaces itself with the command, keeping fd 3 (the listener) open.
// It returns only if the exec fails, after writing "CODE message" to the
// status pipe on fd 4.
func execHelper(args []string) error {
	status := os.NewFile(4, "exec-status")
	if len(args) < 2 {
		fmt.Fprintf(status, "%d internal error: helper called without a command", exitCannotRun)
		return exitError{code: exitCannotRun}
	}
	syscall.CloseOnExec(4)
	env := withEnv(os.Environ(), "LISTEN_PID", strconv.Itoa(os.Getpid()))
	err := syscall.Exec(args[0], args[1:], env)
	code := exitCannotRun
	if errors.Is(err, syscall.ENOENT) {
		code = exitNotFound
	}
	fmt.Fprintf(status, "%d %v", code, err)
	return exitError{code: code}
}

// reachedByTerminal reports whether s is a signal that the terminal sent to
// the whole foreground process group, the child included (Ctrl-C, Ctrl-\):
// forwarding it would deliver it twice. It holds when the child is in the
// terminal's foreground process group. A SIGINT sent with kill(1) to
// `ledger run` alone while it runs in the foreground is then not
// forwarded; run it in the background or send SIGTERM to stop it.
func reachedByTerminal(s os.Signal, childPID int) bool {
	if s != syscall.SIGINT && s != syscall.SIGQUIT {
		return false
	}
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return false // no controlling terminal
	}
	defer tty.Close()
	fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	if err != nil {
		return false
	}
	pg, err := unix.Getpgid(childPID)
	return err == nil && pg == fg
}

// terminate asks the child to stop, as a service manager does.
func terminate(child *exec.Cmd) { _ = child.Process.Signal(syscall.SIGTERM) }

// sameJob reports whether pid is of ledger run's process group: the
// command's children are, unless they moved to a group of their own.
func sameJob(pid int) bool {
	pg, err := syscall.Getpgid(pid)
	return err == nil && pg == syscall.Getpgrp()
}
