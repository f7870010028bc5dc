package portserver_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

var bins testbin.Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	_ = bins.Remove()
	os.Exit(code)
}

// systemPython is Debian's interpreter, the one python3-portpicker
// installs the portpicker module for.
const systemPython = "/usr/bin/python3"

// TestServeTakesItsAddressFromTheEnvironment starts `ledger serve` with
// LEDGER_PORTSERVER in its environment (no --portserver flag) and
// --portserver-service, and lets Google's portpicker ask it: the port comes
// from the ledger under that service name, held by the asking process with
// its command line, as `ledger history --service NAME --since 1h` shows, and
// the watchdog frees it once the process is gone.
func TestServeTakesItsAddressFromTheEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the abstract socket namespace is Linux's")
	}
	is := is.New(t)
	if out, err := exec.Command(systemPython, "-c", "import portpicker").CombinedOutput(); err != nil {
		t.Fatalf("this test needs portpicker for %s: apt-get install python3-portpicker (%v: %s)", systemPython, err, out)
	}
	data, rng := t.TempDir(), testRange.String()
	addr := fmt.Sprintf("@ledger-portserver-env-%d", os.Getpid())
	cmd := bins.Command(t, data, rng, "serve", "--addr", "", "--interval", "100ms", "--portserver-service", "pytest-suite")
	cmd.Env = append(cmd.Env, "LEDGER_PORTSERVER="+addr)
	testbin.StartDaemon(t, cmd, testbin.SocketHealthz(ledger.Layout{Dir: data}.Socket()))

	py := exec.Command(systemPython, "-c", "import os, portpicker; print(os.getpid(), portpicker.pick_unused_port())")
	py.Env = append(os.Environ(), "PORTSERVER_ADDRESS="+addr)
	out, errOut, code := testbin.Run(t, py)
	is.Equal(code, 0) // portpicker ran
	fields := strings.Fields(out)
	is.Equal(len(fields), 2) // its pid and its port
	pid, err := strconv.Atoi(fields[0])
	is.NoErr(err)
	port, err := strconv.Atoi(fields[1])
	is.NoErr(err)
	is.True(testRange.Contains(port))                // a port of the ledger's range, not portpicker's own pick
	is.True(!strings.Contains(errOut, "portserver")) // portpicker reported no trouble with the server

	history := func() []ledger.Event {
		stdout, stderr, code := testbin.Run(t, bins.Command(t, data, rng, "history", "--json", "--service", "pytest-suite", "--since", "1h"))
		if code != 0 {
			t.Fatalf("ledger history: exit %d: %s", code, stderr)
		}
		var h struct {
			Events []ledger.Event `json:"events"`
		}
		if err := json.Unmarshal([]byte(stdout), &h); err != nil {
			t.Fatalf("history --json: %v", err)
		}
		return h.Events
	}
	testbin.WaitFor(t, "the watchdog frees the port of the exited process", func() bool {
		evs := history()
		return len(evs) > 0 && evs[len(evs)-1].Type == ledger.EventReleased
	})
	evs := history()
	first := evs[0]
	is.Equal(first.Type, ledger.EventAllocated)                        // the allocation
	is.Equal(first.Port, port)                                         // of the port portpicker printed
	is.Equal(first.Allocated.ServiceName, "pytest-suite")              // under --portserver-service
	is.Equal(first.Allocated.PID, pid)                                 // held by the asking process
	is.True(first.Allocated.PIDStarted != 0)                           // with its start time
	is.True(strings.Contains(first.Allocated.StartedBy, "portpicker")) // started_by is its command line
	last := evs[len(evs)-1]
	is.Equal(last.Port, port)
	is.True(strings.Contains(last.Released.Reason, fmt.Sprintf("process %d exited", pid))) // freed with the reason
}
