package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// runRange is the managed range of the `ledger run` tests: away from the
// developer's services and from the other tests' ports.
const runRange = "30000-30100"

// runBinaries builds the real ledger binary and the test service
// (testdata/runchild) once per test process.
func runBinaries(t *testing.T) (ledgerPath, childPath string) {
	t.Helper()
	return bins.Ledger(t), bins.Program(t, "./cmd/ledger/testdata/runchild")
}

// runCmd returns the real binary set up for a data directory. It runs in a
// process group of its own, as under a shell's job control, so that its
// child is never in a terminal's foreground group when the tests run in one
// (a terminal's Ctrl-C reaches that group itself, and ledger run does not
// send it twice).
func runCmd(t *testing.T, data string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := bins.Command(t, data, runRange, args...)
	ownProcessGroup(cmd)
	return cmd
}

// ledgerRun is a `ledger run` started by a test.
type ledgerRun struct {
	cmd    *exec.Cmd
	stderr *testbin.Buffer
	done   chan struct{}
	code   int
}

// startRun starts `ledger run` with the test service and the given
// arguments of ledger run (before "--") and of the service (after it).
func startRun(t *testing.T, data string, runArgs []string, childArgs ...string) *ledgerRun {
	t.Helper()
	_, child := runBinaries(t)
	args := append(append([]string{"run"}, runArgs...), "--", child)
	cmd := runCmd(t, data, append(args, childArgs...)...)
	r := &ledgerRun{cmd: cmd, stderr: &testbin.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, r.stderr
	// A child that outlives a killed ledger run keeps the stderr pipe open:
	// wait for the pipe only this long after ledger run exits.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.done)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			r.code = -1
		}
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			killGroup(cmd.Process.Pid)
			<-r.done
		}
	})
	return r
}

// wait waits for `ledger run` to exit and returns its exit code.
func (r *ledgerRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(60 * time.Second):
		t.Fatalf("ledger run did not exit; stderr:\n%s", r.stderr.String())
		return 0
	}
}

// childInfo is what testdata/runchild saw.
type childInfo struct {
	PID         int               `json:"pid"`
	Port        string            `json:"port"`
	LedgerPort  string            `json:"ledger_port"`
	Service     string            `json:"ledger_service"`
	ListenPID   string            `json:"listen_pid"`
	ListenFDs   string            `json:"listen_fds"`
	FDNames     string            `json:"listen_fdnames"`
	FromFD3     bool              `json:"from_fd3"`
	ListenError string            `json:"listen_error"`
	PortVars    map[string]string `json:"port_vars"`
}

// readInfo waits for the service to write its info file.
func readInfo(t *testing.T, r *ledgerRun, path string) childInfo {
	t.Helper()
	var in childInfo
	waitUntil(t, r, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && json.Unmarshal(b, &in) == nil
	})
	if in.ListenError != "" {
		t.Fatalf("the service could not listen: %s", in.ListenError)
	}
	return in
}

// waitUntil polls cond until it holds, failing if r exits first or a
// generous deadline passes.
func waitUntil(t *testing.T, r *ledgerRun, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, "condition", func() bool {
		if cond() {
			return true
		}
		if r != nil {
			select {
			case <-r.done:
				t.Fatalf("ledger run exited with %d; stderr:\n%s", r.code, r.stderr.String())
			default:
			}
		}
		return false
	})
}

// ledgerOut runs a one-shot ledger command and returns stdout, stderr and
// the exit code.
func ledgerOut(t *testing.T, data string, args ...string) (string, string, int) {
	t.Helper()
	return testbin.Run(t, runCmd(t, data, args...))
}

