//go:build unix

package commands_test

import (
	"context"
	"github.com/portledger/portledger/internal/ledgertest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// kernelThread returns the pid of a kernel thread of this machine (one with
// PF_KTHREAD in /proc/PID/stat), or skips: a container's pid namespace may
// show none.
func kernelThread(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		flags, err := strconv.ParseUint(f[6], 10, 64)
		if err == nil && flags&0x00200000 != 0 {
			return pid
		}
	}
	t.Skip("no kernel thread is visible in this pid namespace")
	return 0
}

// otherUsersProcess starts a process as the user nobody (65534); it needs
// root, and skips otherwise.
func otherUsersProcess(t *testing.T) int {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("starting another user's process needs root")
	}
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep as nobody: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// threadOf returns the id of a thread of process pid that is not its main
// thread (Linux names threads in /proc and kill(2) as it names processes),
// or skips.
func threadOf(t *testing.T, pid int) int {
	t.Helper()
	for range 100 {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			t.Skipf("no /proc/%d/task: %v", pid, err)
		}
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil && tid != pid {
				return tid
			}
		}
		time.Sleep(10 * time.Millisecond) // a Go process starts its other threads at once
	}
	t.Skipf("process %d has one thread", pid)
	return 0
}

// TestPIDHelperProcess is the child of threadedProcess: a Go process,
// so one with several threads, that waits to be killed.
func TestPIDHelperProcess(t *testing.T) {
	if os.Getenv("PORTLEDGER_PID_HELPER") != "1" {
		t.Skip("the child of threadedProcess")
	}
	time.Sleep(5 * time.Minute)
}

// threadedProcess starts a process of this user with several threads (the
// test binary itself, in TestPIDHelperProcess) and returns its pid.
func threadedProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPIDHelperProcess$")
	cmd.Env = append(os.Environ(), "PORTLEDGER_PID_HELPER=1")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

func TestPIDsThatCannotBeAServiceAreRefused(t *testing.T) {
	l := MustOpen(t, commands.Config{})
	bg := context.Background()
	held, err := l.Allocate(bg, ledger.AllocateRequest{ServiceName: "held"})
	if err != nil {
		t.Fatal(err)
	}
	asUser := func(uid int) context.Context {
		return ledger.WithActor(bg, ledger.Actor{Via: ledger.ViaSocket, UID: uid, PID: 1})
	}
	tests := []struct {
		name string
		ctx  context.Context
		pid  func(t *testing.T) int
		code string
	}{
		{"a kernel thread", bg, kernelThread, ledger.EINVALID},
		{"the ledger's own process", bg, func(*testing.T) int { return os.Getpid() }, ledger.EINVALID},
		{"a thread of the ledger's own process", bg, func(t *testing.T) int { return threadOf(t, os.Getpid()) }, ledger.EINVALID},
		{"a thread of another process", bg, func(t *testing.T) int { return threadOf(t, threadedProcess(t)) }, ledger.EINVALID},
		{"another user's process, caller not root", asUser(4242), func(t *testing.T) int { return ledgertest.Sleeper(t) }, ledger.EFORBIDDEN},
		{"root's process named by nobody", asUser(65534), func(t *testing.T) int { return ledgertest.Sleeper(t) }, ledger.EFORBIDDEN},
	}
	for _, tt := range tests {
		for _, via := range []string{"register-pid", "allocate"} {
			t.Run(tt.name+" via "+via, func(t *testing.T) {
				is := is.New(t)
				pid := tt.pid(t)
				if os.Getuid() != 0 && tt.code == ledger.EFORBIDDEN && strings.HasPrefix(tt.name, "root's") {
					t.Skip("the test's processes are root's only when it runs as root")
				}
				before, err := l.History(bg, ledger.HistoryQuery{})
				is.NoErr(err)
				if via == "register-pid" {
					_, err = l.RegisterPID(tt.ctx, held.Port, pid)
				} else {
					_, err = l.Allocate(tt.ctx, ledger.AllocateRequest{ServiceName: "intruder", PID: pid})
				}
				is.Equal(ledger.ErrorCode(err), tt.code) // refused: %v
				after, err := l.History(bg, ledger.HistoryQuery{})
				is.NoErr(err)
				is.Equal(len(after), len(before)) // the log is unchanged
			})
		}
	}

	t.Run("root may name another user's process", func(t *testing.T) {
		is := is.New(t)
		pid := otherUsersProcess(t)
		a, err := l.RegisterPID(asUser(0), held.Port, pid)
		is.NoErr(err)        // root names nobody's process
		is.Equal(a.PID, pid) // recorded
	})
	t.Run("a user names their own process", func(t *testing.T) {
		is := is.New(t)
		pid := otherUsersProcess(t)
		a, err := l.RegisterPID(asUser(65534), held.Port, pid)
		is.NoErr(err)        // nobody names nobody's process
		is.Equal(a.PID, pid) // recorded
	})
}
