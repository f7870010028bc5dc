package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// listenOnPort starts the foreign listener child on port and returns it,
// bound. Cleanup kills it.
func listenOnPort(t *testing.T, port string) *exec.Cmd {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bins.Program(t, "./cmd/ledger/testdata/listenchild"), "-addr", "127.0.0.1:"+port, "-ready", ready)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testbin.WaitFor(t, "the listener is bound", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	return cmd
}

func TestReleaseOfAServingHolderNeedsForce(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	out, _, code := run(t, data, "allocate", "--service", "serving")
	is.Equal(code, 0)
	port := strings.TrimSpace(out)
	server := listenOnPort(t, port)
	_, errOut, code := run(t, data, "register-pid", port, strconv.Itoa(server.Process.Pid))
	is.Equal(code, 0)
	is.Equal(errOut, "")
	before := logState(t, data)

	out, errOut, code = run(t, data, "release", port)
	is.Equal(code, 1)                                                   // refused: exit 1 for scripts
	is.Equal(out, "")                                                   // nothing released
	is.True(strings.Contains(errOut, "serving holds it"))               // who holds it
	is.True(strings.Contains(errOut, strconv.Itoa(server.Process.Pid))) // which process listens
	is.True(strings.Contains(errOut, "--force"))                        // and how to go on
	is.Equal(logState(t, data), before)                                 // the log is unchanged

	out, _, code = run(t, data, "release", port, "--force")
	is.Equal(code, 0)                                     // with --force
	is.True(strings.Contains(out, "released port "+port)) // released
}

func TestRunSaysWhenItsReleaseFailed(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	info := filepath.Join(dir, "info.json")
	r := startRun(t, data, []string{"--service", "freed"}, "-info", info)
	child := readInfo(t, r, info)
	// Someone frees the port under the running service.
	_, errOut, code := testbin.Run(t, runCmd(t, data, "release", child.Port, "--force"))
	is.Equal(code, 0) // freed by someone else
	is.Equal(errOut, "")
	is.NoErr(terminatePID(child.PID))
	r.wait(t)
	stderr := r.stderr.String()
	is.True(!strings.Contains(stderr, "ledger: released port"))    // no false claim
	is.True(strings.Contains(stderr, "no longer ours to release")) // the truth
}

func TestMessagesSayWhatIsTrue(t *testing.T) {
	data := t.TempDir()
	first, _, code := run(t, data, "allocate", "--service", "msg")
	if code != 0 {
		t.Fatal("allocate")
	}
	port := strings.TrimSpace(first)
	firstEvent, _, _ := run(t, data, "history", "--json")
	id := firstEvent[strings.Index(firstEvent, `"id": "`)+7:][:26]
	other := t.TempDir() // the environment's ledger, not the one named
	for _, tt := range []struct {
		name string
		data string
		args []string
		want []string
		not  []string
	}{
		{"who outside the range", data, []string{"who", "9500"}, []string{"outside the managed range " + e2eRange}, []string{"free"}},
		{"who outside the range, for scripts", data, []string{"who", "9500", "--json"}, []string{`"outside_range": "` + e2eRange + `"`}, nil},
		{"who inside the range, for scripts", data, []string{"who", port, "--json"}, []string{`"port": ` + port}, []string{"outside_range"}},
		{"status of the past", data, []string{"status", "--at", id}, []string{"Port range"}, []string{"Watchdog"}},
		{"flags after the arguments", other, []string{"register-pid", port, strconv.Itoa(os.Getpid()), "--data", data, "--json"}, []string{`"service_name": "msg"`}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			out, errOut, code := run(t, tt.data, tt.args...)
			is.Equal(code, 0) // answered
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in:\n%s%s", w, out, errOut)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("want no %q in:\n%s", w, out)
				}
			}
		})
	}
}

func TestDurationsForPeople(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{9177*time.Hour + 52*time.Minute + 42*time.Second, "382d 9h"},
		{3*time.Hour + 5*time.Minute + 59*time.Second, "3h 5m"},
		{4*time.Minute + 10*time.Second, "4m 10s"},
		{12 * time.Second, "12s"},
		{400 * time.Millisecond, "0s"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			is := is.New(t)
			is.Equal(human(tt.d), tt.want)
		})
	}
}

// TestStatusSaysWhichForeignListenersAreGone: a foreign listener recorded by
// a check stays in the ledger until its port is allocated; once it stopped
// listening, status says it is gone instead of listing it as present.
func TestStatusSaysWhichForeignListenersAreGone(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	_, _, code := run(t, data, "range", "set", "24160-24169")
	is.Equal(code, 0)
	l := listenOnPort(t, "24163")
	_, _, code = run(t, data, "check")
	is.Equal(code, 0) // records the foreign listener
	out, _, code := run(t, data, "status")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "FOREIGN LISTENERS IN THE RANGE"))
	is.True(strings.Contains(out, strconv.Itoa(l.Process.Pid)))
	is.True(!strings.Contains(out, "gone")) // it listens

	is.NoErr(l.Process.Kill())
	l.Wait()
	out, _, code = run(t, data, "status")
	is.Equal(code, 0)
	is.True(strings.Contains(out, strconv.Itoa(l.Process.Pid)))   // still recorded
	is.True(strings.Contains(out, "(gone: nothing listens now)")) // but said to be gone
	out, _, _ = run(t, data, "status", "--at", "1s")
	is.True(!strings.Contains(out, "gone")) // the past is not judged by the present
}
