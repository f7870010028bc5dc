package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// shellEnv is the environment of a second shell of the same user: no
// LEDGER_* and no XDG_STATE_HOME, its own HOME (so the default data
// directory is HOME/.local/state/portledger), and the runtime directory rt
// where the user's daemons announce themselves.
func shellEnv(home, rt string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LEDGER_") || strings.HasPrefix(kv, "XDG_STATE_HOME=") ||
			strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "XDG_RUNTIME_DIR="+rt)
}

// startServeEnv starts `ledger serve` on data (unix socket only) with env and
// waits until it answers on its socket.
func startServeEnv(t *testing.T, data string, env []string, args ...string) *testbin.Daemon {
	t.Helper()
	serve := exec.Command(bins.Ledger(t), append([]string{"serve", "--addr", "", "--data", data}, args...)...)
	serve.Env = env
	return testbin.StartDaemon(t, serve, testbin.SocketHealthz(ledger.Layout{Dir: data}.Socket()))
}

// runEnv runs the binary with env and returns stdout, stderr and the exit code.
func runEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bins.Ledger(t), args...)
	cmd.Env = env
	return testbin.Run(t, cmd)
}

func TestAnotherShellFindsTheUsersDaemon(t *testing.T) {
	is := is.New(t)
	data, home, rt := t.TempDir(), t.TempDir(), t.TempDir()
	first := append(testbin.Env(data, e2eRange), "XDG_RUNTIME_DIR="+rt)
	serve := startServeEnv(t, data, first)

	// A second shell without LEDGER_DATA: its default directory is another
	// one, but the user's daemon is live, so the command goes to it.
	second := shellEnv(home, rt)
	out, errOut, code := runEnv(t, second, "allocate", "--service", "second_shell")
	is.Equal(code, 0)                                                    // allocated
	is.True(strings.Contains(errOut, data))                              // saying which ledger it used
	is.True(strings.Contains(errOut, "(pid "+strconv.Itoa(serve.Pid()))) // and which daemon
	port := strings.TrimSpace(out)
	out, _, code = runEnv(t, first, "who", port)
	is.Equal(code, 0)
	is.True(strings.Contains(out, "second_shell")) // the daemon's ledger holds it
	_, err := os.Stat(filepath.Join(home, ".local", "state", "portledger", "databases"))
	is.True(errors.Is(err, os.ErrNotExist)) // no second ledger was made

	out, _, code = runEnv(t, second, "status")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "Watchdog: running")) // the live daemon's status

	// A shell that names another directory gets that one, and is told that
	// another ledger is live.
	other := t.TempDir()
	_, errOut, code = runEnv(t, second, "status", "--data", other)
	is.Equal(code, 0)
	is.True(strings.Contains(errOut, "used the ledger in "+other)) // which ledger it used
	is.True(strings.Contains(errOut, "another ledger is live"))    // that another is live
	is.True(strings.Contains(errOut, data))                        // and which
}

func TestCommandWaitingOnTheLockGoesThroughTheDaemon(t *testing.T) {
	t.Parallel() // its own data directory and socket; it binds no port
	is := is.New(t)
	data := t.TempDir()
	layout := ledger.Layout{Dir: data}
	is.NoErr(os.MkdirAll(filepath.Dir(layout.DB()), 0o700))
	// This process plays a daemon that is starting: it holds the file and
	// answers on the socket only a while later.
	log, err := ledger.Open(layout.DB(), ledger.Options{})
	is.NoErr(err) // open the log
	cmd := ledgerCmd(t, data, "allocate", "--service", "waiter")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	is.NoErr(cmd.Start())
	started := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(time.Second) // the command waits on the lock

	svc, err := commands.New(commands.Config{Log: log})
	is.NoErr(err)
	defer func() { svc.Close(); log.Close() }()
	ln, err := net.Listen("unix", layout.Socket())
	is.NoErr(err)
	srv := httpapi.NewHTTPServer(httpapi.NewServer(httpapi.Config{Service: svc, Events: svc}))
	go srv.Serve(ln)
	defer srv.Close()

	select {
	case err := <-done:
		is.NoErr(err) // the command succeeded through the daemon
	case <-time.After(testbin.RunTimeout):
		cmd.Process.Kill()
		t.Fatal("the command did not finish")
	}
	is.True(time.Since(started) < embeddedLockTimeout) // before its lock wait ran out
	p, err := strconv.Atoi(strings.TrimSpace(out.String()))
	is.NoErr(err) // stdout is the port
	a, err := svc.Allocation(context.Background(), p, ulid.ULID{})
	is.NoErr(err)                     // the daemon's ledger has it
	is.Equal(a.ServiceName, "waiter") // under its name
}

