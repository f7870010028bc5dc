package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
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
it, and releases the port when it exits, with the exit status as the reason
(unless a process it started still listens on the port, as the server of a
wrapper such as bash -c 'server & wait' does: that process holds it then).
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
	if o.socket && !fdPassing {
		return usagef("--socket hands the bound socket over as fd 3, which works on Linux and macOS only; without it the service binds PORT itself")
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
	var used string // the data directory of the ledger that allocated
	a, err := step(ctx, c, func(b *backend) (ledger.Allocation, error) {
		used = b.layout.Dir
		a, err := b.Allocate(ctx, o.req)
		if err == nil {
			peers, _ = b.Allocations(ctx, ledger.AllocationQuery{}) // without them the child still runs
		}
		return a, err
	})
	if err != nil {
		return err
	}
	if c.addr == "" && used != "" && absDir(used) != absDir(c.data) {
		// The port came from a daemon that serves another directory (no
		// --data given): every later step goes to that ledger, through its
		// daemon or, should the daemon stop meanwhile, its file; never to
		// the default one, which never held the port.
		c.data = used
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
				terminate(child)
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
	if kept := keepForHeir(ctx, e, c, o, port, pid, reason); kept {
		if code == 0 {
			return nil
		}
		return exitError{code: code}
	}
	outcome := release(reason)
	if !o.quiet {
		fmt.Fprintf(e.stderr, "ledger: %s: %s\n", outcome, reason)
	}
	if code == 0 {
		return nil
	}
	return exitError{code: code}
}

// keepForHeir hands the port to the process that carries on the child's
// service when the child is gone while the port is still listened on (the
// child was a wrapper: `bash -c 'server & wait'`, `npm start`, a daemon that
// forks): a listener the command started (of ledger run's process group),
// else the port's only listener, is registered as the holder's process
// instead of releasing the port under it; the watchdog releases the port
// when that process is gone. It says what it did and reports whether the
// port was kept.
func keepForHeir(ctx context.Context, e *env, c *common, o runOptions, port, child int, reason string) bool {
	heir, why := listeningHeir(ctx, port, child)
	if heir == 0 {
		return false
	}
	rctx := context.WithoutCancel(ctx)
	if _, err := step(rctx, c, func(b *backend) (ledger.Allocation, error) { return b.RegisterPID(rctx, port, heir) }); err != nil {
		fmt.Fprintf(e.stderr, "ledger: pid %d still listens on port %d, but it could not be recorded as its holder: %s\n", heir, port, errorText(err))
		return false
	}
	cmd := "?"
	if info, err := commands.LookupProcess(heir); err == nil && info.Cmdline != "" {
		cmd = info.Cmdline
	}
	fmt.Fprintf(e.stderr, "ledger: pid %d %s, but pid %d (%s), %s, still listens on port %d: the port stays held by %s, now under pid %d (the watchdog releases it when that process is gone; 'ledger release %d' frees it)\n",
		child, reason, heir, safe(clip(cmd, 80)), why, port, safe(o.req.ServiceName), heir, port)
	return true
}

// listeningHeir picks the process that listens on port once the child is
// gone: one of ledger run's own process group (started by the command),
// else the only listener. It returns 0 when nothing listens or no single
// process can be told.
func listeningHeir(ctx context.Context, port, child int) (int, string) {
	socks, err := watchdog.PortSockets(ctx, port)
	if err != nil {
		return 0, ""
	}
	var pids []int
	for _, s := range socks {
		if s.PID > 0 && s.PID != os.Getpid() && s.PID != child && !slices.Contains(pids, s.PID) {
			pids = append(pids, s.PID)
		}
	}
	slices.Sort(pids)
	for _, p := range pids {
		if sameJob(p) {
			return p, "started by the command"
		}
	}
	if len(pids) == 1 {
		return pids[0], "the only listener on the port"
	}
	return 0, ""
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

	return startWithSocket(e, o, path, argv, port, env)
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
