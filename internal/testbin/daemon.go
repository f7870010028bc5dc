package testbin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portledger/portledger/ledger"
)

// Generous bounds for a daemon: a slow machine makes a test slow, never
// wrong.
const (
	// ReadyTimeout is how long StartDaemon waits for a daemon to answer.
	ReadyTimeout = time.Minute
	// StopTimeout is how long a signalled daemon has to exit.
	StopTimeout = time.Minute
	// pingTimeout bounds one readiness check.
	pingTimeout = 2 * time.Second
)

// Daemon is a long-running process of a test, such as `ledger serve`: it
// runs until the test stops it, and its stderr is kept for the test's
// messages.
//
// Serve and StartDaemon return it once it answers, and make sure it does
// not outlive the test: if it still runs when the test ends, it is sent
// SIGTERM and must exit with 0 within StopTimeout, else the test fails
// with its stderr (and it is killed).
type Daemon struct {
	Cmd    *exec.Cmd
	Stderr *Buffer // what the process wrote to stderr so far
	Data   string  // the data directory, when started by Serve
	Addr   string  // the TCP address, host:port, when started by Serve with one

	done chan struct{} // closed when the process has exited
	err  error         // Wait's error, set before done closes
}

// Serve starts `ledger serve --addr addr` with flags on the data directory
// data, in the environment of Command for portRange, and waits until it
// answers GET /healthz: on addr, or on the data directory's socket when
// addr is "" (the socket alone).
func (b *Binaries) Serve(tb testing.TB, data, portRange, addr string, flags ...string) *Daemon {
	tb.Helper()
	cmd := b.Command(tb, data, portRange, append([]string{"serve", "--addr", addr}, flags...)...)
	ready := Healthz(addr)
	if addr == "" {
		ready = SocketHealthz(ledger.Layout{Dir: data}.Socket())
	}
	d := StartDaemon(tb, cmd, ready)
	d.Data, d.Addr = data, addr
	return d
}

// StartDaemon starts cmd, whose Stdout may be set and whose Stderr must
// not, and calls ready until it returns nil, each time with a context of a
// few seconds. It fails tb with the process's stderr if the process exits
// before it is ready, or if ReadyTimeout passes first. ready runs on the
// test's goroutine, so it may fail tb itself.
func StartDaemon(tb testing.TB, cmd *exec.Cmd, ready func(context.Context) error) *Daemon {
	tb.Helper()
	return startDaemon(tb, cmd, ready, ReadyTimeout)
}

func startDaemon(tb testing.TB, cmd *exec.Cmd, ready func(context.Context) error, timeout time.Duration) *Daemon {
	tb.Helper()
	d := &Daemon{Cmd: cmd, Stderr: &Buffer{}, done: make(chan struct{})}
	cmd.Stderr = d.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", d.name(), err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	tb.Cleanup(func() { d.cleanup(tb) })
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		err := ready(ctx)
		cancel()
		if err == nil {
			return d
		}
		select {
		case <-d.done:
			tb.Fatalf("%s exited before it answered (%v); stderr:\n%s", d.name(), d.err, d.Stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not answer within %s: %v; stderr:\n%s", d.name(), timeout, err, d.Stderr)
		}
	}
}

// cleanup stops a daemon that the test left running: SIGTERM, then SIGKILL
// after StopTimeout. Only a clean exit after SIGTERM passes.
func (d *Daemon) cleanup(tb testing.TB) {
	if d.Exited() {
		return
	}
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = d.Cmd.Process.Kill()
	}
	switch {
	case !d.exitWithin(StopTimeout):
		tb.Errorf("%s did not stop within %s of SIGTERM; stderr:\n%s", d.name(), StopTimeout, d.Stderr)
	case d.err != nil:
		tb.Errorf("%s: %v after SIGTERM at the end of the test; stderr:\n%s", d.name(), d.err, d.Stderr)
	}
}

// exitWithin waits up to timeout for the process to exit, and reports
// whether it did; if not, it kills it and waits for that.
func (d *Daemon) exitWithin(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		_ = d.Cmd.Process.Kill()
		<-d.done
		return false
	}
}

// name is how messages call the process: "ledger serve".
func (d *Daemon) name() string {
	name := filepath.Base(d.Cmd.Path)
	if len(d.Cmd.Args) > 1 {
		name += " " + d.Cmd.Args[1]
	}
	return name
}

// Pid returns the process ID of the daemon.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Exited reports whether the process has exited.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the daemon without waiting for it, and fails tb if
// it cannot be sent to a live process. A process that has exited already
// is left to Wait to report.
func (d *Daemon) Signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := d.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("signal %v to %s: %v", sig, d.name(), err)
	}
}

// Stop sends sig and waits for the process to exit; see Wait. A process
// that exited before is not signalled: Stop returns how it ended.
func (d *Daemon) Stop(tb testing.TB, sig syscall.Signal) (code int, signal syscall.Signal) {
	tb.Helper()
	if !d.Exited() {
		d.Signal(tb, sig)
	}
	return d.Wait(tb)
}

// Kill kills the process and waits for it.
func (d *Daemon) Kill(tb testing.TB) {
	tb.Helper()
	if err := d.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("kill %s: %v", d.name(), err)
	}
	d.Wait(tb)
}

// Wait waits for the process to exit and returns its exit code, or -1 and
// the signal when a signal ended it. It fails tb, killing the process, if
// it has not exited within StopTimeout.
func (d *Daemon) Wait(tb testing.TB) (code int, signal syscall.Signal) {
	tb.Helper()
	if !d.exitWithin(StopTimeout) {
		tb.Fatalf("%s did not exit within %s; stderr:\n%s", d.name(), StopTimeout, d.Stderr)
	}
	st := d.Cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal()
	}
	return st.ExitCode(), 0
}

// Token returns the bearer token the daemon serves over TCP: --token's,
// else the one `ledger serve` wrote in its data directory.
func (d *Daemon) Token(tb testing.TB) string {
	tb.Helper()
	if i := slices.Index(d.Cmd.Args, "--token"); i >= 0 && i+1 < len(d.Cmd.Args) {
		return d.Cmd.Args[i+1]
	}
	return TokenFile(tb, d.Data)
}

// TokenFile returns the token that `ledger serve` wrote in the data
// directory data at its first start.
func TokenFile(tb testing.TB, data string) string {
	tb.Helper()
	b, err := os.ReadFile(ledger.Layout{Dir: data}.Token())
	if err != nil {
		tb.Fatalf("the daemon's token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// Healthz returns a readiness check for StartDaemon: GET /healthz on the
// TCP address addr answers 200.
func Healthz(addr string) func(context.Context) error {
	return healthz(http.DefaultClient, "http://"+addr+"/healthz")
}

// SocketHealthz returns a readiness check for StartDaemon: GET /healthz on
// the unix socket path answers 200.
func SocketHealthz(path string) func(context.Context) error {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return healthz(&http.Client{Transport: tr}, "http://ledger/healthz")
}

func healthz(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	}
}
