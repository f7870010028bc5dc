package proc_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/proc"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		pid  int
		none bool // ErrNoProcess
	}{
		{name: "this process", pid: os.Getpid()},
		{name: "zero", pid: 0, none: true},
		{name: "negative", pid: -1, none: true},
		{name: "past MaxPID", pid: proc.MaxPID + 1, none: true},
		{name: "past int32", pid: 1<<32 + os.Getpid(), none: true}, // would wrap to this process in int32
		{name: "exited and reaped", pid: gone.Process.Pid, none: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			p, err := proc.Open(ctx, tt.pid)
			if tt.none {
				is.True(errors.Is(err, proc.ErrNoProcess)) // no such process
				return
			}
			is.NoErr(err)                // found
			is.Equal(int(p.Pid), tt.pid) // the process asked for
		})
	}
}
