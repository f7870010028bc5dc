package watchdog_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
)

// childEnv makes the test binary act as a child process instead of running
// tests: "listen:PORT" listens on 127.0.0.1:PORT, "sleep" only waits. Either
// prints "ready" once set up and then lives until it is killed.
const childEnv = "WATCHDOG_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		runChild(mode)
		return
	}
	os.Exit(m.Run())
}

func runChild(mode string) {
	if port, ok := strings.CutPrefix(mode, "listen:"); ok {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
	}
	fmt.Println("ready")
	select {} // until killed
}

// startChild starts the test binary as a child process in the given mode and
// waits until it says it is ready. The child is killed at the end of the test.
func startChild(t testing.TB, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("child said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("child %s: %v", mode, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("child %s: not ready after 30s", mode)
	}
	return cmd
}

// kill ends a child with SIGKILL and reaps it, so its PID is really gone.
func kill(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// mustLedger opens a real bbolt log under t.TempDir() with the real commands
// package on top, sets the managed range and closes both at the end.
func mustLedger(t testing.TB, r ledger.Range, cfg commands.Config) *commands.Ledger {
	t.Helper()
	log, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = log
	svc, err := commands.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Error(err)
		}
		if err := log.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := svc.SetRange(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return svc
}

// fast are watchdog options for tests: no start grace unless a test sets one,
// two failures in a row, a short HTTP timeout.
func fast() watchdog.Options {
	return watchdog.Options{Interval: 5 * time.Millisecond, StartGrace: -1, HTTPTimeout: 500 * time.Millisecond, Failures: 2}
}

// sweepUntil sweeps until cond holds about the allocation on port (nil when
// the port is free), and fails the test after a generous deadline. It
// returns how many sweeps it took.
func sweepUntil(t testing.TB, w *watchdog.Watchdog, svc ledger.Service, port int, what string, cond func(a *ledger.Allocation) bool) int {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for n := 1; ; n++ {
		if _, err := w.Sweep(ctx); err != nil {
			t.Fatalf("sweep: %v", err)
		}
		a, err := svc.Allocation(ctx, port, ledgerNow)
		var got *ledger.Allocation
		switch {
		case err == nil:
			got = &a
		case ledger.ErrorCode(err) != ledger.ENOTFOUND:
			t.Fatalf("allocation %d: %v", port, err)
		}
		if cond(got) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d: not %s after %d sweeps (now %+v)", port, what, n, got)
		}
		time.Sleep(time.Millisecond)
	}
}

// ledgerNow is the zero point: the registry as it is now.
var ledgerNow = ulid.ULID{}

// health returns a condition that holds when the allocation is in state h.
func health(h ledger.Health) func(a *ledger.Allocation) bool {
	return func(a *ledger.Allocation) bool { return a != nil && a.HealthStatus == h }
}

// released holds when the port is free.
func released(a *ledger.Allocation) bool { return a == nil }

// events returns the events of one type on one port, oldest first.
func events(t testing.TB, svc ledger.Service, port int, typ ledger.EventType) []ledger.Event {
	t.Helper()
	all, err := svc.History(context.Background(), ledger.HistoryQuery{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Event
	for _, e := range all {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// listenOn listens on 127.0.0.1:port in this process until the test ends.
func listenOn(t testing.TB, port int) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Error(err)
		}
	})
	return l
}
