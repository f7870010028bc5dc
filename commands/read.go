package commands

import (
	"context"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// state returns the registry at a point: a copy of the live one for the zero
// point, else a fold from the nearest snapshot.
func (l *Ledger) state(at ulid.ULID) (*projection.Registry, error) {
	if at.IsZero() {
		return l.Registry(), nil
	}
	l.mu.RLock()
	head := l.reg.Last
	l.mu.RUnlock()
	if at.Compare(head) >= 0 {
		return l.Registry(), nil
	}
	return projection.StateAt(l.log, at)
}

// Status returns the registry part of the status at a point; the watchdog
// part reports a watchdog that is not running (the daemon fills it in).
func (l *Ledger) Status(ctx context.Context, at ulid.ULID) (ledger.Status, error) {
	reg, err := l.state(at)
	if err != nil {
		return ledger.Status{}, err
	}
	st := ledger.Status{PortManager: reg.Status(), Watchdog: ledger.WatchdogStatus{MonitoredPorts: len(reg.Allocs)}}
	if at.IsZero() {
		h := l.log.ChainHead()
		st.PortManager.Chain = &h
	}
	return st, nil
}

// Allocations lists the allocations at a point, optionally of one service.
func (l *Ledger) Allocations(ctx context.Context, q ledger.AllocationQuery) ([]ledger.Allocation, error) {
	reg, err := l.state(q.At)
	if err != nil {
		return nil, err
	}
	all := reg.Allocations()
	if q.Service == "" {
		return all, nil
	}
	out := all[:0]
	for _, a := range all {
		if a.ServiceName == q.Service {
			out = append(out, a)
		}
	}
	return out, nil
}

// Allocation returns the holder of a port at a point, or ENOTFOUND.
func (l *Ledger) Allocation(ctx context.Context, port int, at ulid.ULID) (ledger.Allocation, error) {
	if err := ledger.CheckPort(port); err != nil {
		return ledger.Allocation{}, err
	}
	reg, err := l.state(at)
	if err != nil {
		return ledger.Allocation{}, err
	}
	a := reg.Allocs[port]
	if a == nil {
		return ledger.Allocation{}, notAllocated(port)
	}
	return *a, nil
}

// History returns the events matching q, oldest first. By port it reads the
// port index; by service it folds from the snapshot before Since so that it
// knows which port each service held when the window opens.
func (l *Ledger) History(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Event, error) {
	if q.Port != 0 {
		if err := ledger.CheckPort(q.Port); err != nil {
			return nil, err
		}
	}
	if q.Service != "" {
		if err := ValidateServiceName(q.Service); err != nil {
			return nil, err
		}
	}
	if q.Limit < 0 {
		return nil, ledger.Errorf(ledger.EINVALID, "limit %d: must not be negative", q.Limit)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Since.Compare(q.Until) > 0 {
		return nil, ledger.Errorf(ledger.EINVALID, "since is after until")
	}
	if q.Newest && q.Port != 0 && q.Service == "" && q.Type == "" {
		return l.portHistoryBack(ctx, q)
	}
	var out []ledger.Event
	full := func() bool { return q.Limit > 0 && len(out) >= q.Limit && !q.Newest }

	// holders tracks which service holds each port, for the service filter.
	var holders map[int]string
	if q.Service != "" {
		holders = map[int]string{}
		if !q.Since.IsZero() {
			reg, err := projection.StateAt(l.log, ledger.PrevID(q.Since))
			if err != nil {
				return nil, err
			}
			for p, a := range reg.Allocs {
				holders[p] = a.ServiceName
			}
		}
	}
	if q.Type != "" && q.Type.Action() == string(q.Type) {
		return nil, ledger.Errorf(ledger.EINVALID, "event type %q: unknown", q.Type)
	}
	keep := func(e ledger.Event) bool {
		if holders == nil {
			return true
		}
		svc := holders[e.Port]
		switch e.Type {
		case ledger.EventAllocated:
			svc = e.Allocated.ServiceName
			holders[e.Port] = svc
		case ledger.EventReleased:
			delete(holders, e.Port)
		}
		return svc == q.Service
	}
	errStop := fmt.Errorf("stop")
	visit := func(e ledger.Event) error {
		if keep(e) && (q.Type == "" || e.Type == q.Type) {
			if q.Newest && q.Limit > 0 && len(out) == 2*q.Limit {
				// Newest first without the port index: keep only the
				// newest Limit seen so far, so memory stays bounded.
				out = append(out[:0], out[q.Limit:]...)
			}
			out = append(out, e)
			if full() {
				return errStop
			}
		}
		return ctx.Err()
	}
	var err error
	switch {
	case q.Port != 0 && q.Service == "":
		err = l.log.ScanPort(q.Port, q.Since, q.Until, visit)
	default:
		after := ulid.Zero
		if !q.Since.IsZero() {
			after = ledger.PrevID(q.Since)
		}
		err = l.log.Scan(after, q.Until, func(e ledger.Event) error {
			if q.Port != 0 && e.Port != q.Port {
				keep(e)
				return nil
			}
			return visit(e)
		})
	}
	if err != nil && err != errStop {
		return nil, err
	}
	if out == nil {
		out = []ledger.Event{}
	}
	if q.Newest {
		if q.Limit > 0 && len(out) > q.Limit {
			out = out[len(out)-q.Limit:]
		}
		slices.Reverse(out)
	}
	return out, nil
}

// portHistoryBack answers a port's history newest first, reading the port
// index backwards from Until and stopping at Limit or at Since.
func (l *Ledger) portHistoryBack(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Event, error) {
	out := []ledger.Event{}
	err := l.log.ScanPortBack(q.Port, q.Until, func(e ledger.Event) (bool, error) {
		if !q.Since.IsZero() && e.ID.Compare(q.Since) < 0 {
			return false, nil
		}
		out = append(out, e)
		return q.Limit == 0 || len(out) < q.Limit, ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
