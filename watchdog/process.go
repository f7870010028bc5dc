package watchdog

import (
	"context"
	"errors"
	"fmt"
	"github.com/portledger/portledger/internal/proc"
	"slices"

	"github.com/portledger/portledger/ledger"
	"github.com/shirou/gopsutil/v3/process"
)

// procInfo is what the OS says about one PID.
type procInfo struct {
	exists    bool
	zombie    bool
	startedAt int64 // Unix ms as gopsutil's CreateTime computes it; 0 if unknown
}

// processCache looks every PID up once per sweep: many allocations may name
// the same process.
type processCache map[int]procInfo

// lookup returns what the OS says about pid, reading it on first use.
func (c processCache) lookup(ctx context.Context, pid int) procInfo {
	if info, ok := c[pid]; ok {
		return info
	}
	info := readProcess(ctx, pid)
	c[pid] = info
	return info
}

// readProcess asks gopsutil about pid. The start time is read with the same
// call that recorded it (CreateTime), so equal processes give equal values.
func readProcess(ctx context.Context, pid int) procInfo {
	p, err := proc.Open(ctx, pid)
	if err != nil {
		if errors.Is(err, proc.ErrNoProcess) {
			return procInfo{}
		}
		// The OS would not say (permissions, say): a process we cannot
		// prove gone is alive.
		return procInfo{exists: true}
	}
	info := procInfo{exists: true}
	if st, err := p.StatusWithContext(ctx); err == nil && slices.Contains(st, process.Zombie) {
		info.zombie = true
	}
	if t, err := p.CreateTimeWithContext(ctx); err == nil {
		info.startedAt = t
	}
	return info
}

// checkProcess says whether the allocation's process runs. It returns the
// reason it counts as gone when it does not: it exited, it is a zombie, or
// its PID now names another process (the start time differs from the one
// recorded, so the PID was recycled).
func checkProcess(ctx context.Context, c processCache, a ledger.Allocation) (alive bool, gone string) {
	info := c.lookup(ctx, a.PID)
	switch {
	case !info.exists:
		return false, "exited"
	case info.zombie:
		return false, "exited (zombie, not yet reaped)"
	case a.PIDStartedAt != nil && info.startedAt != 0 && info.startedAt != int64(*a.PIDStartedAt):
		return false, fmt.Sprintf("exited (pid %d now belongs to a process started at %s, not %s)",
			a.PID, ledger.FormatTime(ledger.Millis(info.startedAt).Time()), ledger.FormatTime(a.PIDStartedAt.Time()))
	}
	return true, ""
}
