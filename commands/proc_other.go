//go:build !linux

package commands

import (
	"context"

	"github.com/portledger/portledger/internal/proc"
)

// processTraits reads a process's real uid; telling a kernel thread or a
// thread apart needs Linux's /proc, so elsewhere none is found (the thread
// group is 0: unknown).
func processTraits(pid int) (uid int, kernelThread bool, tgid int, err error) {
	p, err := proc.Open(context.Background(), pid)
	if err != nil {
		return -1, false, 0, err
	}
	uids, err := p.Uids()
	if err != nil || len(uids) == 0 {
		return -1, false, 0, err
	}
	return int(uids[0]), false, 0, nil
}
