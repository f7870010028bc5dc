package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portledger/portledger/ledger"
)

// Exit codes of `ledger run` when the command never ran, as env(1) and
// the shells use them.
const (
	exitNotFound  = 127 // no such command
	exitCannotRun = 126 // found, but could not be executed
)

// execHelperArg, as the first argument of `ledger run`, makes it the
// socket-activation helper (see execHelper). It is not a flag, so it never
// shows in --help.
const execHelperArg = "--exec-with-listen-pid"

// forwarded are the signals `ledger run` passes on to its child.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// runOptions are the flags of `ledger run` beyond the common ones.
type runOptions struct {
	req    ledger.AllocateRequest
	health string
	socket bool
	bind   string
	quiet  bool
}

func runRun(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == execHelperArg {
		return execHelper(args[1:])
	}
	var c common
	var o runOptions
	fs := newFlags(e, "run", "run --service NAME [--purpose P] [--port P] [--health PATH] [--socket [--bind ADDR]] -- CMD [ARGS...]", `
Run a service on a port of its own. ledger run allocates a port (the one the
service held last if it is free), starts CMD with PORT and LEDGER_PORT set to
it (and LEDGER_SERVICE to the service's name), records the child's PID, passes SIGINT, SIGTERM, SIGHUP and SIGQUIT on to
it, and releases the port when it exits, with the exit status as the reason.
It exits with the child's exit code (128+N if the child died of signal N;
127 if CMD is not found, 126 if it cannot be executed).

With --socket, ledger run binds the port itself before the child starts and
hands the listening socket over as file descriptor 3, with LISTEN_FDS=1,
LISTEN_PID and LISTEN_FDNAMES as systemd socket activation does: no other
process can take the port between allocation and bind. Without it, the child
binds PORT itself.

--health /health has the watchdog probe http://127.0.0.1:PORT/health.
The ledger file is never held while the child runs, so other ledger commands
keep working; with a daemon running, every step goes through it.

Examples:
  ledger run --service api --purpose "Main API" -- python serve.py
  LEDGER_SERVICE=worker ledger run -- python serve.py
  ledger run --service api --health /health --socket -- ./api`, &c, false)
	fs.StringVar(&o.req.ServiceName, "service", e.getenv("LEDGER_SERVICE"), "service name: 1-128 of A-Z a-z 0-9 . _ - (env LEDGER_SERVICE)")
	fs.StringVar(&o.req.StartedBy, "started-by", "ledger run", "who started the service")
	fs.StringVar(&o.req.Purpose, "purpose", "", "why the service runs")
	fs.IntVar(&o.req.Port, "port", 0, "preferred port (refused if taken)")
	fs.StringVar(&o.health, "health", "", "health endpoint the watchdog probes: a path such as /health on the service's port, or a loopback URL")
	fs.BoolVar(&o.socket, "socket", false, "bind the port here and pass the listening socket as fd 3 (LISTEN_FDS=1)")
	fs.StringVar(&o.bind, "bind", "127.0.0.1", "with --socket: the address to bind, e.g. 0.0.0.0")
	fs.BoolVar(&o.quiet, "quiet", false, "print nothing of its own on stderr but errors")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return usageError{msg: "run needs a command: ledger run --service NAME -- CMD [ARGS...]", hint: "Run 'ledger run --help' for usage."}
	}
	if o.req.ServiceName == "" {
		return usagef("run needs --service NAME (or LEDGER_SERVICE)")
	}
	if flagSet(fs, "bind") && !o.socket {
		return usagef("--bind needs --socket: without it the service binds PORT itself")
	}
	switch h := o.health; {
	case h == "":
	case strings.Contains(h, "://"):
		o.req.HealthURL = h
	case strings.HasPrefix(h, "/"):
		o.req.HealthPath = h
	default:
		o.req.HealthPath = "/" + h
	}
	return runService(ctx, e, &c, o, argv)
}

