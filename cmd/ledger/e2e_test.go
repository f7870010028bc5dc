package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// e2eRange keeps these tests' ports away from the developer's services and
// from other test packages.
const e2eRange = "30500-30600"

// ledgerCmd returns the real binary set up for a data directory.
func ledgerCmd(t *testing.T, data string, args ...string) *exec.Cmd {
	t.Helper()
	return bins.Command(t, data, e2eRange, args...)
}

// run runs the binary and returns stdout, stderr and the exit code.
func run(t *testing.T, data string, args ...string) (string, string, int) {
	t.Helper()
	return testbin.Run(t, ledgerCmd(t, data, args...))
}

func TestTwentyConcurrentAllocateProcesses(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	const n = 20
	ports := make([]string, n)
	errs := make([]string, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := ledgerCmd(t, data, "allocate", "--service", fmt.Sprintf("svc%02d", i))
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			<-start
			err := cmd.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				codes[i] = ee.ExitCode()
			} else if err != nil {
				codes[i] = -1
			}
			ports[i], errs[i] = strings.TrimSpace(out.String()), errb.String()
		}()
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if codes[i] != 0 {
			t.Fatalf("process %d: exit %d: %s", i, codes[i], errs[i])
		}
		is.Equal(errs[i], "")    // with nothing on stderr
		is.True(!seen[ports[i]]) // and a port of its own
		seen[ports[i]] = true
		p, err := strconv.Atoi(ports[i])
		is.NoErr(err)                     // stdout is the port alone
		is.True(p >= 30500 && p <= 30600) // inside the range
	}
	out, _, code := run(t, data, "status", "--json")
	is.Equal(code, 0)
	var st ledger.Status
	is.NoErr(json.Unmarshal([]byte(out), &st))
	is.Equal(st.PortManager.AllocatedPorts, n) // the registry agrees
}

func TestBadInputExitsNonZeroAndChangesNothing(t *testing.T) {
	data := t.TempDir()
	if _, errOut, code := run(t, data, "allocate", "--service", "held"); code != 0 {
		t.Fatalf("setup allocate: %s", errOut)
	}
	before := logState(t, data)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"unknown subcommand", []string{"frobnicate"}, 2},
		{"no subcommand", []string{}, 2},
		{"unknown flag", []string{"allocate", "--service", "a", "--bogus"}, 2},
		{"missing service", []string{"allocate"}, 2},
		{"empty service", []string{"allocate", "--service", ""}, 2},
		{"oversized service", []string{"allocate", "--service", strings.Repeat("x", 200)}, 1},
		{"control characters", []string{"allocate", "--service", "a", "--purpose", "x\x07y"}, 1},
		{"newline in name", []string{"allocate", "--service", "a\nb"}, 1},
		{"port 0", []string{"release", "0"}, 2},
		{"port 70000", []string{"allocate", "--service", "a", "--port", "70000"}, 1},
		{"port outside range", []string{"allocate", "--service", "a", "--port", "8000"}, 1},
		{"pid 0", []string{"register-pid", "30500", "0"}, 1},
		{"pid 1", []string{"register-pid", "30500", "1"}, 1},
		{"pid -5", []string{"register-pid", "30500", "-5"}, 1},
		{"pid of no process", []string{"register-pid", "30500", "4194000"}, 1},
		{"pid not a number", []string{"register-pid", "30500", "abc"}, 2},
		{"release a free port", []string{"release", "30599"}, 1},
		{"malformed range", []string{"range", "set", "9000-8000"}, 2},
		{"range not numbers", []string{"range", "set", "lots"}, 2},
		{"range on a read", []string{"status", "--range", "9000-9100"}, 2},
		{"bad --at", []string{"status", "--at", "yesterday-ish"}, 2},
		{"future --at", []string{"status", "--at", "2999-01-01"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, errOut, code := run(t, data, tt.args...)
			is.Equal(code, tt.code)                        // exit status
			is.True(strings.HasPrefix(errOut, "ledger: ")) // a clear error on stderr
		})
	}
	is := is.New(t)
	is.Equal(logState(t, data), before) // the log is unchanged
}

