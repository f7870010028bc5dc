package webtest

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// webRange keeps these tests' ports away from the other packages' tests.
const webRange = "31100-31200"

var bins testbin.Binaries

// daemon is a real `ledger serve` on a scratch data directory, serving the
// API and the dashboard on a loopback TCP address.
type daemon struct {
	data string
	addr string // host:port
	base string // http://host:port
	cmd  *exec.Cmd
	rng  string // the managed range
	// stderr is what the daemon logged so far.
	stderr *testbin.Buffer
}

// startDaemon starts `ledger serve` with extra flags on a free loopback
// address and stops it with SIGTERM when the test ends.
func startDaemon(tb testing.TB, data string, flags ...string) *daemon {
	tb.Helper()
	return startDaemonRange(tb, data, webRange, flags...)
}

// startDaemonRange is startDaemon with another managed range.
func startDaemonRange(tb testing.TB, data, portRange string, flags ...string) *daemon {
	tb.Helper()
	addr := testbin.FreeAddr(tb)
	args := append([]string{"serve", "--addr", addr}, flags...)
	cmd := bins.Command(tb, data, portRange, args...)
	errOut := &testbin.Buffer{}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-served:
			if err != nil {
				tb.Errorf("daemon: %v\n%s", err, errOut.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			tb.Errorf("daemon did not stop; stderr:\n%s", errOut.String())
		}
	})
	d := &daemon{data: data, addr: addr, base: "http://" + addr, cmd: cmd, rng: portRange, stderr: errOut}
	testbin.WaitFor(tb, "daemon answers on "+addr, func() bool {
		select {
		case err := <-served:
			tb.Fatalf("daemon exited: %v\n%s", err, errOut.String())
		default:
		}
		resp, err := http.Get(d.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d
}

// ledger runs a one-shot CLI command against the daemon's data directory
// and returns its stdout; it fails tb on a non-zero exit.
func (d *daemon) ledger(tb testing.TB, args ...string) string {
	tb.Helper()
	out, errOut, code := testbin.Run(tb, bins.Command(tb, d.data, d.rng, args...))
	if code != 0 {
		tb.Fatalf("ledger %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// allocate allocates a port for service with the CLI and returns it.
func (d *daemon) allocate(tb testing.TB, service string, flags ...string) int {
	tb.Helper()
	out := d.ledger(tb, append([]string{"allocate", "--service", service}, flags...)...)
	port, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		tb.Fatalf("allocate printed %q, not a port", out)
	}
	return port
}

// status returns `ledger status --json [--at at]`.
func (d *daemon) status(tb testing.TB, at string) ledger.Status {
	tb.Helper()
	args := []string{"status", "--json"}
	if at != "" {
		args = append(args, "--at", at)
	}
	var st ledger.Status
	if err := json.Unmarshal([]byte(d.ledger(tb, args...)), &st); err != nil {
		tb.Fatalf("status --json: %v", err)
	}
	return st
}

// token returns the daemon's bearer token: the file that `ledger serve`
// made in the data directory at its first start (or --token's, which it
// does not write).
func (d *daemon) token(tb testing.TB) string {
	tb.Helper()
	tok, err := os.ReadFile(ledger.Layout{Dir: d.data}.Token())
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}

func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowser()
	_ = bins.Remove()
	_ = bench1M.Remove()
	os.Exit(code)
}
