package projection

import (
	"container/heap"
	"maps"
	"slices"
	"strconv"
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

// WhoTenure sets ans's Holder to the tenure that trail folds, or its
// Previous when that tenure has ended by the moment: from held, a registry
// inside the tenure, or (held nil) from trail's first event when it is the
// tenure's allocation. It leaves ans as it is when there is no tenure.
func WhoTenure(ans *ledger.WhoAnswer, held *Registry, trail []ledger.Event) {
	if held == nil && (len(trail) == 0 || trail[0].Type != ledger.EventAllocated) {
		return
	}
	t := FoldTenure(held, ans.Port, trail)
	if t.Release == nil {
		ans.Holder = t
	} else {
		ans.Previous = t
	}
}

// WhoNext gathers the port's events after the moment that finish a who
// answer: the holder's release, or the next tenure.
type WhoNext struct {
	holding bool
	evs     []ledger.Event
}

// NewWhoNext starts gathering for ans, whose Holder is already known.
func NewWhoNext(ans *ledger.WhoAnswer) *WhoNext {
	return &WhoNext{holding: ans.Holder != nil}
}

// Take takes the next event of the port, in order, and reports whether the
// answer needs more.
func (w *WhoNext) Take(e ledger.Event) bool {
	if !w.holding && len(w.evs) == 0 && e.Type != ledger.EventAllocated {
		return true // stray events of a free port
	}
	if len(w.evs) > 0 && e.Type == ledger.EventAllocated {
		return false // a new allocation without a release ends the last
	}
	w.evs = append(w.evs, e)
	return e.Type != ledger.EventReleased
}

// Finish sets the holder's release or the next tenure in ans.
func (w *WhoNext) Finish(ans *ledger.WhoAnswer) {
	if ans.Holder != nil {
		if n := len(w.evs); n > 0 && w.evs[n-1].Type == ledger.EventReleased {
			ans.Holder.Release = ReleaseOf(w.evs[n-1])
		}
	} else if len(w.evs) > 0 {
		ans.Next = FoldTenure(nil, ans.Port, w.evs)
	}
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
//
// A window can hold a million services (a year of a CI host that names
// services after its runs), so the services' counts are kept in one slice,
// found by name through an index, and their releases by reason in a small
// list each; Result makes the maps. A reader that must bound its memory
// takes the counts so far with Drain whenever Len grows too large, and
// adds up the parts of each service with MergeUsage.
type Usage struct {
	open    map[int]usageHold
	index   map[string]int32      // service -> its place in usage
	usage   []ledger.ServiceUsage // Releases unset until Result
	reasons [][]reasonCount       // releases by reason, by place in usage
	filter  UsageFilter
	// last orders the places by name, the last first, once the filter's
	// First services are counted: a service named before the last takes
	// the last one's place.
	last lastHeap
}

// UsageFilter says which services a Usage counts; the zero filter counts
// every one.
type UsageFilter struct {
	// After keeps the services whose names sort after it (byte order),
	// for a page of an answer that goes on from the last one.
	After string
	// Service keeps that service alone ("": every one).
	Service string
	// First keeps the first First services by name (0: every one), so
	// that a page of a window of a million services holds a page: a
	// service named after the First counted so far is not counted, and
	// one named before them takes the last one's place, whose counts go.
	// A Usage with First is read once, by Result or Drain, not drained on
	// the way (a service gone from it could come back).
	First int
}

func (f UsageFilter) keeps(svc string) bool {
	return svc > f.After && (f.Service == "" || svc == f.Service)
}

type usageHold struct {
	service string
	start   time.Time
}

// reasonCount is how many releases of one service gave a reason.
type reasonCount struct {
	reason string
	n      int
}

// NewUsage starts a window at since with the registry as it stood then
// (nil: nothing held).
func NewUsage(start *Registry, since time.Time) *Usage {
	return NewUsageOf(start, since, UsageFilter{})
}

// NewUsageOf is NewUsage counting only the services that f keeps: the
// others' holds are followed (a port's next holder must know when it was
// freed) but not counted.
func NewUsageOf(start *Registry, since time.Time, f UsageFilter) *Usage {
	u := &Usage{open: map[int]usageHold{}, index: map[string]int32{}, filter: f}
	if start != nil {
		for p, a := range start.Allocs {
			u.open[p] = usageHold{service: a.ServiceName, start: since}
			if s := u.get(a.ServiceName); s != nil {
				s.Holds++
				if a.ImportedFrom != "" {
					s.ImportedHolds++
				}
			}
		}
	}
	return u
}

// Len is the number of services counted since the start or the last Drain.
func (u *Usage) Len() int { return len(u.usage) }

// place returns the place of svc in u.usage, adding it when new, or -1
// when the filter does not keep it.
func (u *Usage) place(svc string) int32 {
	i, ok := u.index[svc]
	if ok {
		return i
	}
	if !u.filter.keeps(svc) {
		return -1
	}
	if f := u.filter.First; f > 0 && len(u.usage) >= f {
		if u.last.usage == nil {
			u.last = lastHeap{usage: &u.usage, places: make([]int32, len(u.usage))}
			for j := range u.last.places {
				u.last.places[j] = int32(j)
			}
			heap.Init(&u.last)
		}
		i = u.last.places[0]
		if svc > u.usage[i].Service {
			return -1
		}
		delete(u.index, u.usage[i].Service)
		u.index[svc] = i
		u.usage[i] = ledger.ServiceUsage{Service: svc}
		u.reasons[i] = nil
		heap.Fix(&u.last, 0)
		return i
	}
	i = int32(len(u.usage))
	u.index[svc] = i
	u.usage = append(u.usage, ledger.ServiceUsage{Service: svc})
	u.reasons = append(u.reasons, nil)
	return i
}

// lastHeap is a heap of places in usage, the last service by name on top.
type lastHeap struct {
	usage  *[]ledger.ServiceUsage
	places []int32
}

func (h lastHeap) Len() int { return len(h.places) }
func (h lastHeap) Less(i, j int) bool {
	return (*h.usage)[h.places[i]].Service > (*h.usage)[h.places[j]].Service
}
func (h lastHeap) Swap(i, j int) { h.places[i], h.places[j] = h.places[j], h.places[i] }
func (h *lastHeap) Push(x any)   { h.places = append(h.places, x.(int32)) }
func (h *lastHeap) Pop() any {
	x := h.places[len(h.places)-1]
	h.places = h.places[:len(h.places)-1]
	return x
}

// get returns the counts of svc, or nil when the filter does not keep it.
func (u *Usage) get(svc string) *ledger.ServiceUsage {
	i := u.place(svc)
	if i < 0 {
		return nil
	}
	return &u.usage[i]
}

// released counts a release of svc with reason.
func (u *Usage) released(svc, reason string) {
	i := u.place(svc)
	if i < 0 {
		return
	}
	rs := u.reasons[i]
	for j := range rs {
		if rs[j].reason == reason {
			rs[j].n++
			return
		}
	}
	u.reasons[i] = append(rs, reasonCount{reason: reason, n: 1})
}

func (u *Usage) closeHold(port int, at time.Time, atEnd bool) {
	h, ok := u.open[port]
	if !ok {
		return
	}
	delete(u.open, port)
	s := u.get(h.service)
	if s == nil {
		return
	}
	if atEnd {
		s.HeldAtEnd++
	}
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
		u.closeHold(e.Port, e.At, false)
		u.open[e.Port] = usageHold{service: e.Allocated.ServiceName, start: e.At}
		if s := u.get(e.Allocated.ServiceName); s != nil {
			s.Allocations++
			s.Holds++
			if e.Imported != nil {
				s.ImportedHolds++
			}
		}
	case ledger.EventReleased:
		if h, ok := u.open[e.Port]; ok {
			u.released(h.service, e.Released.Reason)
			u.closeHold(e.Port, e.At, false)
		}
	}
}

// End closes the window at end: the holds still open count up to it and
// as held at the end. Apply must not follow.
func (u *Usage) End(end time.Time) {
	// In port order: of two holds as long as each other (both clipped to
	// the whole window, say), the lower port is the longest, every time.
	for _, p := range slices.Sorted(maps.Keys(u.open)) {
		u.closeHold(p, end, true)
	}
}

// Result closes the window at end and returns the usage of every service,
// or of one when service is not "", by name. The Usage is spent.
//
// Services whose releases are the same (one release, "process exited",
// say) share one Releases map: the maps of the result are read-only.
func (u *Usage) Result(end time.Time, service string) []ledger.ServiceUsage {
	u.End(end)
	if service != "" {
		i, ok := u.index[service]
		if !ok {
			return []ledger.ServiceUsage{}
		}
		out := []ledger.ServiceUsage{u.usage[i]}
		out[0].Releases = releasesMap(u.reasons[i], nil)
		return out
	}
	return u.Drain()
}

// Drain returns the counts of the services since the start or the last
// Drain, by name, and forgets them; the holds still open stay. Releases
// maps are shared as Result's are.
func (u *Usage) Drain() []ledger.ServiceUsage {
	out := u.usage
	if out == nil {
		out = []ledger.ServiceUsage{}
	}
	shared := map[string]map[string]int{}
	for i := range out {
		out[i].Releases = releasesMap(u.reasons[i], shared)
	}
	u.index, u.usage, u.reasons, u.last = map[string]int32{}, nil, nil, lastHeap{}
	slices.SortFunc(out, func(a, b ledger.ServiceUsage) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// MergeUsage adds to s the counts of the same service over a later part of
// the window, as if one Usage had counted both: of two longest holds as
// long as each other, the earlier part's stays. s's Releases map is
// replaced, not changed, since Drain's maps are shared.
func MergeUsage(s *ledger.ServiceUsage, later ledger.ServiceUsage) {
	s.Allocations += later.Allocations
	s.Holds += later.Holds
	s.ImportedHolds += later.ImportedHolds
	s.HeldAtEnd += later.HeldAtEnd
	s.TotalHold += later.TotalHold
	if later.LongestPort != 0 && (s.LongestPort == 0 || later.LongestHold > s.LongestHold) {
		s.LongestHold, s.LongestPort = later.LongestHold, later.LongestPort
	}
	if len(later.Releases) > 0 {
		m := make(map[string]int, len(s.Releases)+len(later.Releases))
		for r, n := range s.Releases {
			m[r] = n
		}
		for r, n := range later.Releases {
			m[r] += n
		}
		s.Releases = m
	}
}

// releasesMap returns the map of rs, the one in shared (when not nil) that
// holds the same counts if there is one.
func releasesMap(rs []reasonCount, shared map[string]map[string]int) map[string]int {
	if shared == nil || len(rs) > 2 {
		m := make(map[string]int, len(rs))
		for _, r := range rs {
			m[r.reason] = r.n
		}
		return m
	}
	slices.SortFunc(rs, func(a, b reasonCount) int { return strings.Compare(a.reason, b.reason) })
	var key []byte
	for _, r := range rs {
		key = strconv.AppendInt(key, int64(len(r.reason)), 10)
		key = append(key, ':')
		key = append(key, r.reason...)
		key = strconv.AppendInt(key, int64(r.n), 10)
		key = append(key, ';')
	}
	if m, ok := shared[string(key)]; ok {
		return m
	}
	m := releasesMap(rs, nil)
	shared[string(key)] = m
	return m
}