// runService is `ledger run` after its flags are checked.
func runService(ctx context.Context, e *env, c *common, o runOptions, argv []string) error {
	e = withLockedOutput(e)
	// Resolve the command before taking a port: a typo costs nothing.
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return startError(argv[0], err)
	}

	// Signals that arrive from now on are kept for the child; one that
	// arrives before it starts ends the run without starting it.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	// The ports of every service that holds one at start go to the
	// child as LEDGER_PORT_<SERVICE>, so that services find each other.
	var peers []ledger.Allocation
	a, err := step(ctx, c, func(b *backend) (ledger.Allocation, error) {
		a, err := b.Allocate(ctx, o.req)
		if err == nil {
			peers, _ = b.Allocations(ctx, ledger.AllocationQuery{}) // without them the child still runs
		}
		return a, err
	})
	if err != nil {
		return err
	}
	port := a.Port
	if !o.quiet {
		noteEnvRange(c, port)
	}
	// release frees the port and returns what became of it, for the last
	// line: "released port N", or why it was not.
	release := func(reason string) string {
		// The release must happen even when ctx was cancelled: the child
		// is gone and the port is free.
		rctx := context.WithoutCancel(ctx)
		_, err := step(rctx, c, func(b *backend) (ledger.Event, error) {
			return b.Release(rctx, ledger.ReleaseRequest{Port: port, Reason: reason, ReleasedBy: "ledger run", EventID: a.EventID})
		})
		switch ledger.ErrorCode(err) {
		case "":
			return fmt.Sprintf("released port %d", port)
		case ledger.ENOTFOUND, ledger.ECONFLICT:
			// The watchdog or someone else freed the port already (and
			// perhaps another holds it now): nothing of ours is left.
			return fmt.Sprintf("port %d was no longer ours to release (freed by someone else before; 'ledger who %d' says who)", port, port)
		}
		fmt.Fprintf(e.stderr, "ledger: could not release port %d (the watchdog will): %s\n", port, errorText(err))
		return fmt.Sprintf("port %d NOT released (the watchdog will free it)", port)
	}
	select {
	case s := <-sigs:
		release("interrupted before the command started")
		return exitError{code: 128 + signum(s)}
	default:
	}

	child, err := startChild(e, o, path, argv, port, portEnv(peers))
	if err != nil {
		reason := errorText(err)
		var ex exitError
		if errors.As(err, &ex) {
			reason = ex.msg
		}
		release(reason)
		return err
	}
	pid := child.Process.Pid
	if _, err := step(ctx, c, func(b *backend) (ledger.Allocation, error) { return b.RegisterPID(ctx, port, pid) }); err != nil {
		fmt.Fprintf(e.stderr, "ledger: could not register pid %d for port %d: %s\n", pid, port, errorText(err))
	}
	if !o.quiet {
		fmt.Fprintf(e.stderr, "ledger: port %d for %s, pid %d\n", port, safe(o.req.ServiceName), pid)
	}

	done := make(chan struct{})
	forwarding := make(chan struct{})
	go func() {
		defer close(forwarding)
		cancelled := ctx.Done()
		for {
			select {
			case s := <-sigs:
				if !reachedByTerminal(s, pid) {
					_ = child.Process.Signal(s)
				}
			case <-cancelled:
				_ = child.Process.Signal(syscall.SIGTERM)
				cancelled = nil
			case <-done:
				return
			}
		}
	}()
	werr := child.Wait()
	close(done)
	<-forwarding

	st := child.ProcessState
	if st == nil {
		release("lost track of the child: " + errorText(werr))
		return fmt.Errorf("wait for pid %d: %w", pid, werr)
	}
	reason, code := exitReason(st)
	outcome := release(reason)
	if !o.quiet {
		fmt.Fprintf(e.stderr, "ledger: %s: %s\n", outcome, reason)
	}
	if code == 0 {
		return nil
	}
	return exitError{code: code}
}

