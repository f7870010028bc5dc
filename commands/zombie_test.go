package commands_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// A child that ended at once and is not yet reaped (as `ledger run`'s child
// can be when its pid is registered) has no /proc/PID/exe; it is a process
// of this user, not a kernel thread, and its pid is taken as before.
func TestRegisterPIDOfAnExitedChild(t *testing.T) {
	is := is.New(t)
	cmd := exec.Command("true")
	is.NoErr(cmd.Start()) // a child that exits at once
	defer cmd.Wait()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		is.NoErr(err) // not reaped yet: still in /proc
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if f[0] == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not become a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}

	l := MustOpen(t, commands.Config{PortFree: func(int) error { return nil }})
	ctx := context.Background()
	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "quick"})
	is.NoErr(err) // allocate
	got, err := l.RegisterPID(ctx, a.Port, pid)
	is.NoErr(err)          // taken, not refused as a kernel thread
	is.Equal(got.PID, pid) // and recorded
}
