package commands

import (
	"context"
	"errors"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// errEnough stops a scan that has what it needs.
var errEnough = errors.New("enough")

// Who says who held a port at a point (zero: now). It reads the port index
// around the point instead of folding the registry: back from the point to
// the port's last allocation or release, and forward from it to the next
// one, so its cost is that of one tenure, not of the log. An event at the
// point's moment is part of the point: a port allocated at T is held at T,
// one released at T is free at T. EINVALID for a bad port.
func (l *Ledger) Who(ctx context.Context, port int, at ulid.ULID) (ledger.WhoAnswer, error) {
	if err := ledger.CheckPort(port); err != nil {
		return ledger.WhoAnswer{}, err
	}
	ans := ledger.WhoAnswer{Port: port, At: l.cfg.Now().UTC()}
	if !at.IsZero() {
		ans.At = ledger.IDTime(at)
	}
	asOf, err := l.log.LastAt(at)
	if err != nil {
		return ans, err
	}
	ans.AsOf = asOf

	// Back from the point: the events since the port's last allocation,
	// newest first.
	var trail []ledger.Event
	err = l.log.ScanPortBack(port, at, func(e ledger.Event) (bool, error) {
		trail = append(trail, e)
		return e.Type != ledger.EventAllocated, ctx.Err()
	})
	if err != nil {
		return ans, err
	}
	slices.Reverse(trail)
	projection.WhoTenure(&ans, nil, trail)
	if at.IsZero() {
		return ans, nil
	}
	// Forward from the point: the holder's release, or the next holder.
	next := projection.NewWhoNext(&ans)
	err = l.log.ScanPort(port, ledger.NextID(at), ulid.Zero, func(e ledger.Event) error {
		if !next.Take(e) {
			return errEnough
		}
		return ctx.Err()
	})
	if err != nil && err != errEnough {
		return ans, err
	}
	next.Finish(&ans)
	return ans, nil
}
