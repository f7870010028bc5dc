package projection

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/portledger/portledger/ledger"
)

// The folds behind the audit answers (who held a port, how services used
// their ports), shared by a host's own ledger and the fleet's readers.

// FoldTenure folds the events of one tenure of port, its allocated event
// first (or, with a registry at a point inside the tenure, the tenure's
// events after that point), and stops at its release. from may be nil.
func FoldTenure(from *Registry, port int, evs []ledger.Event) *ledger.Tenure {
	reg := from
	if reg == nil {
		reg = NewRegistry()
	}
	var t ledger.Tenure
	for _, e := range evs {
		if e.Type == ledger.EventReleased {
			if a := reg.Allocs[port]; a != nil {
				t.Allocation = *a
			}
			t.Release = ReleaseOf(e)
			return &t
		}
		reg.Apply(e)
	}
	if a := reg.Allocs[port]; a != nil {
		t.Allocation = *a
	}
	return &t
}

// ReleaseOf describes a released event.
func ReleaseOf(e ledger.Event) *ledger.Release {
	p := e.Released
	return &ledger.Release{EventID: e.ID, At: e.At, Reason: p.Reason, ReleasedBy: p.ReleasedBy, ImportedFrom: e.ImportedFrom(),
		Duration: ledger.Duration(time.Duration(p.DurationMS) * time.Millisecond)}
}

// Usage accumulates how each service used its ports over a window: Holds
// are clipped to the window, an allocation made before it counting from its
// start and one still held at its end counting up to the end.
type Usage struct {
	open  map[int]usageHold
	usage map[string]*ledger.ServiceUsage
}

type usageHold struct {
	service string
	start   time.Time
}

// NewUsage starts a window at since with the registry as it stood then
// (nil: nothing held).
func NewUsage(start *Registry, since time.Time) *Usage {
	u := &Usage{open: map[int]usageHold{}, usage: map[string]*ledger.ServiceUsage{}}
	if start != nil {
		for p, a := range start.Allocs {
			u.open[p] = usageHold{service: a.ServiceName, start: since}
			s := u.get(a.ServiceName)
			s.Holds++
			if a.ImportedFrom != "" {
				s.ImportedHolds++
			}
		}
	}
	return u
}

func (u *Usage) get(svc string) *ledger.ServiceUsage {
	s := u.usage[svc]
	if s == nil {
		s = &ledger.ServiceUsage{Service: svc, Releases: map[string]int{}}
		u.usage[svc] = s
	}
	return s
}

func (u *Usage) closeHold(port int, at time.Time) {
	h, ok := u.open[port]
	if !ok {
		return
	}
	delete(u.open, port)
	s := u.get(h.service)
	d := max(at.Sub(h.start), 0)
	s.TotalHold += ledger.Duration(d)
	if ledger.Duration(d) > s.LongestHold || s.LongestPort == 0 {
		s.LongestHold, s.LongestPort = ledger.Duration(d), port
	}
}

// UsageTypes are the types of the events that change a Usage; Apply
// ignores the others, so a window can be read with ledger.Log.ScanTypes.
var UsageTypes = []ledger.EventType{ledger.EventAllocated, ledger.EventReleased}

// Apply folds one event of the window.
func (u *Usage) Apply(e ledger.Event) {
	switch e.Type {
	case ledger.EventAllocated:
		u.closeHold(e.Port, e.At)
		u.open[e.Port] = usageHold{service: e.Allocated.ServiceName, start: e.At}
		s := u.get(e.Allocated.ServiceName)
		s.Allocations++
		s.Holds++
		if e.Imported != nil {
			s.ImportedHolds++
		}
	case ledger.EventReleased:
		if h, ok := u.open[e.Port]; ok {
			u.get(h.service).Releases[e.Released.Reason]++
			u.closeHold(e.Port, e.At)
		}
	}
}

// Result closes the window at end and returns the usage of every service,
// or of one when service is not "", by name. The Usage is spent.
func (u *Usage) Result(end time.Time, service string) []ledger.ServiceUsage {
	// In port order: of two holds as long as each other (both clipped to
	// the whole window, say), the lower port is the longest, every time.
	for _, p := range slices.Sorted(maps.Keys(u.open)) {
		u.get(u.open[p].service).HeldAtEnd++
		u.closeHold(p, end)
	}
	out := make([]ledger.ServiceUsage, 0, len(u.usage))
	for _, s := range u.usage {
		if service == "" || s.Service == service {
			out = append(out, *s)
		}
	}
	slices.SortFunc(out, func(a, b ledger.ServiceUsage) int { return strings.Compare(a.Service, b.Service) })
	return out
}
