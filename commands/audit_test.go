package commands_test

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// auditRange is the range of the audit tests; the OS probe is stubbed, so
// no port is bound.
var auditRange = ledger.Range{Lo: 31000, Hi: 31100}

// mustOpenAudit opens a ledger on a stepped clock, with the OS probes
// stubbed so that the script alone decides the timeline.
func mustOpenAudit(tb testing.TB, clock *ledgertest.Clock, every uint64) (*commands.Ledger, *ledger.Log) {
	tb.Helper()
	return openLedger(tb, ledger.Options{Now: clock.Now}, commands.Config{
		Now: clock.Now, SnapshotEvery: every,
		PortFree: func(int) error { return nil },
		Process: func(pid int) (commands.ProcessInfo, error) {
			return commands.ProcessInfo{PID: pid, StartedAt: 1_700_000_000_000, Cmdline: fmt.Sprintf("python serve.py #%d", pid), UID: os.Getuid()}, nil
		},
	}, auditRange)
}

var t0 = time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)

// script runs a timeline with every kind of event on a stepped clock and
// returns the ports it used.
func script(t *testing.T, l *commands.Ledger, clock *ledgertest.Clock) []int {
	t.Helper()
	is := is.New(t)
	ctx := context.Background()
	at := func(s int) { clock.Set(t0.Add(time.Duration(s) * time.Second)) }

	at(10)
	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "grace_backend", StartedBy: "serve.py", Purpose: "Main API"})
	is.NoErr(err) // allocate grace_backend
	at(11)
	_, err = l.RegisterPID(ctx, a.Port, 4242)
	is.NoErr(err) // register its pid
	at(12)
	is.NoErr(l.RecordHealth(ctx, ledger.HealthReport{Port: a.Port, EventID: a.EventID, To: ledger.HealthHealthy, Reason: "listening", Alive: true, Listening: true}))
	at(20)
	b, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "learning", Purpose: "Learning worker"})
	is.NoErr(err) // allocate learning
	at(21)
	is.NoErr(l.ReportStats(ctx, a.Port, 120, 3)) // stats
	at(30)
	is.NoErr(l.RecordHealth(ctx, ledger.HealthReport{Port: a.Port, EventID: a.EventID, To: ledger.HealthUnhealthy, Reason: "endpoint 500", Alive: true, Listening: true}))
	at(40)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "crashed", ReleasedBy: "watchdog"})
	is.NoErr(err) // release grace_backend
	at(50)
	c, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "remote", Port: a.Port, Purpose: "Remote access"})
	is.NoErr(err)            // the same port to another service
	is.Equal(c.Port, a.Port) // re-allocated
	at(60)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: b.Port, Reason: "shutdown"})
	is.NoErr(err) // release learning
	at(70)
	// Two allocations in the same millisecond.
	d, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "batch1"})
	is.NoErr(err)
	e, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "batch2"})
	is.NoErr(err)
	at(80)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: d.Port, Reason: "done"})
	is.NoErr(err)
	at(90)
	return []int{a.Port, b.Port, d.Port, e.Port, auditRange.Hi}
}

