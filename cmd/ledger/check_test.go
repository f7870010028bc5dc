package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/portledger/portledger/internal/testbin"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestOneShotCheckConcludes runs `ledger check` without a daemon on a holder
// whose process is gone: the first check releases it and says how it
// concluded, where a check that forgets its strikes never would.
func TestOneShotCheckConcludes(t *testing.T) {
	t.Parallel() // its own data directory; it binds no port
	is := is.New(t)
	data := t.TempDir()
	out, errOut, code := run(t, data, "allocate", "--service", "gone")
	is.Equal(code, 0) // allocate
	is.Equal(errOut, "")
	port := strings.TrimSpace(out)
	child := exec.Command("sleep", "60")
	is.NoErr(child.Start())
	pid := child.Process.Pid
	_, errOut, code = run(t, data, "register-pid", port, strconv.Itoa(pid))
	is.Equal(code, 0) // register the child
	is.Equal(errOut, "")
	is.NoErr(child.Process.Kill())
	_ = child.Wait() // gone, and reaped

	out, errOut, code = run(t, data, "check")
	is.Equal(code, 0)                                                      // checked
	is.True(strings.Contains(out, "One-shot check"))                       // saying how it concludes
	is.True(strings.Contains(out, "process "+strconv.Itoa(pid)+" exited")) // the reason
	is.True(!strings.Contains(out, "of 2"))                                // no strike that the next run forgets
	out, _, code = run(t, data, "status", "--json")
	is.Equal(code, 0)
	var st ledger.Status
	is.NoErr(json.Unmarshal([]byte(out), &st))
	is.Equal(st.PortManager.AllocatedPorts, 0) // released
	out, _, _ = run(t, data, "history", "--port", port)
	is.True(strings.Contains(out, "exited")) // with the reason in the history

	out, _, code = run(t, data, "check", "--json")
	is.Equal(code, 0)
	var res checkResult
	is.NoErr(json.Unmarshal([]byte(out), &res))
	is.Equal(res.Mode, "one-shot") // --json says which too
	is.Equal(res.Failures, 1)
	_, errOut, code = run(t, data, "check", "--failures", "0")
	is.Equal(code, 2) // a bad count is a usage error
	is.True(strings.HasPrefix(errOut, "ledger: "))
}

// TestForeignListenerWithControlCharacters has a foreign process listen in
// the range with a bell and an escape in its command line, and nothing
// allocated: check records it with the characters escaped, and status shows
// it.
func TestForeignListenerWithControlCharacters(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	ready := filepath.Join(dir, "ready")
	listener := exec.Command(bins.Program(t, "./cmd/ledger/testdata/listenchild"),
		"-addr", "127.0.0.1:30590", "-ready", ready, "bell\x07and\x1b[31mred")
	is.NoErr(listener.Start())
	defer func() { listener.Process.Kill(); listener.Wait() }()
	testbin.WaitFor(t, "the foreign listener is bound", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})

	out, errOut, code := run(t, data, "check")
	is.Equal(code, 0) // the check goes on
	is.Equal(errOut, "")
	is.True(strings.Contains(out, "foreign listener on 30590")) // and records the listener
	is.True(!strings.ContainsAny(out, "\x07\x1b"))              // its command line escaped

	out, _, code = run(t, data, "status")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "No ports allocated"))     // nothing allocated
	is.True(strings.Contains(out, "FOREIGN LISTENERS"))      // but the squatter is shown
	is.True(strings.Contains(out, "30590"))                  // on its port
	is.True(strings.Contains(out, `bell\x07and\x1b[31mred`)) // escaped, and recognisable
	is.True(!strings.ContainsAny(out, "\x07\x1b"))           // never raw
	out, _, _ = run(t, data, "history", "--port", "30590", "--json")
	is.True(strings.Contains(out, `bell\\x07and\\x1b[31mred`)) // the log keeps the escaped form
}

// TestWrapperExitsWhileItsChildListens registers a wrapper, `bash -c
// 'server & ...'`, that exits while the server it started keeps listening:
// the check hands the port to the server, saying so, instead of releasing
// it; once the server is gone too, the port is released.
func TestWrapperExitsWhileItsChildListens(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	out, errOut, code := run(t, data, "allocate", "--service", "wrapped")
	is.Equal(code, 0)
	is.Equal(errOut, "")
	port := strings.TrimSpace(out)
	ready, goOn := filepath.Join(dir, "ready"), filepath.Join(dir, "go")
	script := fmt.Sprintf(`%q -addr 127.0.0.1:%s -ready %q & echo $!; while [ ! -f %q ]; do sleep 0.05; done; exit 0`,
		bins.Program(t, "./cmd/ledger/testdata/listenchild"), port, ready, goOn)
	wrapper := exec.Command("bash", "-c", script)
	ownProcessGroup(wrapper) // as a shell's job control starts it
	stdout, err := wrapper.StdoutPipe()
	is.NoErr(err)
	is.NoErr(wrapper.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	is.NoErr(err) // the server's pid
	server, err := strconv.Atoi(strings.TrimSpace(line))
	is.NoErr(err)
	defer killPID(server)
	testbin.WaitFor(t, "the server listens", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	_, errOut, code = run(t, data, "register-pid", port, strconv.Itoa(wrapper.Process.Pid))
	is.Equal(code, 0) // the wrapper is registered, as `ledger run` or a script would
	is.Equal(errOut, "")
	is.NoErr(os.WriteFile(goOn, nil, 0o600))
	is.NoErr(wrapper.Wait()) // the wrapper exits; the server lives on

	out, errOut, code = run(t, data, "check")
	is.Equal(code, 0) // checked
	is.Equal(errOut, "")
	is.True(strings.Contains(out, "pid "+strconv.Itoa(server)+" holds it now"))            // handed to the server
	is.True(strings.Contains(out, "process "+strconv.Itoa(wrapper.Process.Pid)+" exited")) // saying why
	out, _, _ = run(t, data, "status", "--json")
	var st ledger.Status
	is.NoErr(json.Unmarshal([]byte(out), &st))
	is.Equal(st.PortManager.AllocatedPorts, 1)          // not released
	is.Equal(st.PortManager.Allocations[0].PID, server) // the server holds it now
	out, _, _ = run(t, data, "history", "--port", port, "--json")
	is.True(strings.Contains(out, "exited; pid "+strconv.Itoa(server)))      // the event says so
	is.True(strings.Contains(out, "a descendant of the registered process")) // and why the server is the service's

	is.NoErr(killPID(server))
	testbin.WaitFor(t, "the server is gone", func() bool { return processGone(server) })
	out, _, code = run(t, data, "check")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "process "+strconv.Itoa(server)+" exited")) // now released, with the reason
	out, _, _ = run(t, data, "status", "--json")
	is.NoErr(json.Unmarshal([]byte(out), &st))
	is.Equal(st.PortManager.AllocatedPorts, 0)
}

