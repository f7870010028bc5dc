package projection_test

import (
	"github.com/portledger/portledger/internal/ledgertest"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// mustAppend appends evs in one batch and returns them with their IDs.
func mustAppend(tb testing.TB, l *ledger.Log, evs ...ledger.Event) []ledger.Event {
	tb.Helper()
	out, err := l.Append(evs, nil)
	if err != nil {
		tb.Fatalf("append: %v", err)
	}
	return out
}

// Event constructors for the scripted timelines.

func allocated(port int, service string) ledger.Event {
	return ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{
		ServiceName: service, StartedBy: "alice", Purpose: service + " dev", HealthURL: "http://127.0.0.1/healthz",
		Lease: 1234567 * time.Millisecond,
	}}
}

func pidRegistered(port, pid int) ledger.Event {
	return ledger.Event{Type: ledger.EventPIDRegistered, Port: port, PIDRegistered: &ledger.PIDRegistered{
		PID: pid, PIDStarted: 1763216999000 + int64(pid), Cmdline: "server --port",
	}}
}

func healthChanged(port int, from, to ledger.Health) ledger.Event {
	return ledger.Event{Type: ledger.EventHealthChanged, Port: port, HealthChanged: &ledger.HealthChanged{
		From: from, To: to, Reason: "probe", Alive: true, Listening: to == ledger.HealthHealthy,
	}}
}

func statsReported(port int, req, errs int64) ledger.Event {
	return ledger.Event{Type: ledger.EventStatsReported, Port: port, StatsReported: &ledger.StatsReported{RequestCount: req, ErrorCount: errs}}
}

func released(port int) ledger.Event {
	return ledger.Event{Type: ledger.EventReleased, Port: port, Released: &ledger.Released{Reason: "done", ReleasedBy: "alice"}}
}

func conflict(port, pid int) ledger.Event {
	return ledger.Event{Type: ledger.EventConflictDetected, Port: port, Conflict: &ledger.ConflictDetected{PID: pid, Command: "nc -l"}}
}

func rangeChanged(from, to ledger.Range) ledger.Event {
	return ledger.Event{Type: ledger.EventRangeChanged, RangeChanged: &ledger.RangeChanged{From: from, To: to}}
}