func TestSetupMistakesAreExplained(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) string // returns the data directory
		args  []string
		want  string
	}{
		{"ledger.db is a directory", func(t *testing.T) string {
			data := t.TempDir()
			if err := os.MkdirAll(ledger.Layout{Dir: data}.DB(), 0o700); err != nil {
				t.Fatal(err)
			}
			return data
		}, []string{"status"}, "is a directory, not a ledger file"},
		{"socket path over the unix limit", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), strings.Repeat("d", 100))
		}, []string{"serve", "--addr", ""}, "over the 107 that a unix socket path may have"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			data := tt.setup(t)
			_, errOut, code := run(t, data, tt.args...)
			is.Equal(code, 1)                             // refused
			is.True(strings.Contains(errOut, tt.want))    // saying what is wrong
			is.True(!strings.Contains(errOut, "corrupt")) // not calling it corrupt
		})
	}
}

func TestReadmeServesTheDefaultLedger(t *testing.T) {
	is := is.New(t)
	readme, err := os.ReadFile("../../README.md")
	is.NoErr(err)
	s := string(readme)
	is.True(!strings.Contains(s, "LEDGER_DATA=./data"))               // no directory of its own for the daemon
	is.True(strings.Contains(s, "\n    go run ./cmd/ledger serve\n")) // the daemon on the default directory
	is.True(strings.Contains(s, "~/.local/state/portledger"))         // which it names
	is.True(!strings.Contains(s, "go build -o ledger ./cmd/ledger"))  // no binary into the ledger/ folder
}

// TestRunStaysWithTheLedgerThatAllocated runs a service from a shell
// without LEDGER_DATA, whose port comes from the user's daemon that serves
// another directory; the daemon stops while the service runs: the release
// goes to that ledger's file, not to the shell's default one, which never
// held the port.
func TestRunStaysWithTheLedgerThatAllocated(t *testing.T) {
	is := is.New(t)
	data, home, rt, dir := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	first := append(testbin.Env(data, e2eRange), "XDG_RUNTIME_DIR="+rt)
	serve := startServeEnv(t, data, first)

	portFile, goOn := filepath.Join(dir, "port"), filepath.Join(dir, "go")
	cmd := exec.Command(bins.Ledger(t), "run", "--service", "pinned", "--", "bash", "-c",
		`echo $PORT > "$0"; while [ ! -f "$1" ]; do sleep 0.05; done`, portFile, goOn)
	cmd.Env = shellEnv(home, rt)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	is.NoErr(cmd.Start())
	defer cmd.Process.Kill()
	testbin.WaitFor(t, "the service runs", func() bool {
		b, err := os.ReadFile(portFile)
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	b, err := os.ReadFile(portFile)
	is.NoErr(err)
	port := strings.TrimSpace(string(b))

	serve.Stop(t, syscall.SIGTERM) // the daemon goes away while the service runs
	is.NoErr(os.WriteFile(goOn, nil, 0o600))
	is.NoErr(cmd.Wait())
	is.True(strings.Contains(stderr.String(), "released port "+port)) // released
	is.True(!strings.Contains(stderr.String(), "no longer ours"))     // in the ledger that held it

	out, _, code := runEnv(t, first, "status", "--json")
	is.Equal(code, 0)
	var st ledger.Status
	is.NoErr(json.Unmarshal([]byte(out), &st))
	is.Equal(st.PortManager.AllocatedPorts, 0) // the daemon's ledger has it released
	_, err = os.Stat(filepath.Join(home, ".local", "state", "portledger", "databases"))
	is.True(errors.Is(err, os.ErrNotExist)) // and no second ledger was made
}