// logState returns the count and last ID of the log in data.
func logState(t *testing.T, data string) string {
	t.Helper()
	log, err := ledger.Open(ledger.Layout{Dir: data}.DB(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	n, err := log.Count()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %s", n, log.LastID())
}

func TestHelpExplains(t *testing.T) {
	data := t.TempDir()
	for _, sc := range subcommands() {
		t.Run(sc.name, func(t *testing.T) {
			is := is.New(t)
			out, _, code := run(t, data, sc.name, "--help")
			is.Equal(code, 0)                                        // --help succeeds
			is.True(strings.Contains(out, "Usage: ledger "+sc.name)) // with a synopsis
			if sc.name != "version" {
				is.True(strings.Contains(out, "--data")) // and the flags (version reads no ledger: it has none)
			}
		})
	}
}

func TestEmbeddedTourAndReplay(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	out, _, code := run(t, data, "allocate", "--service", "grace_backend", "--started-by", "serve.py", "--purpose", "Main Grace API server")
	is.Equal(code, 0)
	is.Equal(strings.TrimSpace(out), "30500") // the lowest port
	out, _, _ = run(t, data, "allocate", "--service", "learning")
	is.Equal(strings.TrimSpace(out), "30501") // the next one
	_, errOut, code := run(t, data, "register-pid", "30500", strconv.Itoa(os.Getpid()))
	is.Equal(code, 0) // register our own pid
	is.Equal(errOut, "")
	out, _, _ = run(t, data, "status")
	is.True(strings.Contains(out, "grace_backend"))           // the table names the service
	is.True(strings.Contains(out, strconv.Itoa(os.Getpid()))) // and its pid
	out, _, _ = run(t, data, "history", "--port", "30500", "--json")
	var h struct{ Events []ledger.Event }
	is.NoErr(json.Unmarshal([]byte(out), &h))
	is.Equal(len(h.Events), 2) // allocate and register_pid
	_, _, code = run(t, data, "release", "30500")
	is.Equal(code, 0)

	layout := ledger.Layout{Dir: data}
	reg, err := os.ReadFile(layout.Registry())
	is.NoErr(err) // port_registry.json exists
	is.True(bytes.Contains(reg, []byte(`"30501"`)))
	day := filepath.Join(layout.LogsDir(), "allocations_"+time.Now().UTC().Format("20060102")+".jsonl")
	lines, err := os.ReadFile(day)
	is.NoErr(err) // today's JSONL log exists
	is.True(bytes.Contains(lines, []byte(`"action": "release"`)))

	out, _, code = run(t, data, "replay", "--verify")
	is.Equal(code, 0) // the live files equal a replay
	is.True(strings.Contains(out, "match"))

	// Edit a line: verify names the file and the line, then rebuilds.
	edited := bytes.Replace(lines, []byte(`"learning"`), []byte(`"LEARNING"`), 1)
	is.NoErr(os.WriteFile(day, edited, 0o600))
	out, _, code = run(t, data, "replay", "--verify")
	is.Equal(code, 1)                                  // a difference is reported
	is.True(strings.Contains(out, filepath.Base(day))) // naming the file
	rebuilt, err := os.ReadFile(day)
	is.NoErr(err)
	is.Equal(string(rebuilt), string(lines)) // and the file is rebuilt byte for byte
}

func TestServeEndToEnd(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	addr := testbin.FreeAddr(t)
	serve := bins.Serve(t, data, e2eRange, addr)

	// A second daemon on the same data directory exits at once.
	_, errOut, code := run(t, data, "serve", "--addr", testbin.FreeAddr(t))
	is.Equal(code, 1)                                                   // refused
	is.True(strings.Contains(errOut, "already serves"))                 // saying why
	is.True(strings.Contains(errOut, "pid "+strconv.Itoa(serve.Pid()))) // naming the running one

	// The CLI goes through the daemon while it holds the file.
	out, errOut, code := run(t, data, "allocate", "--service", "remote")
	is.Equal(code, 0) // allocate through the daemon
	is.Equal(errOut, "")
	port := strings.TrimSpace(out)
	resp, err := http.Get("http://" + addr + "/api/ports/allocations/" + port)
	is.NoErr(err)
	var a ledger.Allocation
	is.NoErr(json.NewDecoder(resp.Body).Decode(&a))
	resp.Body.Close()
	is.Equal(a.ServiceName, "remote") // read back over HTTP

	code, sig := serve.Stop(t, syscall.SIGTERM)
	is.Equal(code, 0) // exit 0 on SIGTERM
	is.Equal(sig, syscall.Signal(0))
	_, err = os.Stat(ledger.Layout{Dir: data}.Socket())
	is.True(errors.Is(err, os.ErrNotExist)) // the socket is gone

	// After the daemon, the CLI opens the file itself and sees the same state.
	out, _, code = run(t, data, "status", "--json")
	is.Equal(code, 0)
	is.True(strings.Contains(out, `"remote"`))
}
