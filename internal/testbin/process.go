package testbin

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Generous bounds: a slow machine makes a test slow, never wrong.
const (
	// RunTimeout is how long Run lets a command run before it kills it
	// and fails the test.
	RunTimeout = time.Minute
	// WaitTimeout is how long WaitFor polls before it fails the test.
	WaitTimeout = time.Minute
)

// Env returns the environment of a ledger process of a test: the test's own
// environment with LEDGER_DATA and LEDGER_RANGE set (and
// LEDGER_ALLOW_EPHEMERAL=1: the tests' ranges lie in the kernel's ephemeral
// ports on purpose, away from the developer's services), and none of the
// developer's LEDGER_ADDR, LEDGER_TOKEN or LEDGER_SERVICE. portRange keeps
// each test package's ports away from the others' and from the developer's
// services. XDG_RUNTIME_DIR is DATA.run, next to the data directory, so
// that the daemons of a test announce themselves to that test's processes
// alone, and never to the developer's shells.
func Env(data, portRange string) []string {
	return append(os.Environ(), "LEDGER_DATA="+data, "LEDGER_RANGE="+portRange, "LEDGER_ALLOW_EPHEMERAL=1",
		"LEDGER_ADDR=", "LEDGER_TOKEN=", "LEDGER_SERVICE=", "XDG_RUNTIME_DIR="+data+".run")
}

// Command returns the ledger binary with args, set up by Env for a data
// directory and a port range. It builds the binary on first use and fails
// tb if the build failed.
//
// LEDGER_RANGE reaches `ledger serve` alone (its range at start): no other
// command changes the range. So the first Command of a data directory that
// is not a `serve` first runs `ledger range set` with portRange, as a user
// would once, and the test's commands then allocate inside portRange. Its
// failure is left for the test's own command to meet (a damaged ledger, a
// read-only directory).
func (b *Binaries) Command(tb testing.TB, data, portRange string, args ...string) *exec.Cmd {
	tb.Helper()
	bin := b.Ledger(tb)
	if len(args) == 0 || args[0] != "serve" {
		b.setRange(bin, data, portRange)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = Env(data, portRange)
	return cmd
}

// setRange runs `ledger range set portRange` on data, once per data
// directory and range.
func (b *Binaries) setRange(bin, data, portRange string) {
	key := data + "\x00" + portRange
	b.mu.Lock()
	if b.ranges == nil {
		b.ranges = map[string]*sync.Once{}
	}
	once := b.ranges[key]
	if once == nil {
		once = &sync.Once{}
		b.ranges[key] = once
	}
	b.mu.Unlock()
	once.Do(func() {
		cmd := exec.Command(bin, "range", "set", portRange)
		cmd.Env = Env(data, portRange)
		_ = cmd.Run()
	})
}

// Run runs cmd to the end and returns its stdout, its stderr and its exit
// code. It fails tb if cmd cannot start, or kills it and fails tb if it has
// not finished within RunTimeout. cmd's Stdout and Stderr must be unset.
func Run(tb testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	tb.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %v: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(RunTimeout):
		_ = cmd.Process.Kill()
		<-done
		tb.Fatalf("%v did not finish within %s; stderr:\n%s", cmd.Args, RunTimeout, errb.String())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		tb.Fatalf("run %v: %v", cmd.Args, err)
	}
	return out.String(), errb.String(), code
}

// FreeAddr returns a loopback address, 127.0.0.1:port, whose port nothing
// listens on right now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WaitFor polls cond every 20ms until it holds, and fails tb, naming what it
// waited for, if WaitTimeout passes first. cond runs on the test's goroutine,
// so it may fail tb itself, for example when a process it waits on exited.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, WaitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Buffer collects a process's output while the test reads it. The zero
// Buffer is empty and ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
