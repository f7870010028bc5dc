package watchdog

import (
	"context"
	"github.com/portledger/portledger/internal/proc"
	"slices"
)

// listenerPIDs returns the distinct, known owners of a port's sockets.
func listenerPIDs(socks []listener) []int {
	var pids []int
	for _, s := range socks {
		if s.PID > 0 && !slices.Contains(pids, s.PID) {
			pids = append(pids, s.PID)
		}
	}
	slices.Sort(pids)
	return pids
}

// heir picks, among the processes that listen on a port, the one that
// carries on the service of a registered process that is gone: a
// descendant of it (its parent chain, process group or session leads to
// the registered PID, as for the child of `bash -c 'server &'`), else the
// port's only listener. It returns 0 when there is none.
func heir(ctx context.Context, registered int, listeners []int) (pid int, why string) {
	// The registered PID itself listening means it was recycled: another
	// process, never the service's heir.
	listeners = slices.DeleteFunc(slices.Clone(listeners), func(l int) bool { return l == registered })
	for _, l := range listeners {
		if descends(ctx, l, registered) {
			return l, "a descendant of the registered process"
		}
	}
	if len(listeners) == 1 {
		return listeners[0], "the only listener on the port"
	}
	return 0, ""
}

// maxAncestry bounds the walk up a parent chain.
const maxAncestry = 64

// descends reports whether pid was started by ancestor: ancestor is in its
// parent chain, or leads its process group or session (a process whose
// parent exited is handed to init, but keeps its group and session).
func descends(ctx context.Context, pid, ancestor int) bool {
	if pid <= 0 || ancestor <= 1 || pid == ancestor {
		return false
	}
	if ledBy(pid, ancestor) {
		return true
	}
	cur := pid
	for range maxAncestry {
		p, err := proc.Open(ctx, cur)
		if err != nil {
			return false
		}
		pp, err := p.PpidWithContext(ctx)
		if err != nil || pp <= 1 {
			return false
		}
		if int(pp) == ancestor {
			return true
		}
		cur = int(pp)
	}
	return false
}