func TestRegistryApply(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	r := projection.NewRegistry()
	is.Equal(r.Range, ledger.DefaultRange) // a new ledger starts at the default range
	is.Equal(len(r.Allocs), 0)             // with nothing allocated

	apply := func(e ledger.Event) ledger.Event {
		t.Helper()
		e = mustAppend(t, l, e)[0]
		r.Apply(e)
		is.Equal(r.Last, e.ID) // Last follows every event
		return e
	}

	alloc := apply(allocated(8000, "api"))
	a := r.Allocs[8000]
	is.True(a != nil)                                            // the port is held
	is.Equal(a.ServiceName, "api")                               // by the service
	is.Equal(a.StartedBy, "alice")                               // started by
	is.Equal(a.Purpose, "api dev")                               // for its purpose
	is.Equal(a.HealthStatus, ledger.HealthStarting)              // starting until the watchdog says otherwise
	is.Equal(a.EventID, alloc.ID)                                // named by its allocated event
	is.Equal(a.AllocatedAt, alloc.At)                            // at its time
	is.Equal(a.HealthURL, "http://127.0.0.1/healthz")            // with its health URL
	is.Equal(a.Lease, ledger.Duration(1234567*time.Millisecond)) // and lease
	is.Equal(r.LastPort["api"], 8000)                            // the service's last port is remembered

	apply(pidRegistered(8000, 4242))
	is.Equal(a.PID, 4242)                                        // the PID is registered
	is.Equal(a.Cmdline, "server --port")                         // with its command line
	is.Equal(*a.PIDStartedAt, ledger.Millis(1763216999000+4242)) // and start time

	apply(healthChanged(8000, ledger.HealthStarting, ledger.HealthHealthy))
	is.Equal(a.HealthStatus, ledger.HealthHealthy) // health follows transitions

	apply(statsReported(8000, 100, 7))
	is.Equal(a.RequestCount, int64(100)) // request count
	is.Equal(a.ErrorCount, int64(7))     // error count

	before := r.Status()
	apply(healthChanged(8050, ledger.HealthHealthy, ledger.HealthDead))
	apply(statsReported(8050, 1, 1))
	apply(pidRegistered(8050, 1))
	after := r.Status()
	after.AsOf = before.AsOf
	is.Equal(after, before) // events of a port nobody holds change nothing

	c := apply(conflict(8001, 31337))
	is.Equal(r.Conflicts[8001], ledger.Conflict{Port: 8001, PID: 31337, Command: "nc -l", DetectedAt: c.At}) // a foreign listener is recorded
	is.Equal(len(r.Status().Conflicts), 1)                                                                   // and shown in the status

	apply(allocated(8001, "web"))
	_, stillConflict := r.Conflicts[8001]
	is.True(!stillConflict) // allocating the port clears its conflict

	st := r.Status()
	is.Equal(st.PortRange, "8000-8100")    // the range
	is.Equal(st.TotalPorts, 101)           // its size
	is.Equal(st.AllocatedPorts, 2)         // two held
	is.Equal(st.AvailablePorts, 99)        // the rest free
	is.Equal(st.Allocations[0].Port, 8000) // allocations by port
	is.Equal(st.Allocations[1].Port, 8001)

	apply(released(8000))
	_, held := r.Allocs[8000]
	is.True(!held)                    // a released port is free
	is.Equal(r.LastPort["api"], 8000) // but remembered for the service

	apply(rangeChanged(ledger.DefaultRange, ledger.Range{Lo: 8001, Hi: 8010}))
	st = r.Status()
	is.Equal(st.PortRange, "8001-8010") // the range follows range_changed
	is.Equal(st.TotalPorts, 10)         // its size
	is.Equal(st.AvailablePorts, 9)      // one of its ports is held

	apply(rangeChanged(ledger.Range{Lo: 8001, Hi: 8010}, ledger.Range{Lo: 9000, Hi: 9009}))
	st = r.Status()
	is.Equal(st.AllocatedPorts, 1)  // an allocation outside the range still counts as held
	is.Equal(st.AvailablePorts, 10) // but takes nothing from the new range

	n, err := l.Count()
	is.NoErr(err)        // count
	is.Equal(r.Count, n) // every event was counted

	folded, err := projection.Fold(l, ulid.ULID{})
	is.NoErr(err)       // fold the whole log
	is.Equal(folded, r) // the fold equals applying the events by hand
}

func TestRegistryAllocatedAgainReplaces(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	r := projection.NewRegistry()
	for _, e := range mustAppend(t, l, allocated(8000, "api"), pidRegistered(8000, 1), released(8000), allocated(8000, "web")) {
		r.Apply(e)
	}
	a := r.Allocs[8000]
	is.Equal(a.ServiceName, "web")    // the new holder
	is.Equal(a.PID, 0)                // keeps nothing of the old one
	is.True(a.PIDStartedAt == nil)    // not even its PID start
	is.Equal(r.LastPort["api"], 8000) // both services remember the port
	is.Equal(r.LastPort["web"], 8000)
}

func TestRegistryCloneIsDeep(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	r := projection.NewRegistry()
	for _, e := range mustAppend(t, l,
		allocated(8000, "api"), pidRegistered(8000, 4242), statsReported(8000, 5, 1),
		allocated(8002, "web"), conflict(8001, 99),
	) {
		r.Apply(e)
	}
	want, err := r.MarshalSnapshot()
	is.NoErr(err) // the original's state
	wantStatus := r.Status()

	c := r.Clone()
	is.Equal(c, r) // a clone starts equal

	// Change everything the clone holds, through every pointer it has.
	c.Allocs[8000].ServiceName = "changed"
	c.Allocs[8000].RequestCount = 1e6
	*c.Allocs[8000].PIDStartedAt = 1
	delete(c.Allocs, 8002)
	c.LastPort["api"] = 9999
	c.LastPort["new"] = 1
	c.Conflicts[8001] = ledger.Conflict{Port: 8001, PID: 1}
	c.Range = ledger.Range{Lo: 1, Hi: 2}
	for _, e := range mustAppend(t, l, released(8000), allocated(8050, "worker"), rangeChanged(ledger.DefaultRange, ledger.Range{Lo: 9000, Hi: 9001})) {
		c.Apply(e)
	}

	got, err := r.MarshalSnapshot()
	is.NoErr(err)                       // the original's state after
	is.Equal(string(got), string(want)) // the original did not change
	is.Equal(r.Status(), wantStatus)    // nor its status
}

