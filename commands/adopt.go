package commands

import (
	"context"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// maxReason bounds the reason of an adoption.
const maxReason = 512

// AdoptPID records pid as the process of the allocation eventID of port,
// with a reason, in a pid_registered event. The watchdog calls it when the
// registered process (a wrapper such as `bash -c`, `npm start` or a daemon
// that forks) is gone while its descendant, or the port's only listener,
// still serves the port: the service lives on, so the port is not released.
// It returns ENOTFOUND when the port is free or held by another allocation
// now, and the errors of RegisterPID for the process.
func (l *Ledger) AdoptPID(ctx context.Context, port int, eventID ulid.ULID, pid int, reason string) (ledger.Allocation, error) {
	if err := ledger.CheckPort(port); err != nil {
		return ledger.Allocation{}, err
	}
	if err := validatePID(pid); err != nil {
		return ledger.Allocation{}, err
	}
	info, err := l.cfg.Process(pid)
	if err != nil {
		return ledger.Allocation{}, err
	}
	if err := checkServicePID(ctx, info); err != nil {
		return ledger.Allocation{}, err
	}
	reason = escapeObserved(reason, maxReason)
	res, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, _ time.Time) ([]ledger.Event, error) {
		a := draft.Allocs[port]
		if a == nil || a.EventID != eventID {
			return nil, ledger.Errorf(ledger.ENOTFOUND, "port %d: the allocation %s does not hold it now", port, eventID)
		}
		return []ledger.Event{{Type: ledger.EventPIDRegistered, Port: port, PIDRegistered: &ledger.PIDRegistered{
			PID: info.PID, PIDStarted: info.StartedAt, Cmdline: info.Cmdline, Reason: reason,
		}}}, nil
	}})
	if err != nil {
		return ledger.Allocation{}, err
	}
	if res.alloc == nil {
		return ledger.Allocation{}, notAllocated(port)
	}
	return *res.alloc, nil
}
