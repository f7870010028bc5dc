package webtest

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// webRange keeps these tests' ports away from the other packages' tests.
const webRange = "31100-31200"

var bins testbin.Binaries

// daemon is a real `ledger serve` on a scratch data directory, serving the
// API and the dashboard on a loopback TCP address.
type daemon struct {
	*testbin.Daemon
	base string // http://host:port
	rng  string // the managed range
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
	d := bins.Serve(tb, data, portRange, testbin.FreeAddr(tb), flags...)
	return &daemon{Daemon: d, base: "http://" + d.Addr, rng: portRange}
}

// ledger runs a one-shot CLI command against the daemon's data directory
// and returns its stdout; it fails tb on a non-zero exit.
func (d *daemon) ledger(tb testing.TB, args ...string) string {
	tb.Helper()
	out, errOut, code := testbin.Run(tb, bins.Command(tb, d.Data, d.rng, args...))
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

func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowser()
	_ = bins.Remove()
	_ = bench1M.Remove()
	os.Exit(code)
}