func TestSnapshotRoundTrip(t *testing.T) {
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	r := projection.NewRegistry()
	is.Equal(snapshotRoundTrip(t, r).Status(), r.Status()) // an empty registry round-trips

	for _, e := range mustAppend(t, l,
		allocated(8000, "api"), pidRegistered(8000, 4242), healthChanged(8000, ledger.HealthStarting, ledger.HealthHealthy),
		statsReported(8000, 123, 4), allocated(8001, "web"), released(8001), allocated(8003, "worker"),
		conflict(8002, 31337), conflict(8004, 31338), rangeChanged(ledger.DefaultRange, ledger.Range{Lo: 8000, Hi: 8050}),
	) {
		r.Apply(e)
	}
	back := snapshotRoundTrip(t, r)
	is.Equal(back.Status(), r.Status()) // the status is the same after a round trip
	is.Equal(back.LastPort, r.LastPort) // and so is every service's last port
	is.Equal(back.Last, r.Last)         // the last event
	is.Equal(back.Count, r.Count)       // and the count
	is.Equal(back, r)                   // the whole registry is the same

	_, err := projection.UnmarshalSnapshot([]byte("not json"))
	is.True(err != nil) // garbage is refused
	_, err = projection.UnmarshalSnapshot([]byte(`{"v":2}`))
	is.True(err != nil) // an unknown version is refused
}

// snapshotRoundTrip marshals r and unmarshals it again.
func snapshotRoundTrip(t *testing.T, r *projection.Registry) *projection.Registry {
	t.Helper()
	b, err := r.MarshalSnapshot()
	if err != nil {
		t.Fatalf("marshal snapshot: %v", err)
	}
	back, err := projection.UnmarshalSnapshot(b)
	if err != nil {
		t.Fatalf("unmarshal snapshot: %v", err)
	}
	return back
}

// timeline is a scripted history in batches, with the clock moved between
// batches (sometimes backwards).
func timeline() ([][]ledger.Event, []time.Duration) {
	batches := [][]ledger.Event{
		{allocated(8000, "api")},
		{pidRegistered(8000, 100), healthChanged(8000, ledger.HealthStarting, ledger.HealthHealthy)},
		{allocated(8001, "web"), allocated(8002, "worker"), conflict(8003, 7)},
		{statsReported(8000, 10, 0), statsReported(8001, 3, 1)},
		{healthChanged(8001, ledger.HealthStarting, ledger.HealthUnhealthy)},
		{released(8000)},
		{allocated(8000, "web-2"), allocated(8003, "api")},
		{rangeChanged(ledger.DefaultRange, ledger.Range{Lo: 8000, Hi: 8002})},
		{healthChanged(8001, ledger.HealthUnhealthy, ledger.HealthDead), released(8001), released(8002)},
		{statsReported(8003, 1, 1), pidRegistered(8003, 200)},
		{rangeChanged(ledger.Range{Lo: 8000, Hi: 8002}, ledger.DefaultRange), allocated(8001, "api")},
	}
	steps := []time.Duration{time.Second, time.Minute, 0, -time.Hour, time.Millisecond, 2 * time.Hour, time.Second, 0, 24 * time.Hour, time.Second, time.Second}
	return batches, steps
}

func TestFoldAtEveryEvent(t *testing.T) {
	is := is.New(t)
	now := time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC)
	l := ledgertest.MustOpenLog(t, ledger.Options{Now: func() time.Time { return now }})
	batches, steps := timeline()
	var all []ledger.Event
	for i, b := range batches {
		all = append(all, mustAppend(t, l, b...)...)
		now = now.Add(steps[i])
	}

	empty, err := projection.Fold(l, ledger.UntilID(all[0].At.Add(-time.Millisecond)))
	is.NoErr(err)                             // fold before the first event
	is.Equal(empty, projection.NewRegistry()) // is the empty registry

	byHand := projection.NewRegistry()
	for i, e := range all {
		byHand.Apply(e)
		got, err := projection.Fold(l, e.ID)
		is.NoErr(err)         // fold up to an event
		is.Equal(got, byHand) // equals applying that prefix by hand
		is.Equal(got.Count, uint64(i+1))
	}
	whole, err := projection.Fold(l, ulid.ULID{})
	is.NoErr(err)           // fold the whole log
	is.Equal(whole, byHand) // equals applying every event
}