// statusOf returns the registry as `ledger status --json` prints it.
func statusOf(t *testing.T, data string) ledger.Status {
	t.Helper()
	out, errOut, code := ledgerOut(t, data, "status", "--json")
	if code != 0 {
		t.Fatalf("ledger status: exit %d: %s", code, errOut)
	}
	var st ledger.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// historyOf returns the events of a port as `ledger history --json` prints them.
func historyOf(t *testing.T, data string, port int) []ledger.Event {
	t.Helper()
	return history(t, data, "--port", strconv.Itoa(port))
}

// history returns the events that `ledger history --json` prints with the
// given filter flags.
func history(t *testing.T, data string, filter ...string) []ledger.Event {
	t.Helper()
	out, errOut, code := ledgerOut(t, data, append([]string{"history", "--json"}, filter...)...)
	if code != 0 {
		t.Fatalf("ledger history: exit %d: %s", code, errOut)
	}
	var h struct {
		Events []ledger.Event `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	return h.Events
}

// lastRelease returns the reason of the last release of port.
func lastRelease(t *testing.T, data string, port int) string {
	t.Helper()
	evs := historyOf(t, data, port)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Released != nil {
			return evs[i].Released.Reason
		}
	}
	t.Fatalf("no release of port %d in %d events", port, len(evs))
	return ""
}

// get fetches the service's info over HTTP on port.
func get(t *testing.T, port int) childInfo {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatalf("GET port %d: %v", port, err)
	}
	defer resp.Body.Close()
	var in childInfo
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		t.Fatalf("GET port %d: %v", port, err)
	}
	return in
}

func TestRunThreeServicesAtOnce(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	services := []string{"grace_backend", "learning", "remote"}
	runs := make([]*ledgerRun, len(services))
	for i, s := range services {
		runs[i] = startRun(t, data, []string{"--service", s, "--purpose", "test " + s},
			"-info", filepath.Join(dir, s+".json"))
	}
	infos := make([]childInfo, len(services))
	ports := map[int]bool{}
	for i, s := range services {
		infos[i] = readInfo(t, runs[i], filepath.Join(dir, s+".json"))
		is.Equal(infos[i].Port, infos[i].LedgerPort) // PORT and LEDGER_PORT agree
		is.Equal(infos[i].Service, s)                // LEDGER_SERVICE names the service
		is.Equal(infos[i].ListenFDs, "")             // nothing inherited without --socket
		p, err := strconv.Atoi(infos[i].Port)
		is.NoErr(err)
		ports[p] = true
		is.Equal(get(t, p).PID, infos[i].PID) // each service answers on its own PORT
	}
	is.Equal(len(ports), 3) // three distinct ports

	// The registry names each child's PID, never ledger run's; it shows
	// once the PID is registered, just after the child starts.
	for i, s := range services {
		var a ledger.Allocation
		waitUntil(t, runs[i], func() bool {
			for _, x := range statusOf(t, data).PortManager.Allocations {
				if x.ServiceName == s && x.PID != 0 {
					a = x
					return true
				}
			}
			return false
		})
		is.Equal(a.PID, infos[i].PID)                 // the child's PID
		is.True(a.PID != runs[i].cmd.Process.Pid)     // not ledger run's
		is.Equal(strconv.Itoa(a.Port), infos[i].Port) // on the child's port
		is.Equal(a.StartedBy, "ledger run")
		is.Equal(a.Purpose, "test "+s)
	}

	for _, r := range runs {
		is.NoErr(r.cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, r := range runs {
		is.Equal(r.wait(t), 0) // the child's exit code
	}
	is.Equal(len(statusOf(t, data).PortManager.Allocations), 0) // every port released
}

func TestRunSocketActivation(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	info := filepath.Join(dir, "info.json")
	r := startRun(t, data, []string{"--service", "api", "--socket", "--health", "/health"}, "-info", info)
	in := readInfo(t, r, info)
	is.True(in.FromFD3)                          // the service took fd 3
	is.Equal(in.ListenFDs, "1")                  // LISTEN_FDS
	is.Equal(in.ListenPID, strconv.Itoa(in.PID)) // LISTEN_PID is the service's own PID
	is.Equal(in.FDNames, "api")                  // LISTEN_FDNAMES names the service
	port, err := strconv.Atoi(in.Port)
	is.NoErr(err)
	is.Equal(get(t, port).PID, in.PID) // it accepts connections on the socket it was handed

	// No other process can take the port.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", in.Port))
	if err == nil {
		ln.Close()
	}
	is.True(err != nil) // a competitor cannot bind the port

	var a ledger.Allocation
	waitUntil(t, r, func() bool {
		for _, x := range statusOf(t, data).PortManager.Allocations {
			if x.Port == port && x.PID != 0 {
				a = x
				return true
			}
		}
		return false
	})
	is.Equal(a.PID, in.PID)                                                // the registered PID is the service's
	is.Equal(a.HealthURL, fmt.Sprintf("http://127.0.0.1:%d/health", port)) // --health on the allocated port
	is.True(strings.Contains(a.Cmdline, "runchild"))                       // the command, not ledger's helper

	is.NoErr(r.cmd.Process.Signal(syscall.SIGTERM))
	is.Equal(r.wait(t), 0)
	is.Equal(lastRelease(t, data, port), "exited with status 0")
}

func TestRunForwardsSignals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		marker string // what the service writes; "" when the signal kills it
		code   int
		reason string
	}{
		{name: "SIGTERM", sig: syscall.SIGTERM, marker: "terminated", code: 7, reason: "exited with status 7"},
		{name: "SIGINT", sig: syscall.SIGINT, marker: "interrupt", code: 7, reason: "exited with status 7"},
		{name: "SIGHUP kills", sig: syscall.SIGHUP, code: 128 + 1, reason: "killed by signal 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			data, dir := t.TempDir(), t.TempDir()
			info, marker := filepath.Join(dir, "info.json"), filepath.Join(dir, "marker")
			r := startRun(t, data, []string{"--service", "signals"}, "-info", info, "-marker", marker, "-term-code", "7")
			in := readInfo(t, r, info)
			port, _ := strconv.Atoi(in.Port)
			is.NoErr(r.cmd.Process.Signal(tc.sig))
			is.Equal(r.wait(t), tc.code) // ledger run exits with the child's code
			got, err := os.ReadFile(marker)
			if tc.marker == "" {
				is.True(errors.Is(err, os.ErrNotExist)) // the signal killed the service
			} else {
				is.NoErr(err)                    // the service saw the signal
				is.Equal(string(got), tc.marker) // the signal it saw
			}
			is.Equal(lastRelease(t, data, port), tc.reason)             // the release says how it ended
			is.Equal(len(statusOf(t, data).PortManager.Allocations), 0) // the port is free
			is.True(strings.Contains(r.stderr.String(), tc.reason))     // and ledger run said so
		})
	}
}

func TestRunExitCodeAndReason(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	r := startRun(t, data, []string{"--service", "fails"}, "-exit", "3")
	is.Equal(r.wait(t), 3) // the child's exit code
	evs := history(t, data, "--service", "fails")
	is.Equal(len(evs), 3) // allocate, register_pid, release
	is.Equal(evs[0].Type, ledger.EventAllocated)
	is.Equal(evs[1].Type, ledger.EventPIDRegistered)
	is.Equal(evs[2].Released.Reason, "exited with status 3")
	is.Equal(evs[2].Released.ReleasedBy, "ledger run")
}

func TestRunCannotStart(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	notExec := filepath.Join(dir, "garbage")
	if err := os.WriteFile(notExec, []byte("not a program\x00\x01"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		message string
		release bool // a port was taken, so it must be released
	}{
		{name: "no such command", args: []string{"nosuchcmd"}, code: 127,
			message: `ledger: cannot start "nosuchcmd": executable file not found in $PATH`},
		{name: "not executable", args: []string{notExec}, code: 126, release: true,
			message: fmt.Sprintf("ledger: cannot start %q: exec format error", notExec)},
		{name: "not executable, --socket", args: []string{"--socket", "--", notExec}, code: 126, release: true,
			message: fmt.Sprintf("ledger: cannot start %q: exec format error", notExec)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			before := len(history(t, data, "--service", "broken"))
			_, errOut, code := ledgerOut(t, data, append([]string{"run", "--service", "broken"}, tc.args...)...)
			is.Equal(code, tc.code)                                     // 127 not found, 126 not executable
			is.Equal(strings.TrimSpace(errOut), tc.message)             // a clear message
			is.Equal(len(statusOf(t, data).PortManager.Allocations), 0) // no port stays taken
			evs := history(t, data, "--service", "broken")[before:]
			if !tc.release {
				is.Equal(len(evs), 0) // the command is looked up before a port is taken
				return
			}
			is.Equal(len(evs), 2) // allocated, then released at once
			is.Equal(evs[1].Released.Reason, strings.TrimPrefix(tc.message, "ledger: "))
		})
	}
}

func TestRunRestartGetsItsPortBack(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	first := startRun(t, data, []string{"--service", "first"}, "-info", filepath.Join(dir, "first.json"))
	firstPort := readInfo(t, first, filepath.Join(dir, "first.json")).Port
	second := startRun(t, data, []string{"--service", "second"}, "-info", filepath.Join(dir, "second.json"))
	secondPort := readInfo(t, second, filepath.Join(dir, "second.json")).Port
	is.True(firstPort != secondPort)

	// Both stop; the lower port is free again, yet "second" gets its own back.
	is.NoErr(first.cmd.Process.Signal(syscall.SIGTERM))
	is.NoErr(second.cmd.Process.Signal(syscall.SIGTERM))
	is.Equal(first.wait(t), 0)
	is.Equal(second.wait(t), 0)
	again := startRun(t, data, []string{"--service", "second"}, "-info", filepath.Join(dir, "again.json"))
	is.Equal(readInfo(t, again, filepath.Join(dir, "again.json")).Port, secondPort) // sticky
	is.NoErr(again.cmd.Process.Signal(syscall.SIGTERM))
	is.Equal(again.wait(t), 0)
}

func TestRunThroughDaemon(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	startServe(t, data)

	// The daemon holds the ledger file: only a run through it can succeed.
	info := filepath.Join(dir, "info.json")
	r := startRun(t, data, []string{"--service", "via-daemon", "--socket"}, "-info", info, "-term-code", "4")
	in := readInfo(t, r, info)
	port, _ := strconv.Atoi(in.Port)
	waitUntil(t, r, func() bool {
		for _, a := range statusOf(t, data).PortManager.Allocations {
			if a.Port == port && a.PID == in.PID {
				return true
			}
		}
		return false
	})
	is.True(statusOf(t, data).Watchdog.Running) // status came from the daemon
	is.NoErr(r.cmd.Process.Signal(syscall.SIGTERM))
	is.Equal(r.wait(t), 4)
	is.Equal(lastRelease(t, data, port), "exited with status 4")
	// startServe's cleanup stops the daemon with SIGTERM and checks that it
	// exits cleanly.
}

// TestRunInProcess calls Run directly, as main does: flags, usage and the
// exit code of a child.
func TestRunInProcess(t *testing.T) {
	_, child := runBinaries(t)
	data := t.TempDir()
	common := []string{"--data", data, "--addr", ""}
	if err := Run(context.Background(), []string{"range", "set", runRange, "--allow-ephemeral", "--data", data}, testEnv(t), strings.NewReader(""), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int    // what report makes of Run's error
		stdout string // a part of stdout
		stderr string // a part of stderr
	}{
		{name: "help", args: []string{"--help"}, code: 0, stdout: "ledger run --service api --purpose"},
		{name: "no command", args: []string{"--service", "x"}, code: 2, stderr: "run needs a command"},
		{name: "no service", args: append(common, "--", child), code: 2, stderr: "needs --service"},
		{name: "bind without socket", args: append(common, "--service", "x", "--bind", "0.0.0.0", "--", child), code: 2, stderr: "--bind needs --socket"},
		{name: "bad health path", args: append(common, "--service", "x", "--health", "/a\x01", "--", child), code: 1, stderr: "health_path"},
		{name: "child exit code", args: append(common, "--service", "x", "--quiet", "--", child, "-exit", "5"), code: 5},
		{name: "success", args: append(common, "--service", "x", "--", child, "-exit", "0"), code: 0, stderr: ": exited with status 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var out, errb bytes.Buffer
			err := Run(context.Background(), append([]string{"run"}, tc.args...), testEnv(t), strings.NewReader(""), &out, &errb)
			code := report(err, &errb)
			is.Equal(code, tc.code)                             // exit code
			is.True(strings.Contains(out.String(), tc.stdout))  // stdout
			is.True(strings.Contains(errb.String(), tc.stderr)) // stderr
			if tc.name == "child exit code" {
				is.Equal(errb.String(), "") // --quiet prints nothing of its own
			}
		})
	}
}

// startServe starts `ledger serve` on the unix socket only, with extra
// flags, waits until its watchdog runs, and stops it with SIGTERM at the
// end of the test.
func startServe(t *testing.T, data string, flags ...string) {
	t.Helper()
	serve := runCmd(t, data, append([]string{"serve", "--addr", ""}, flags...)...)
	testbin.StartDaemon(t, serve, func(context.Context) error {
		if _, err := os.Stat(ledger.Layout{Dir: data}.Socket()); err != nil {
			return err
		}
		if !statusOf(t, data).Watchdog.Running {
			return errors.New("the watchdog does not run yet")
		}
		return nil
	})
}

// TestRunKilledLeavesTheChildToTheWatchdog kills `ledger run` with SIGKILL:
// the port stays with the child while it lives, because the registered PID
// is the child's, and the watchdog frees it once the child is gone.
func TestRunKilledLeavesTheChildToTheWatchdog(t *testing.T) {
	t.Parallel() // its own data directory; its child listens in runRange, where no other parallel test expects a port
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	startServe(t, data, "--interval", "100ms")
	info := filepath.Join(dir, "info.json")
	r := startRun(t, data, []string{"--service", "orphan"}, "-info", info)
	in := readInfo(t, r, info)
	port, _ := strconv.Atoi(in.Port)
	waitUntil(t, r, func() bool {
		a, ok := allocationOf(t, data, port)
		return ok && a.PID == in.PID
	})

	is.NoErr(r.cmd.Process.Kill())
	r.wait(t)
	// Several sweeps later the live child still holds its port.
	checks := statusOf(t, data).Watchdog.ChecksPerformed
	waitUntil(t, nil, func() bool { return statusOf(t, data).Watchdog.ChecksPerformed >= checks+5 })
	a, ok := allocationOf(t, data, port)
	is.True(ok)             // still allocated
	is.Equal(a.PID, in.PID) // to the child

	is.NoErr(killPID(in.PID))
	waitUntil(t, nil, func() bool {
		_, ok := allocationOf(t, data, port)
		return !ok
	})
	evs := historyOf(t, data, port)
	last := evs[len(evs)-1]
	is.True(last.Released != nil)                     // the watchdog released the port
	is.True(last.Released.ReleasedBy != "ledger run") // not ledger run, which was dead
}

// allocationOf returns the allocation of port, if any.
func allocationOf(t *testing.T, data string, port int) (ledger.Allocation, bool) {
	t.Helper()
	for _, a := range statusOf(t, data).PortManager.Allocations {
		if a.Port == port {
			return a, true
		}
	}
	return ledger.Allocation{}, false
}

// killPID kills the process pid, on every system.
func killPID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
