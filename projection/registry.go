// Package projection folds the event log into the views that people and
// programs read: the live registry, port_registry.json and the daily JSONL
// logs. Every projection is a pure function of the events, so `ledger replay`
// can rebuild any of them from the log at any time.
package projection

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// Registry is the state of the ledger after some prefix of the log: who holds
// which port, the managed range, the last port of each service (for sticky
// allocation) and the foreign listeners seen in the range. The same events
// always fold into the same Registry.
type Registry struct {
	Range     ledger.Range
	Allocs    map[int]*ledger.Allocation
	LastPort  map[string]int // service name -> the port it held last
	Conflicts map[int]ledger.Conflict
	Last      ulid.ULID // the last event folded
	Count     uint64    // how many events were folded

	// lastBase, in a draft, is the LastPort of the registry the draft was
	// made from: the draft's own LastPort holds only what changed since.
	lastBase map[string]int
	// lookup, when set, answers the last ports that LastPort does not
	// hold: the log's index of them (see SetLastPortLookup).
	lookup func(service string) (int, bool)
}

// SetLastPortLookup makes r answer the services' last ports through fn (the
// log's index, ledger.Log.LastPort) instead of keeping them itself: LastPort
// becomes nil and Apply stops filling it, so the registry's memory and its
// snapshots do not grow with the number of service names ever seen. A nil
// fn makes r forget last ports altogether, for projections that never ask.
func (r *Registry) SetLastPortLookup(fn func(service string) (int, bool)) {
	r.LastPort, r.lastBase, r.lookup = nil, nil, fn
}

// NewRegistry returns the state of an empty log: no allocations, the default
// range.
func NewRegistry() *Registry {
	return &Registry{
		Range:     ledger.DefaultRange,
		Allocs:    make(map[int]*ledger.Allocation),
		LastPort:  make(map[string]int),
		Conflicts: make(map[int]ledger.Conflict),
	}
}

// Apply folds one event into the registry. Events that name a port nobody
// holds (a late health report, say) change nothing but Last and Count.
func (r *Registry) Apply(e ledger.Event) {
	r.Last = e.ID
	r.Count++
	switch e.Type {
	case ledger.EventAllocated:
		p := e.Allocated
		a := &ledger.Allocation{
			Port:         e.Port,
			ServiceName:  p.ServiceName,
			StartedBy:    p.StartedBy,
			Purpose:      p.Purpose,
			PID:          p.PID,
			AllocatedAt:  e.At,
			HealthStatus: ledger.HealthStarting,
			EventID:      e.ID,
			HealthURL:    p.HealthURL,
			Lease:        ledger.Duration(p.Lease),
			ImportedFrom: e.ImportedFrom(),
		}
		if p.PIDStarted != 0 {
			m := ledger.Millis(p.PIDStarted)
			a.PIDStartedAt = &m
		}
		r.Allocs[e.Port] = a
		if r.LastPort != nil {
			r.LastPort[p.ServiceName] = e.Port
		}
		delete(r.Conflicts, e.Port)
	case ledger.EventPIDRegistered:
		if a := r.Allocs[e.Port]; a != nil {
			p := e.PIDRegistered
			a.PID = p.PID
			a.Cmdline = p.Cmdline
			a.PIDStartedAt = nil
			if p.PIDStarted != 0 {
				m := ledger.Millis(p.PIDStarted)
				a.PIDStartedAt = &m
			}
		}
	case ledger.EventHealthChanged:
		if a := r.Allocs[e.Port]; a != nil {
			a.HealthStatus = e.HealthChanged.To
		}
	case ledger.EventStatsReported:
		if a := r.Allocs[e.Port]; a != nil {
			a.RequestCount = e.StatsReported.RequestCount
			a.ErrorCount = e.StatsReported.ErrorCount
		}
	case ledger.EventReleased:
		delete(r.Allocs, e.Port)
	case ledger.EventConflictDetected:
		r.Conflicts[e.Port] = ledger.Conflict{Port: e.Port, PID: e.Conflict.PID, Command: e.Conflict.Command, DetectedAt: e.At}
	case ledger.EventRangeChanged:
		r.Range = e.RangeChanged.To
	}
}

// Clone returns a deep copy, so a writer can decide a batch on a draft and
// throw it away if the commit fails.
func (r *Registry) Clone() *Registry {
	c := &Registry{
		Range:     r.Range,
		Allocs:    make(map[int]*ledger.Allocation, len(r.Allocs)),
		LastPort:  make(map[string]int, len(r.LastPort)+len(r.lastBase)),
		Conflicts: make(map[int]ledger.Conflict, len(r.Conflicts)),
		Last:      r.Last,
		Count:     r.Count,
	}
	for p, a := range r.Allocs {
		cp := *a
		if a.PIDStartedAt != nil {
			m := *a.PIDStartedAt
			cp.PIDStartedAt = &m
		}
		c.Allocs[p] = &cp
	}
	c.lookup = r.lookup
	if r.LastPort == nil && r.lastBase == nil {
		c.LastPort = nil // the log answers last ports
	}
	for s, p := range r.lastBase {
		c.LastPort[s] = p
	}
	for s, p := range r.LastPort {
		c.LastPort[s] = p
	}
	for p, x := range r.Conflicts {
		c.Conflicts[p] = x
	}
	return c
}