// TestReleaseUnderStrangersSaysWhoListens has the registered process gone
// while two other processes, neither started by it, listen on the port (one
// on 127.0.0.1, one on ::1): no heir can be told, so the port is released,
// and the reason names both listeners.
func TestReleaseUnderStrangersSaysWhoListens(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback here:", err)
	} else {
		ln.Close()
	}
	is := is.New(t)
	data := t.TempDir()
	out, _, code := run(t, data, "allocate", "--service", "left")
	is.Equal(code, 0)
	port := strings.TrimSpace(out)
	gone := exec.Command("sleep", "60")
	is.NoErr(gone.Start())
	_, errOut, code := run(t, data, "register-pid", port, strconv.Itoa(gone.Process.Pid))
	is.Equal(code, 0)
	is.Equal(errOut, "")
	is.NoErr(gone.Process.Kill())
	_ = gone.Wait()

	dir := t.TempDir()
	var pids []int
	for i, addr := range []string{"127.0.0.1:" + port, "[::1]:" + port} {
		ready := filepath.Join(dir, strconv.Itoa(i))
		net6 := "tcp4"
		if i == 1 {
			net6 = "tcp6"
		}
		l := exec.Command(bins.Program(t, "./cmd/ledger/testdata/listenchild"), "-net", net6, "-addr", addr, "-ready", ready)
		is.NoErr(l.Start())
		defer func() { l.Process.Kill(); l.Wait() }()
		testbin.WaitFor(t, "a stranger listens", func() bool {
			_, err := os.Stat(ready)
			return err == nil
		})
		pids = append(pids, l.Process.Pid)
	}

	_, _, code = run(t, data, "check")
	is.Equal(code, 0)
	out, _, _ = run(t, data, "history", "--port", port, "--json")
	is.True(strings.Contains(out, "still listened on by"))       // the release says the port is in use
	is.True(strings.Contains(out, "pid "+strconv.Itoa(pids[0]))) // by whom
	is.True(strings.Contains(out, "pid "+strconv.Itoa(pids[1])))
}

// TestRunKeepsThePortOfItsWrappersChild runs a wrapper under `ledger run`,
// `bash -c 'server & ...'`, that exits while the server it started keeps
// listening: ledger run does not release the port under the server but
// records the server as the holder's process and says so; the watchdog's
// check releases the port once the server is gone too.
func TestRunKeepsThePortOfItsWrappersChild(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	ready, pidFile := filepath.Join(dir, "ready"), filepath.Join(dir, "pid")
	script := fmt.Sprintf(`%q -addr 127.0.0.1:$PORT -ready %q >/dev/null 2>&1 & echo $! > %q; while [ ! -f %q ]; do sleep 0.05; done; exit 3`,
		bins.Program(t, "./cmd/ledger/testdata/listenchild"), ready, pidFile, ready)
	_, errOut, code := run(t, data, "run", "--service", "wrapped", "--", "bash", "-c", script)
	b, err := os.ReadFile(pidFile)
	is.NoErr(err)
	server, err := strconv.Atoi(strings.TrimSpace(string(b)))
	is.NoErr(err)
	defer killPID(server)
	is.Equal(code, 3)                                                                  // the wrapper's exit status
	is.True(strings.Contains(errOut, "pid "+strconv.Itoa(server)))                     // names the server
	is.True(strings.Contains(errOut, "started by the command, still listens on port")) // and why it is the service's
	is.True(!strings.Contains(errOut, "released port"))                                // no release under it

	out, _, _ := run(t, data, "status", "--json")
	var st ledger.Status
	is.NoErr(json.Unmarshal([]byte(out), &st))
	is.Equal(st.PortManager.AllocatedPorts, 1)          // still held
	is.Equal(st.PortManager.Allocations[0].PID, server) // by the server now
	is.Equal(st.PortManager.Allocations[0].ServiceName, "wrapped")

	is.NoErr(killPID(server))
	testbin.WaitFor(t, "the server is gone", func() bool { return processGone(server) })
	out, _, code = run(t, data, "check")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "process "+strconv.Itoa(server)+" exited")) // released once the server is gone
	out, _, _ = run(t, data, "status", "--json")
	is.NoErr(json.Unmarshal([]byte(out), &st))
	is.Equal(st.PortManager.AllocatedPorts, 0)
}