// allEvents reads the whole log.
func allEvents(t *testing.T, log *ledger.Log) []ledger.Event {
	t.Helper()
	var evs []ledger.Event
	if err := log.Scan(ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return evs
}

// foldUntil folds the events with ID <= point, the definition of "at".
func foldUntil(evs []ledger.Event, point ulid.ULID) *projection.Registry {
	r := projection.NewRegistry()
	for _, e := range evs {
		if e.ID.Compare(point) <= 0 {
			r.Apply(e)
		}
	}
	return r
}

// wantWho computes the answer of Who from the event list alone.
func wantWho(evs []ledger.Event, port int, point ulid.ULID) (holder *ledger.Allocation, prev, next string) {
	reg := foldUntil(evs, point)
	if a := reg.Allocs[port]; a != nil {
		return a, "", ""
	}
	for _, e := range evs {
		if e.Port != port || e.Type != ledger.EventAllocated {
			continue
		}
		if e.ID.Compare(point) <= 0 {
			prev = e.Allocated.ServiceName
		} else if next == "" {
			next = e.Allocated.ServiceName
		}
	}
	return nil, prev, next
}

func TestTimeTravelAtEveryInstant(t *testing.T) {
	for _, every := range []uint64{3, commands.DefaultSnapshotEvery} {
		t.Run(fmt.Sprintf("snapshot every %d", every), func(t *testing.T) {
			is := is.New(t)
			ctx := context.Background()
			clock := ledgertest.NewClock(t0, 0)
			l, log := mustOpenAudit(t, clock, every)
			ports := script(t, l, clock)
			evs := allEvents(t, log)
			is.Equal(len(evs), 13) // the range and the script's 12 events

			// Every 250 ms of the timeline, every event's own ULID, and
			// the millisecond before each event.
			var points []ulid.ULID
			for d := -time.Second; d <= 91*time.Second; d += 250 * time.Millisecond {
				points = append(points, ledger.UntilID(t0.Add(d)))
			}
			for _, e := range evs {
				points = append(points, e.ID, ledger.UntilID(e.At.Add(-time.Millisecond)))
			}
			for _, p := range points {
				want := foldUntil(evs, p)
				st, err := l.Status(ctx, p)
				is.NoErr(err) // status at a point
				is.Equal(st.PortManager.AsOf, want.Last)
				is.Equal(st.PortManager.PortRange, want.Range.String())
				if !reflect.DeepEqual(st.PortManager.Allocations, want.Allocations()) {
					t.Fatalf("at %s: status gives %+v, the fold gives %+v", ledger.FormatTime(ledger.IDTime(p)), st.PortManager.Allocations, want.Allocations())
				}
				for _, port := range ports {
					ans, err := l.Who(ctx, port, p)
					is.NoErr(err) // who
					holder, prev, next := wantWho(evs, port, p)
					is.Equal(ans.AsOf, want.Last) // who's as_of is the fold's last event
					if holder == nil {
						is.Equal(ans.Holder, nil) // free in the fold, free in who
						gotPrev, gotNext := "", ""
						if ans.Previous != nil {
							gotPrev = ans.Previous.Allocation.ServiceName
							is.True(ans.Previous.Release != nil) // the previous holder was released
						}
						if ans.Next != nil {
							gotNext = ans.Next.Allocation.ServiceName
						}
						is.Equal(gotPrev, prev) // previous holder
						is.Equal(gotNext, next) // next holder
						continue
					}
					if ans.Holder == nil || !reflect.DeepEqual(ans.Holder.Allocation, *holder) {
						t.Fatalf("who %d at %s: got %+v, the fold gives %+v", port, ledger.FormatTime(ledger.IDTime(p)), ans.Holder, holder)
					}
				}
			}

			// Before the first event the registry is empty and says so.
			st, err := l.Status(ctx, ledger.UntilID(t0.Add(-24*time.Hour)))
			is.NoErr(err)
			is.True(st.PortManager.AsOf.IsZero())                            // no as_of before the first event
			is.Equal(len(st.PortManager.Allocations), 0)                     // nothing allocated
			is.Equal(st.PortManager.PortRange, ledger.DefaultRange.String()) // the range a new ledger starts with
		})
	}
}

func TestWhoAtTheExactMillisecond(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	clock := ledgertest.NewClock(t0, 0)
	l, _ := mustOpenAudit(t, clock, 3)
	allocAt := t0.Add(time.Minute + 123*time.Millisecond)
	clock.Set(allocAt)
	a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "learning", StartedBy: "serve.py", Purpose: "workers", PID: 0})
	is.NoErr(err)
	releaseAt := allocAt.Add(2 * time.Hour)
	clock.Set(releaseAt)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "deploy", ReleasedBy: "ci"})
	is.NoErr(err)
	clock.Set(releaseAt.Add(time.Hour))

	// The millisecond of the allocation: held (an event at T is part of "at T").
	ans, err := l.Who(ctx, a.Port, ledger.UntilID(allocAt))
	is.NoErr(err)
	is.True(ans.Holder != nil)                                        // held at the allocation's millisecond
	is.Equal(ans.Holder.Allocation.ServiceName, "learning")           // by learning
	is.Equal(ans.Holder.Allocation.AllocatedAt, allocAt)              // since then
	is.True(ans.Holder.Release != nil)                                // and it was released later
	is.Equal(ans.Holder.Release.Reason, "deploy")                     // why
	is.Equal(ans.Holder.Release.At, releaseAt)                        // when
	is.Equal(ans.Holder.Release.ReleasedBy, "ci")                     // by whom
	is.Equal(time.Duration(ans.Holder.Release.Duration), 2*time.Hour) // held two hours

	// One millisecond before: free, and learning is the next holder.
	ans, err = l.Who(ctx, a.Port, ledger.UntilID(allocAt.Add(-time.Millisecond)))
	is.NoErr(err)
	is.Equal(ans.Holder, nil)                             // free just before
	is.True(ans.Next != nil)                              // someone held it next
	is.Equal(ans.Next.Allocation.ServiceName, "learning") // learning
	is.Equal(ans.Next.Release.Reason, "deploy")           // with its release

	// The millisecond of the release: free, learning held it before.
	ans, err = l.Who(ctx, a.Port, ledger.UntilID(releaseAt))
	is.NoErr(err)
	is.Equal(ans.Holder, nil)                                 // free at the release's millisecond
	is.True(ans.Previous != nil)                              // held before
	is.Equal(ans.Previous.Allocation.ServiceName, "learning") // by learning
	is.Equal(ans.Previous.Release.Reason, "deploy")           // released for a deploy
	is.Equal(ans.Next, nil)                                   // nobody after

	// One millisecond before the release: still held.
	ans, err = l.Who(ctx, a.Port, ledger.UntilID(releaseAt.Add(-time.Millisecond)))
	is.NoErr(err)
	is.True(ans.Holder != nil) // held until the release

	// Now: a held port says it is still held.
	clock.Set(releaseAt.Add(2 * time.Hour))
	b, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "remote"})
	is.NoErr(err)
	ans, err = l.Who(ctx, b.Port, ulid.ULID{})
	is.NoErr(err)
	is.True(ans.Holder != nil)        // held now
	is.Equal(ans.Holder.Release, nil) // still held

	_, err = l.Who(ctx, 0, ulid.ULID{})
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // port 0 is refused
}