// Draft returns a copy for a writer to decide a group of commands on and
// throw away. Unlike Clone, it does not copy the last port of every service
// ever seen (a CI host that names services after its runs has millions): the
// draft reads those through to r, which must not change while the draft is
// in use, and keeps only its own changes. Use LastPortOf on a draft.
func (r *Registry) Draft() *Registry {
	base := r.LastPort
	if r.lastBase != nil {
		return r.Clone() // a draft of a draft: rare, so copy it whole
	}
	c := &Registry{
		Range:     r.Range,
		Allocs:    make(map[int]*ledger.Allocation, len(r.Allocs)),
		LastPort:  make(map[string]int),
		Conflicts: make(map[int]ledger.Conflict, len(r.Conflicts)),
		Last:      r.Last,
		Count:     r.Count,
		lastBase:  base,
		lookup:    r.lookup,
	}
	for p, a := range r.Allocs {
		cp := *a
		if a.PIDStartedAt != nil {
			m := *a.PIDStartedAt
			cp.PIDStartedAt = &m
		}
		c.Allocs[p] = &cp
	}
	for p, x := range r.Conflicts {
		c.Conflicts[p] = x
	}
	return c
}

// LastPortOf returns the port the service held last, in a registry or a
// draft.
func (r *Registry) LastPortOf(service string) (int, bool) {
	if p, ok := r.LastPort[service]; ok {
		return p, true
	}
	if p, ok := r.lastBase[service]; ok {
		return p, true
	}
	if r.lookup != nil {
		return r.lookup(service)
	}
	return 0, false
}

// Allocations returns copies of the live allocations, by port.
func (r *Registry) Allocations() []ledger.Allocation {
	out := make([]ledger.Allocation, 0, len(r.Allocs))
	for _, a := range r.Allocs {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b ledger.Allocation) int { return a.Port - b.Port })
	return out
}

// Status returns the registry part of the status report.
func (r *Registry) Status() ledger.PortManagerStatus {
	allocs := r.Allocations()
	inRange := 0
	for _, a := range allocs {
		if r.Range.Contains(a.Port) {
			inRange++
		}
	}
	conflicts := make([]ledger.Conflict, 0, len(r.Conflicts))
	for _, c := range r.Conflicts {
		conflicts = append(conflicts, c)
	}
	slices.SortFunc(conflicts, func(a, b ledger.Conflict) int { return a.Port - b.Port })
	skipped := ledger.BrowserBadPorts(r.Range)
	unheld := 0 // skipped ports that nobody holds: not available either
	for _, p := range skipped {
		if r.Allocs[p] == nil {
			unheld++
		}
	}
	return ledger.PortManagerStatus{
		PortRange:      r.Range.String(),
		TotalPorts:     r.Range.Size(),
		AllocatedPorts: len(allocs),
		AvailablePorts: r.Range.Size() - inRange - unheld,
		Skipped:        skipped,
		Allocations:    allocs,
		AsOf:           r.Last,
		Conflicts:      conflicts,
	}
}

// Fold reads the log from its start up to and including the point until
// (zero: the end) into a new Registry, without a snapshot: the reference
// that tests hold StateAt's shortcut against.
func Fold(log *ledger.Log, until ulid.ULID) (*Registry, error) {
	r := NewRegistry()
	if err := foldInto(r, log, ulid.Zero, until, nil); err != nil {
		return nil, fmt.Errorf("fold: %w", err)
	}
	return r, nil
}

// snapshotJSON is the stored form of a Registry. Snapshots are small (one
// entry per live port and per service) and rare, so JSON serves.
type snapshotJSON struct {
	Version   int                 `json:"v"`
	Range     ledger.Range        `json:"range"`
	Allocs    []ledger.Allocation `json:"allocs"`
	LastPort  map[string]int      `json:"last_port,omitempty"` // only in snapshots of registries that keep them
	Conflicts []ledger.Conflict   `json:"conflicts"`
	Last      ulid.ULID           `json:"last"`
	Count     uint64              `json:"count"`
}

// MarshalSnapshot encodes the registry for the log's snapshots bucket.
func (r *Registry) MarshalSnapshot() ([]byte, error) {
	s := snapshotJSON{Version: 1, Range: r.Range, Allocs: r.Allocations(), LastPort: r.LastPort, Last: r.Last, Count: r.Count}
	for _, c := range r.Conflicts {
		s.Conflicts = append(s.Conflicts, c)
	}
	slices.SortFunc(s.Conflicts, func(a, b ledger.Conflict) int { return a.Port - b.Port })
	return json.Marshal(s)
}

// UnmarshalSnapshot decodes a snapshot written by MarshalSnapshot.
func UnmarshalSnapshot(b []byte) (*Registry, error) {
	var s snapshotJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("snapshot: unknown version %d", s.Version)
	}
	r := NewRegistry()
	r.Range, r.Last, r.Count = s.Range, s.Last, s.Count
	for i := range s.Allocs {
		a := s.Allocs[i]
		r.Allocs[a.Port] = &a
	}
	for k, v := range s.LastPort {
		r.LastPort[k] = v
	}
	for _, c := range s.Conflicts {
		r.Conflicts[c.Port] = c
	}
	return r, nil
}
