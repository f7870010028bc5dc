package commands

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// The rules of an import: it writes the past only.
//
// The original port manager's files describe what happened before this
// ledger existed, or beside it. An import may add that history, but never
// change what the ledger says now or what it lived itself:
//
//   - only the original tool's actions are importable: allocated,
//     pid_registered, health_changed, stats_reported and released (never
//     range_changed, conflict_detected or chain_accepted, which the
//     original never wrote and which would change the range or the record);
//   - every string passes the same checks as the live API's (validateText,
//     ValidateServiceName, ValidateHealthURL);
//   - an event on a port is dated before the ledger's own first event on
//     that port (its first event that was not imported);
//   - after the import, every port it touches stands now exactly as it
//     stood before: no imported allocation holds a port now, no imported
//     release ends a live allocation, no imported event changes a live
//     holder's pid, health or counts.
//
// An event that breaks a rule refuses the whole import, nothing written,
// with the event's position in the request and its file:line.

// importable reports whether the original port manager wrote events of t.
func importable(t ledger.EventType) bool {
	switch t {
	case ledger.EventAllocated, ledger.EventPIDRegistered, ledger.EventHealthChanged,
		ledger.EventStatsReported, ledger.EventReleased:
		return true
	}
	return false
}

// validateImportedStrings applies the live API's string checks to an
// imported event's payload.
func validateImportedStrings(e *ledger.Event) error {
	switch {
	case e.Allocated != nil:
		p := e.Allocated
		if err := ValidateServiceName(p.ServiceName); err != nil {
			return err
		}
		if err := validateText("started_by", p.StartedBy, MaxStartedBy); err != nil {
			return err
		}
		if err := validateText("purpose", p.Purpose, MaxPurpose); err != nil {
			return err
		}
		if p.PID < 0 {
			return ledger.Errorf(ledger.EINVALID, "pid %d is negative", p.PID)
		}
		if p.Lease < 0 || p.Lease > MaxLease {
			return ledger.Errorf(ledger.EINVALID, "lease %s: want 0 to %s", p.Lease, MaxLease)
		}
		return ValidateHealthURL(p.HealthURL)
	case e.PIDRegistered != nil:
		if err := validatePID(e.PIDRegistered.PID); err != nil {
			return err
		}
		return validateText("cmdline", e.PIDRegistered.Cmdline, ledger.MaxText)
	case e.HealthChanged != nil:
		p := e.HealthChanged
		if !p.To.Valid() || (p.From != "" && !p.From.Valid()) {
			return ledger.Errorf(ledger.EINVALID, "health %q -> %q: unknown state", p.From, p.To)
		}
		if err := validateText("reason", p.Reason, MaxReason); err != nil {
			return err
		}
		return validateText("endpoint", p.Endpoint, MaxReason)
	case e.Released != nil:
		if err := validateText("reason", e.Released.Reason, MaxReason); err != nil {
			return err
		}
		return validateText("released_by", e.Released.ReleasedBy, MaxStartedBy)
	}
	return nil
}

// importRefused is the error of an import that breaks a rule: the event's
// position in the import (0-based, as in the request's array) and its
// source line.
func importRefused(i int, e *ledger.Event, format string, args ...any) error {
	src := ""
	if e.Imported != nil {
		src = " (" + e.Imported.String() + ")"
	}
	return ledger.Errorf(ledger.EINVALID, "import refused: event %d%s: %s; an import writes the past only, and nothing was imported",
		i, src, fmt.Sprintf(format, args...))
}

// checkPastOnly applies the date and present-state rules to the events of
// an import that the log does not have yet; index gives each one's
// position in the request. It reads the log's history of every port the
// import touches.
func (l *Ledger) checkPastOnly(fresh []ledger.Event, index map[ulid.ULID]int) error {
	byPort := map[int][]ledger.Event{}
	for _, e := range fresh {
		byPort[e.Port] = append(byPort[e.Port], e)
	}
	ports := make([]int, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	for _, port := range ports {
		imp := byPort[port]
		slices.SortFunc(imp, func(a, b ledger.Event) int { return a.ID.Compare(b.ID) })
		var lived []ledger.Event
		var firstLived *ledger.Event
		err := l.log.ScanPort(port, ulid.Zero, ulid.Zero, func(e ledger.Event) error {
			if e.Imported == nil && firstLived == nil {
				first := e
				firstLived = &first
			}
			lived = append(lived, e)
			return nil
		})
		if err != nil {
			return err
		}
		if firstLived != nil {
			for _, e := range imp {
				if e.ID.Compare(firstLived.ID) >= 0 {
					return importRefused(index[e.ID], &e, "it is dated %s, at or after the ledger's own first event on port %d (%s, %s)",
						ledger.FormatTime(ledger.IDTime(e.ID)), port, firstLived.Type, ledger.FormatTime(firstLived.At))
				}
			}
		}
		before := foldPort(port, lived)
		after, culprit := foldPortWith(port, lived, imp)
		if !reflect.DeepEqual(before, after) {
			e := culprit
			switch {
			case before != nil && after == nil:
				return importRefused(index[e.ID], &e, "it would end the allocation that holds port %d now (%s since %s)",
					port, before.ServiceName, ledger.FormatTime(before.AllocatedAt))
			case before == nil:
				return importRefused(index[e.ID], &e, "it would leave port %d held now by %s, an allocation the import never releases",
					port, after.ServiceName)
			default:
				return importRefused(index[e.ID], &e, "it would change the allocation that holds port %d now (%s)", port, before.ServiceName)
			}
		}
	}
	return nil
}

// foldPort folds one port's events and returns its allocation at the end
// (nil: free).
func foldPort(port int, evs []ledger.Event) *ledger.Allocation {
	reg := projection.NewRegistry()
	for _, e := range evs {
		reg.Apply(e)
	}
	return reg.Allocs[port]
}

// foldPortWith folds a port's events merged with imported ones, in ID
// order, and returns the allocation at the end with the last imported
// event that changed the port's allocation (or the last imported event).
func foldPortWith(port int, lived, imp []ledger.Event) (*ledger.Allocation, ledger.Event) {
	all := append(slices.Clone(lived), imp...)
	slices.SortFunc(all, func(a, b ledger.Event) int { return a.ID.Compare(b.ID) })
	reg := projection.NewRegistry()
	culprit := imp[len(imp)-1]
	for _, e := range all {
		was := reg.Allocs[port]
		var snapshot ledger.Allocation
		if was != nil {
			snapshot = *was
		}
		reg.Apply(e)
		now := reg.Allocs[port]
		changed := (was == nil) != (now == nil) || (now != nil && !reflect.DeepEqual(snapshot, *now))
		if changed && e.Imported != nil {
			culprit = e
		}
	}
	return reg.Allocs[port], culprit
}
