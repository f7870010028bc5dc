package testbin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// daemonRange keeps the daemons of these tests away from other packages'
// tests.
const daemonRange = "30911-30920"

// daemonBins builds the ledger once for the daemon tests.
var daemonBins Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	_ = daemonBins.Remove()
	os.Exit(code)
}

func TestServeAnswersAndStopsCleanly(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	d := daemonBins.Serve(t, data, daemonRange, FreeAddr(t), "--interval", "1h")
	is.NoErr(Healthz(d.Addr)(context.Background()))                                  // it answers on its address
	is.NoErr(SocketHealthz(ledger.Layout{Dir: data}.Socket())(context.Background())) // and on its socket
	is.Equal(d.Token(t), TokenFile(t, data))                                         // without --token, the token file's
	is.True(d.Pid() > 0)

	code, sig := d.Stop(t, syscall.SIGTERM)
	is.Equal(code, 0)                // a clean stop
	is.Equal(sig, syscall.Signal(0)) // not by a signal
	is.True(d.Exited())
	code, sig = d.Stop(t, syscall.SIGKILL)
	is.Equal(code, 0) // a stopped daemon is not signalled again: Stop says how it ended
	is.Equal(sig, syscall.Signal(0))
}

func TestServeOnTheSocketAloneAndKill(t *testing.T) {
	is := is.New(t)
	d := daemonBins.Serve(t, t.TempDir(), daemonRange, "", "--interval", "1h", "--token", "s3cret")
	is.Equal(d.Addr, "")           // the socket alone
	is.Equal(d.Token(t), "s3cret") // --token's

	code, sig := d.Stop(t, syscall.SIGKILL)
	is.Equal(code, -1)             // no exit code
	is.Equal(sig, syscall.SIGKILL) // killed by the signal
}

func TestStartDaemonReportsAnEarlyExit(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	daemonBins.Serve(t, data, daemonRange, "") // left to the cleanup, which stops it with SIGTERM

	// A second daemon on the same data directory exits at once.
	cmd := daemonBins.Command(t, data, daemonRange, "serve", "--addr", FreeAddr(t))
	rec := &recorder{TB: t}
	rec.run(func(tb testing.TB) { StartDaemon(tb, cmd, Healthz(FreeAddr(t))) })
	is.Equal(len(rec.fatal), 1)                                                       // the test fails
	is.True(strings.Contains(rec.fatal[0], "ledger serve exited before it answered")) // saying what happened
	is.True(strings.Contains(rec.fatal[0], "already serves"))                         // with the daemon's stderr
	is.Equal(len(rec.errs), 0)                                                        // the exited daemon needs no stopping
}

func TestStartDaemonGivesUpOnADaemonThatDoesNotAnswer(t *testing.T) {
	is := is.New(t)
	cmd := exec.Command("sleep", "300")
	rec := &recorder{TB: t}
	rec.run(func(tb testing.TB) {
		startDaemon(tb, cmd, func(context.Context) error { return errors.New("no answer") }, 100*time.Millisecond)
	})
	is.Equal(len(rec.fatal), 1)
	is.True(strings.Contains(rec.fatal[0], "sleep 300 did not answer within 100ms: no answer")) // the test fails, saying why
	// The cleanup stopped the process: no process outlives its test.
	is.True(cmd.ProcessState != nil)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	is.Equal(ws.Signal(), syscall.SIGTERM) // with SIGTERM
	is.Equal(len(rec.errs), 1)             // and a process that does not exit 0 on SIGTERM fails the test
}

// recorder is a testing.TB that records failures instead of failing the
// test, and runs its cleanups when run's function returns.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	fatal    []string
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = append(r.fatal, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// run runs f on a goroutine of its own, as a test, then the cleanups, last
// first.
func (r *recorder) run(f func(tb testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}
