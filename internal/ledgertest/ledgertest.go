// Package ledgertest is the test kit shared by the tests of every package,
// in the spirit of bbolt's internal/btesting: a log opener that checks the
// file when the test ends, a stepped clock, a checker of a ledger file left
// by a daemon, and a live process to register. Every helper takes a testing.TB, calls tb.Helper and
// fails the test itself, so a test reads as what it checks. The real
// binaries, and the daemon a test starts from them, are internal/testbin's.
package ledgertest

import (
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portledger/portledger/ledger"
)

// MustOpenLog opens a new log under tb.TempDir() with opts and, when the
// test ends, runs bbolt's consistency check on it and closes it.
func MustOpenLog(tb testing.TB, opts ledger.Options) *ledger.Log {
	tb.Helper()
	return MustOpenLogAt(tb, filepath.Join(tb.TempDir(), "ledger.db"), opts)
}

// MustOpenLogAt is MustOpenLog for a given path (a data directory's
// ledger.Layout.DB(), say).
func MustOpenLogAt(tb testing.TB, path string, opts ledger.Options) *ledger.Log {
	tb.Helper()
	l, err := ledger.Open(path, opts)
	if err != nil {
		tb.Fatalf("open log: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Check(); err != nil {
			tb.Errorf("check log: %v", err)
		}
		if err := l.Close(); err != nil {
			tb.Errorf("close log: %v", err)
		}
	})
	return l
}

// CheckLog opens the ledger file of the data directory data after the
// process that held it has stopped, runs bbolt's consistency check and
// returns the number of events. It fails the test when the file cannot be
// opened or does not hold together.
func CheckLog(tb testing.TB, data string) uint64 {
	tb.Helper()
	log, err := ledger.Open(ledger.Layout{Dir: data}.DB(), ledger.Options{})
	if err != nil {
		tb.Fatalf("open log: %v", err)
	}
	defer log.Close()
	if err := log.Check(); err != nil {
		tb.Fatalf("log check: %v", err)
	}
	n, err := log.Count()
	if err != nil {
		tb.Fatalf("count events: %v", err)
	}
	return n
}

// Sleeper starts a process that is not the test's own (the ledger refuses
// its own pid), for tests that register a live pid, and returns its pid; the
// process is killed and reaped when the test ends.
func Sleeper(tb testing.TB) int {
	tb.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start sleep: %v", err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// Clock is a clock that a test sets and steps by hand; the log and the
// commands can share it (ledger.Options.Now, commands.Config.Now), so event
// times are the test's times. Each reading returns the clock's time and
// then moves it forward by its step (0: it stands still until Set or Add).
// It is safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

// NewClock returns a clock at start that moves by step on every reading.
func NewClock(start time.Time, step time.Duration) *Clock {
	return &Clock{t: start, step: step}
}

// Now returns the clock's time, then moves it by its step.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Add moves the clock by d, backwards when d is negative (as NTP or a VM
// resume may do).
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