func TestUsageOnAKnownTimeline(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	clock := ledgertest.NewClock(t0, 0)
	l, _ := mustOpenAudit(t, clock, 3)
	at := func(s int) { clock.Set(t0.Add(time.Duration(s) * time.Second)) }

	at(0)
	a1, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err)
	at(50)
	b1, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "worker"})
	is.NoErr(err)
	at(80)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: b1.Port, Reason: "crashed"})
	is.NoErr(err)
	at(100)
	_, err = l.Release(ctx, ledger.ReleaseRequest{Port: a1.Port, Reason: "done"})
	is.NoErr(err)
	at(200)
	_, err = l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err)
	at(400)

	// The window 60 s - 300 s cuts worker's and api's first holds.
	us, err := l.Usage(ctx, ledger.UsageQuery{Since: ledger.SinceID(t0.Add(60 * time.Second)), Until: ledger.UntilID(t0.Add(300 * time.Second))})
	is.NoErr(err)
	is.Equal(len(us), 2) // api and worker
	api, worker := us[0], us[1]
	is.Equal(api.Service, "api")
	is.Equal(api.Allocations, 1)                              // one allocation in the window
	is.Equal(api.Holds, 2)                                    // and one from before it
	is.Equal(time.Duration(api.TotalHold), 140*time.Second)   // 40 s + 100 s
	is.Equal(time.Duration(api.LongestHold), 100*time.Second) // the second hold, cut at 300 s
	is.Equal(api.HeldAtEnd, 1)                                // still held at 300 s
	is.Equal(api.Releases, map[string]int{"done": 1})         // released once
	is.Equal(worker.Service, "worker")
	is.Equal(worker.Allocations, 0)                           // allocated before the window
	is.Equal(time.Duration(worker.TotalHold), 20*time.Second) // 60 s - 80 s
	is.Equal(worker.Releases, map[string]int{"crashed": 1})   // crashed once
	is.Equal(worker.HeldAtEnd, 0)

	// The whole log up to now, one service.
	us, err = l.Usage(ctx, ledger.UsageQuery{Service: "api"})
	is.NoErr(err)
	is.Equal(len(us), 1)
	is.Equal(us[0].Allocations, 2)                              // both allocations
	is.Equal(time.Duration(us[0].TotalHold), 300*time.Second)   // 100 s + 200 s up to now
	is.Equal(time.Duration(us[0].LongestHold), 200*time.Second) // the current hold

	_, err = l.Usage(ctx, ledger.UsageQuery{Since: ledger.SinceID(t0.Add(time.Hour)), Until: ledger.UntilID(t0)})
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // since after until
}
