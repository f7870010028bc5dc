package commands

import (
	"context"
	"errors"
	"slices"
	"time"

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
	if at != zeroID {
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
	if len(trail) > 0 && trail[0].Type == ledger.EventAllocated {
		t := foldTenure(port, trail)
		if t.Release == nil {
			ans.Holder = t
		} else {
			ans.Previous = t
		}
	}
	if at == zeroID {
		return ans, nil
	}
	// Forward from the point: the holder's release, or the next holder.
	var next []ledger.Event
	err = l.log.ScanPort(port, ledger.NextID(at), zeroID, func(e ledger.Event) error {
		if ans.Holder == nil && len(next) == 0 && e.Type != ledger.EventAllocated {
			return ctx.Err() // stray events of a free port
		}
		if len(next) > 0 && e.Type == ledger.EventAllocated {
			return errEnough // a new allocation without a release ends the last
		}
		next = append(next, e)
		if e.Type == ledger.EventReleased {
			return errEnough
		}
		return ctx.Err()
	})
	if err != nil && err != errEnough {
		return ans, err
	}
	if ans.Holder != nil {
		if n := len(next); n > 0 && next[n-1].Type == ledger.EventReleased {
			ans.Holder.Release = releaseOf(next[n-1])
		}
	} else if len(next) > 0 {
		ans.Next = foldTenure(port, next)
	}
	return ans, nil
}

// foldTenure folds the events of one tenure, its allocated event first, and
// stops at its release.
func foldTenure(port int, evs []ledger.Event) *ledger.Tenure {
	reg := projection.NewRegistry()
	var t ledger.Tenure
	for _, e := range evs {
		if e.Type == ledger.EventReleased {
			if a := reg.Allocs[port]; a != nil {
				t.Allocation = *a
			}
			t.Release = releaseOf(e)
			return &t
		}
		reg.Apply(e)
	}
	if a := reg.Allocs[port]; a != nil {
		t.Allocation = *a
	}
	return &t
}

func releaseOf(e ledger.Event) *ledger.Release {
	p := e.Released
	return &ledger.Release{EventID: e.ID, At: e.At, Reason: p.Reason, ReleasedBy: p.ReleasedBy, ImportedFrom: e.ImportedFrom(),
		Duration: ledger.Duration(time.Duration(p.DurationMS) * time.Millisecond)}
}

// Usage reports, per service, how it used its ports over a window: the
// allocations made, the time held (clipped to the window), the longest
// hold, the ports still held at the end and the releases by reason. It
// folds the registry at the window's start from the nearest snapshot and
// scans the window. EINVALID when Since is after Until or the service name
// is bad.
func (l *Ledger) Usage(ctx context.Context, q ledger.UsageQuery) ([]ledger.ServiceUsage, error) {
	if q.Service != "" {
		if err := ValidateServiceName(q.Service); err != nil {
			return nil, err
		}
	}
	if q.Since != zeroID && q.Until != zeroID && q.Since.Compare(q.Until) > 0 {
		return nil, ledger.Errorf(ledger.EINVALID, "since is after until")
	}
	end := l.cfg.Now().UTC()
	if q.Until != zeroID {
		end = ledger.IDTime(q.Until)
	}
	type hold struct {
		service string
		start   time.Time
	}
	open := map[int]hold{}
	usage := map[string]*ledger.ServiceUsage{}
	get := func(svc string) *ledger.ServiceUsage {
		u := usage[svc]
		if u == nil {
			u = &ledger.ServiceUsage{Service: svc, Releases: map[string]int{}}
			usage[svc] = u
		}
		return u
	}
	closeHold := func(port int, at time.Time) {
		h, ok := open[port]
		if !ok {
			return
		}
		delete(open, port)
		u := get(h.service)
		d := max(at.Sub(h.start), 0)
		u.TotalHold += ledger.Duration(d)
		if ledger.Duration(d) > u.LongestHold || u.LongestPort == 0 {
			u.LongestHold, u.LongestPort = ledger.Duration(d), port
		}
	}

	after := zeroID
	if q.Since != zeroID {
		after = ledger.PrevID(q.Since)
		reg, err := projection.StateAt(l.log, after)
		if err != nil {
			return nil, err
		}
		start := ledger.IDTime(q.Since)
		for p, a := range reg.Allocs {
			open[p] = hold{service: a.ServiceName, start: start}
			u := get(a.ServiceName)
			u.Holds++
			if a.ImportedFrom != "" {
				u.ImportedHolds++
			}
		}
	}
	err := l.log.Scan(after, q.Until, func(e ledger.Event) error {
		switch e.Type {
		case ledger.EventAllocated:
			closeHold(e.Port, e.At)
			open[e.Port] = hold{service: e.Allocated.ServiceName, start: e.At}
			u := get(e.Allocated.ServiceName)
			u.Allocations++
			u.Holds++
			if e.Imported != nil {
				u.ImportedHolds++
			}
		case ledger.EventReleased:
			if h, ok := open[e.Port]; ok {
				get(h.service).Releases[e.Released.Reason]++
				closeHold(e.Port, e.At)
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	for p, h := range open {
		get(h.service).HeldAtEnd++
		closeHold(p, end)
	}
	out := make([]ledger.ServiceUsage, 0, len(usage))
	for _, u := range usage {
		if q.Service == "" || u.Service == q.Service {
			out = append(out, *u)
		}
	}
	slices.SortFunc(out, func(a, b ledger.ServiceUsage) int {
		switch {
		case a.Service < b.Service:
			return -1
		case a.Service > b.Service:
			return 1
		}
		return 0
	})
	return out, nil
}
