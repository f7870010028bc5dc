package commands

import (
	"cmp"
	"context"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// RegisterPID records the process that serves a port, with its start time,
// so that a later process that reuses the PID is not taken for it.
func (l *Ledger) RegisterPID(ctx context.Context, port, pid int) (ledger.Allocation, error) {
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
	res, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, _ time.Time) ([]ledger.Event, error) {
		if draft.Allocs[port] == nil {
			return nil, notAllocated(port)
		}
		if err := checkServicePID(ctx, info); err != nil {
			return nil, err
		}
		return []ledger.Event{{Type: ledger.EventPIDRegistered, Port: port, PIDRegistered: &ledger.PIDRegistered{
			PID: info.PID, PIDStarted: info.StartedAt, Cmdline: info.Cmdline,
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

// ReportStats records a service's running request and error totals. To keep
// the log small, at most one stats event per allocation is written per
// StatsInterval; the totals of reports in between are carried by the next
// stats event or by the release.
func (l *Ledger) ReportStats(ctx context.Context, port int, requests, errs int64) error {
	if err := ledger.CheckPort(port); err != nil {
		return err
	}
	if requests < 0 || errs < 0 {
		return ledger.Errorf(ledger.EINVALID, "request_count and error_count must not be negative")
	}
	_, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, now time.Time) ([]ledger.Event, error) {
		a := draft.Allocs[port]
		if a == nil {
			return nil, notAllocated(port)
		}
		l.statsMu.Lock()
		defer l.statsMu.Unlock()
		p := l.stats[port]
		if p == nil || p.eventID != a.EventID {
			p = &pendingStats{eventID: a.EventID}
			l.stats[port] = p
		}
		p.requests, p.errors = requests, errs
		if !p.lastEmit.IsZero() && now.Sub(p.lastEmit) < StatsInterval {
			p.dirty = true
			return nil, nil
		}
		p.lastEmit, p.dirty = now, false
		return []ledger.Event{{Type: ledger.EventStatsReported, Port: port, StatsReported: &ledger.StatsReported{
			RequestCount: requests, ErrorCount: errs,
		}}}, nil
	}})
	return err
}

// Release frees a port. With req.EventID set it frees the port only if that
// allocation still holds it, so a late release never frees a new holder.
func (l *Ledger) Release(ctx context.Context, req ledger.ReleaseRequest) (ledger.Event, error) {
	if err := ledger.CheckPort(req.Port); err != nil {
		return ledger.Event{}, err
	}
	if err := validateText("reason", req.Reason, MaxReason); err != nil {
		return ledger.Event{}, err
	}
	if err := validateText("released_by", req.ReleasedBy, MaxStartedBy); err != nil {
		return ledger.Event{}, err
	}
	res, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, now time.Time) ([]ledger.Event, error) {
		a := draft.Allocs[req.Port]
		if a == nil {
			return nil, notAllocated(req.Port)
		}
		if !req.EventID.IsZero() && req.EventID != a.EventID {
			return nil, ledger.Errorf(ledger.ECONFLICT, "port %d is now held by another allocation (%s, %s)", req.Port, a.ServiceName, a.EventID)
		}
		reason := cmp.Or(req.Reason, "released")
		requests, errs := a.RequestCount, a.ErrorCount
		l.statsMu.Lock()
		if p := l.stats[req.Port]; p != nil {
			if p.eventID == a.EventID {
				requests, errs = p.requests, p.errors
			}
			delete(l.stats, req.Port)
		}
		l.statsMu.Unlock()
		held := now.Sub(a.AllocatedAt)
		if held < 0 {
			held = 0
		}
		return []ledger.Event{{Type: ledger.EventReleased, Port: req.Port, Released: &ledger.Released{
			Reason: reason, ReleasedBy: req.ReleasedBy, DurationMS: held.Milliseconds(),
			RequestCount: requests, ErrorCount: errs,
		}}}, nil
	}})
	if err != nil {
		return ledger.Event{}, err
	}
	return res.events[0], nil
}

// RecordHealth records a transition found by the watchdog. A report about an
// allocation that is gone (or was replaced) is refused with ENOTFOUND; a
// report of the state the allocation already has writes nothing.
func (l *Ledger) RecordHealth(ctx context.Context, rep ledger.HealthReport) error {
	if err := ledger.CheckPort(rep.Port); err != nil {
		return err
	}
	if !rep.To.Valid() {
		return ledger.Errorf(ledger.EINVALID, "health %q: want starting, healthy, unhealthy or dead", rep.To)
	}
	if err := validateText("reason", rep.Reason, MaxReason); err != nil {
		return err
	}
	if err := validateText("endpoint", rep.Endpoint, MaxReason); err != nil {
		return err
	}
	_, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, _ time.Time) ([]ledger.Event, error) {
		a := draft.Allocs[rep.Port]
		if a == nil || (!rep.EventID.IsZero() && rep.EventID != a.EventID) {
			return nil, ledger.Errorf(ledger.ENOTFOUND, "port %d: the allocation %s is gone", rep.Port, rep.EventID)
		}
		if a.HealthStatus == rep.To {
			return nil, nil
		}
		return []ledger.Event{{Type: ledger.EventHealthChanged, Port: rep.Port, HealthChanged: &ledger.HealthChanged{
			From: a.HealthStatus, To: rep.To, Reason: rep.Reason,
			Alive: rep.Alive, Listening: rep.Listening, Endpoint: rep.Endpoint,
		}}}, nil
	}})
	return err
}

// RecordConflict records a listener in the managed range that the ledger did
// not hand out. The same port and PID are recorded once.
func (l *Ledger) RecordConflict(ctx context.Context, port, pid int, command string) error {
	if err := ledger.CheckPort(port); err != nil {
		return err
	}
	if pid < 0 {
		return ledger.Errorf(ledger.EINVALID, "pid %d: must not be negative", pid)
	}
	// The command line is what the OS says the listener runs: escaped and
	// recorded, never a reason to refuse the record.
	command = escapeObserved(command, ledger.MaxText)
	_, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, _ time.Time) ([]ledger.Event, error) {
		if draft.Allocs[port] != nil {
			return nil, ledger.Errorf(ledger.ECONFLICT, "port %d is allocated by the ledger", port)
		}
		if c, ok := draft.Conflicts[port]; ok && c.PID == pid {
			return nil, nil
		}
		return []ledger.Event{{Type: ledger.EventConflictDetected, Port: port, Conflict: &ledger.ConflictDetected{
			PID: pid, Command: command,
		}}}, nil
	}})
	return err
}

// SetRange changes the managed range. It refuses a range that would leave a
// live allocation outside it.
func (l *Ledger) SetRange(ctx context.Context, r ledger.Range) error {
	if err := r.Validate(); err != nil {
		return err
	}
	_, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, _ time.Time) ([]ledger.Event, error) {
		if draft.Range == r {
			return nil, nil
		}
		for p, a := range draft.Allocs {
			if !r.Contains(p) {
				return nil, ledger.Errorf(ledger.EINVALID, "range %s would leave port %d (%s) outside; release it first", r, p, a.ServiceName)
			}
		}
		return []ledger.Event{{Type: ledger.EventRangeChanged, RangeChanged: &ledger.RangeChanged{From: draft.Range, To: r}}}, nil
	}})
	return err
}

func notAllocated(port int) error {
	return ledger.Errorf(ledger.ENOTFOUND, "port %d is not allocated", port)
}

// pendingStats are the latest totals of an allocation not yet in the log.
type pendingStats struct {
	eventID          ulid.ULID
	requests, errors int64
	lastEmit         time.Time
	dirty            bool
}
