package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// systemPython is Debian's interpreter, the one python3-portpicker installs
// the portpicker module for; a python3 earlier on PATH may be another one.
const systemPython = "/usr/bin/python3"

// requirePortpicker fails the test, never skips it, when the real client is
// missing: the portserver tests must run with Google's own code.
func requirePortpicker(t *testing.T) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import portpicker").CombinedOutput()
	if err != nil {
		t.Fatalf("the portserver tests need portpicker for %s: apt-get install python3-portpicker (%v: %s)", systemPython, err, out)
	}
}

// portpickerScript asks for a port the way every portpicker user does,
// prints it, and holds it (stays alive) until its stdin closes.
const portpickerScript = `
import sys, portpicker
print(portpicker.pick_unused_port(), flush=True)
sys.stdin.read()
`

// picker is one python process that asked for a port.
type picker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *testbin.Buffer
	port   int
}

// startPickers starts n portpicker processes at once with
// PORTSERVER_ADDRESS=addr and returns them with the port each printed.
func startPickers(t *testing.T, n int, addr string) []*picker {
	t.Helper()
	ps := make([]*picker, n)
	for i := range ps {
		cmd := exec.Command(systemPython, "-c", portpickerScript)
		cmd.Env = append(os.Environ(), "PORTSERVER_ADDRESS="+addr)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = &picker{cmd: cmd, stdin: stdin, stderr: &testbin.Buffer{}}
		cmd.Stderr = ps[i].stderr
		cmd.WaitDelay = 5 * time.Second
	}
	t.Cleanup(func() {
		for _, p := range ps {
			if p.cmd.Process != nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, p := range ps {
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			line, err := readLineWithin(bufio.NewReader(stdout), 30*time.Second)
			if err == nil {
				p.port, err = strconv.Atoi(strings.TrimSpace(line))
			}
			if err != nil {
				errs[i] = fmt.Errorf("picker %d: %v; stderr: %s", i, err, p.stderr.String())
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ps
}

// readLineWithin reads one line, or fails after d.
func readLineWithin(r *bufio.Reader, d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- res{s, err}
	}()
	select {
	case v := <-ch:
		return v.s, v.err
	case <-time.After(d):
		return "", fmt.Errorf("no line within %s", d)
	}
}

// TestPortpickerGetsLedgerPorts runs Google's portpicker client in 20
// processes at once against `ledger serve --portserver`, on an abstract
// name and on a socket path: each gets a port of its own from the
// portserver's part of the range, `ledger status` shows it held by that
// process, and once the processes exit the watchdog frees every port and
// says why.
func TestPortpickerGetsLedgerPorts(t *testing.T) {
	t.Parallel() // its own data directories and portserver sockets; it checks ports against its own part of the range only
	requirePortpicker(t)
	const n = 20
	const part = "30060-30100"
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"abstract name", func(t *testing.T) string { return fmt.Sprintf("@ledger-test-%d", os.Getpid()) }},
		{"socket path", func(t *testing.T) string { return filepath.Join(t.TempDir(), "portserver.sock") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			data := t.TempDir()
			addr := tc.addr(t)
			startServe(t, data, "--interval", "100ms", "--portserver", addr, "--portserver-range", part)

			ps := startPickers(t, n, addr)
			seen := map[int]bool{}
			for _, p := range ps {
				is.True(p.port >= 30060 && p.port <= 30100) // from the portserver's part of the range, not portpicker's fallback
				is.True(!seen[p.port])                      // and a port of its own
				seen[p.port] = true
				is.True(!strings.Contains(p.stderr.String(), "portserver")) // portpicker reported no trouble with the server
			}

			st := statusOf(t, data)
			held := map[int]ledger.Allocation{}
			for _, a := range st.PortManager.Allocations {
				held[a.Port] = a
			}
			out, errOut, code := ledgerOut(t, data, "status")
			is.Equal(code, 0) // plain status
			is.Equal(errOut, "")
			for _, p := range ps {
				a, ok := held[p.port]
				is.True(ok)                                                     // status shows the port
				is.Equal(a.ServiceName, "portpicker")                           // under the portserver's service name
				is.Equal(a.PID, p.cmd.Process.Pid)                              // held by the process that asked
				is.True(a.PIDStartedAt != nil)                                  // with its start time
				is.True(strings.Contains(a.StartedBy, "python3"))               // started_by is its command line
				is.True(strings.Contains(out, strconv.Itoa(p.cmd.Process.Pid))) // the plain status names the pid
			}

			for _, p := range ps {
				is.NoErr(p.stdin.Close()) // let the process exit
			}
			for _, p := range ps {
				_ = p.cmd.Wait()
			}
			waitUntil(t, nil, func() bool { return len(statusOf(t, data).PortManager.Allocations) == 0 })
			for _, p := range ps {
				evs := historyOf(t, data, p.port)
				last := evs[len(evs)-1]
				is.True(last.Released != nil) // released
				want := fmt.Sprintf("process %d exited", p.cmd.Process.Pid)
				is.True(strings.Contains(last.Released.Reason, want)) // because its process is gone
			}
		})
	}
}
