// Package proc is the one way the ledger looks a process up by its PID:
// the number is checked against MaxPID before the OS is asked (a larger one
// would wrap in gopsutil's int32), and "no such process" is told apart from
// an OS that would not say (another user's process, say).
package proc

import (
	"context"
	"errors"
	"fmt"

	"github.com/shirou/gopsutil/v3/process"
)

// MaxPID is the highest PID the kernel can hand out (the ceiling of Linux's
// pid_max, 2^22): a larger number names no process.
const MaxPID = 1 << 22

// ErrNoProcess says that no process runs with a PID.
var ErrNoProcess = errors.New("no such process")

// Open returns the process with the given PID, to read what a caller needs
// of it. It returns an error wrapping ErrNoProcess when pid cannot name a
// process (not 1 to MaxPID) or the OS says none runs with it, and the OS's
// own error when it will not say.
func Open(ctx context.Context, pid int) (*process.Process, error) {
	if pid <= 0 || pid > MaxPID {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	p, err := process.NewProcessWithContext(ctx, int32(pid))
	if errors.Is(err, process.ErrorProcessNotRunning) {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	return p, err
}