// withLockedOutput returns e with stdout and stderr safe to share with the
// child: a writer that is not a file is fed by a copying goroutine of
// os/exec while ledger run prints its own lines, so both go through one
// lock. Files are passed to the child as they are.
func withLockedOutput(e *env) *env {
	_, outFile := e.stdout.(*os.File)
	_, errFile := e.stderr.(*os.File)
	if outFile && errFile {
		return e
	}
	var mu sync.Mutex
	locked := *e
	if !outFile {
		locked.stdout = &lockedWriter{mu: &mu, w: e.stdout}
	}
	if !errFile {
		locked.stderr = &lockedWriter{mu: &mu, w: e.stderr}
	}
	return &locked
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// step opens the ledger (or reaches the daemon), does one thing and lets go
// at once, so that the file is never held while the child runs.
func step[T any](ctx context.Context, c *common, do func(*backend) (T, error)) (T, error) {
	b, err := connect(ctx, c)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := do(b)
	return v, closeWith(b, err)
}

// startChild starts the command with the port in its environment. With
// --socket it binds the port first and passes the listener as fd 3.
// peers are the LEDGER_PORT_<SERVICE> pairs of the services that hold
// ports.
func startChild(e *env, o runOptions, path string, argv []string, port int, peers []string) (*exec.Cmd, error) {
	env := withEnv(withoutPortVars(withoutListen(os.Environ())), peers...)
	env = withEnv(env, "PORT", strconv.Itoa(port), "LEDGER_PORT", strconv.Itoa(port), "LEDGER_SERVICE", o.req.ServiceName)
	if !o.socket {
		cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Stdin: e.stdin, Stdout: e.stdout, Stderr: e.stderr}
		if err := cmd.Start(); err != nil {
			return nil, startError(argv[0], err)
		}
		return cmd, nil
	}

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

// withEnv returns env with the given KEY, VALUE pairs set.
func withEnv(env []string, kv ...string) []string {
	out := make([]string, 0, len(env)+len(kv)/2)
	for _, v := range env {
		k, _, _ := strings.Cut(v, "=")
		if !slices.Contains(kvKeys(kv), k) {
			out = append(out, v)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, kv[i]+"="+kv[i+1])
	}
	return out
}

func kvKeys(kv []string) []string {
	keys := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		keys = append(keys, kv[i])
	}
	return keys
}

// withoutListen drops the socket-activation variables that `ledger run`
// itself may have inherited: they describe its own file descriptors, never
// the child's.
func withoutListen(env []string) []string {
	out := env[:0:0]
	for _, v := range env {
		if !strings.HasPrefix(v, "LISTEN_FDS=") && !strings.HasPrefix(v, "LISTEN_PID=") && !strings.HasPrefix(v, "LISTEN_FDNAMES=") {
			out = append(out, v)
		}
	}
	return out
}

// startError maps a failure to start the command to exit code 127 (not
// found) or 126 (found but not executable) with a clear message.
func startError(name string, err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	code := exitCannotRun
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		code = exitNotFound
	}
	return exitError{code: code, msg: fmt.Sprintf("cannot start %q: %v", name, err)}
}

// exitReason describes how the child ended and returns the exit code that
// `ledger run` passes on: the child's, or 128+N if signal N killed it.
func exitReason(st *os.ProcessState) (string, int) {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		n := int(ws.Signal())
		return fmt.Sprintf("killed by signal %d", n), 128 + n
	}
	code := st.ExitCode()
	return fmt.Sprintf("exited with status %d", code), code
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

func signum(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return 0
}

// errorText is the message of err as users see it.
func errorText(err error) string {
	if err == nil {
		return "unknown error"
	}
	if ledger.ErrorCode(err) != ledger.EINTERNAL {
		return ledger.ErrorMessage(err)
	}
	return err.Error()
}
