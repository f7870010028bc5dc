package watchdog

import (
	"context"
	"errors"
	"fmt"
	"github.com/portledger/portledger/internal/proc"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// conflicts finds listeners inside the managed range on ports that nobody
// holds and records each one once: a listener already in the registry's
// conflicts (same port, same process) is skipped, as are our own sockets
// (the ledger's own bind probes among them). It returns the conflicts
// recorded by this sweep.
func (w *Watchdog) conflicts(ctx context.Context, pm ledger.PortManagerStatus, socks listing) ([]ledger.Conflict, error) {
	rng, err := ledger.ParseRange(pm.PortRange)
	if err != nil {
		return nil, nil // no range, no conflicts; the registry is not ours to fix
	}
	held := make(map[int]bool, len(pm.Allocations))
	for _, a := range pm.Allocations {
		held[a.Port] = true
	}
	var ports []int
	var all []listener
	for port, ls := range socks {
		if rng.Contains(port) && !held[port] {
			ports = append(ports, port)
			all = append(all, ls...)
		}
	}
	if len(ports) == 0 {
		return nil, nil
	}
	slices.Sort(ports)
	w.sockets.resolve(ctx, all) // one search of the process table for every new socket
	owner := make(map[uint64]int, len(all))
	for _, s := range all {
		owner[s.Inode] = s.PID
	}
	recorded := make(map[int]int, len(pm.Conflicts))
	for _, c := range pm.Conflicts {
		recorded[c.Port] = c.PID
	}

	var found []ledger.Conflict
	var errs []error
	for _, port := range ports {
		pid, ok := w.squatter(socks[port], owner)
		if !ok {
			continue
		}
		if rp, dup := recorded[port]; dup && rp == pid {
			continue
		}
		// The registry was read before the listing: a port allocated in
		// between and already bound by its new holder is no conflict.
		switch _, err := w.svc.Allocation(ctx, port, ulid.Zero); ledger.ErrorCode(err) {
		case ledger.ENOTFOUND:
		case "":
			continue
		default:
			errs = append(errs, fmt.Errorf("watchdog: look up port %d: %w", port, err))
			continue
		}
		cmd := commandOf(ctx, pid)
		switch err := w.svc.RecordConflict(ctx, port, pid, cmd); ledger.ErrorCode(err) {
		case "":
		case ledger.ECONFLICT: // allocated since the look-up
			continue
		default:
			errs = append(errs, fmt.Errorf("watchdog: record conflict on port %d: %w", port, err))
			continue
		}
		w.opts.Logger.Warn("foreign listener in the managed range", "port", port, "pid", pid, "command", cmd)
		found = append(found, ledger.Conflict{Port: port, PID: pid, Command: cmd, DetectedAt: w.opts.Now()})
	}
	return found, errors.Join(errs...)
}

// squatter picks the process to blame for the listeners on one port: the
// lowest PID that is not ours. ok is false when the port is ours or when an
// owner cannot be named yet: a socket whose owner is unknown is blamed on PID
// 0 only from the second sweep that sees it, because a socket that vanishes
// between listing and search (a bind probe) is not a squatter.
func (w *Watchdog) squatter(ls []listener, owner map[uint64]int) (pid int, ok bool) {
	unknown := false
	for _, s := range ls {
		p := s.PID
		if s.Inode != 0 {
			p = owner[s.Inode]
		}
		switch {
		case p == w.self:
			return 0, false
		case p == 0:
			unknown = true
		case pid == 0 || p < pid:
			pid = p
		}
	}
	if pid != 0 {
		return pid, true
	}
	if !unknown {
		return 0, false
	}
	for _, s := range ls {
		if s.Inode != 0 && w.sockets.unresolvedBefore(s.Inode) {
			return 0, true
		}
	}
	return 0, false
}

// commandOf returns the command line of pid, shortened, or "" if unknown.
func commandOf(ctx context.Context, pid int) string {
	p, err := proc.Open(ctx, pid)
	if err != nil {
		return ""
	}
	cmd, _ := p.CmdlineWithContext(ctx)
	return clip(cmd)
}
