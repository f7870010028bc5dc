package faulttest

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// TestClockStepsBack runs the ledger on a clock that steps back an hour
// while it runs (as NTP or a VM resume may do). Event IDs stay strictly
// increasing, and the registry at every event and at every moment asked
// for (before, inside and after the repeated hour) is the fold of exactly
// the events up to that point.
func TestClockStepsBack(t *testing.T) {
	is := is.New(t)
	// A millisecond passes on every reading, as a real clock does between
	// commits.
	clk := ledgertest.NewClock(time.Date(2025, 11, 15, 14, 0, 0, 1e6, time.UTC), time.Millisecond)
	log, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Now: clk.Now})
	is.NoErr(err)
	t.Cleanup(func() { log.Close() })
	svc, err := commands.New(commands.Config{Log: log, Now: clk.Now, SnapshotEvery: 7,
		PortFree: func(int) error { return nil }})
	is.NoErr(err)
	t.Cleanup(func() { svc.Close() })
	ctx := context.Background()
	is.NoErr(svc.SetRange(ctx, ledger.Range{Lo: 28600, Hi: 28699}))

	var asked []time.Time // moments to ask the past about
	step := func(phase string, n int) {
		for i := range n {
			a, err := svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("%s%d", phase, i)})
			is.NoErr(err)
			if i%2 == 1 {
				_, err = svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: phase})
				is.NoErr(err)
			}
			clk.Add(time.Minute)
			asked = append(asked, clk.Now())
		}
	}
	step("before", 10)
	clk.Add(-time.Hour)
	step("repeated", 10) // the clock walks the last hour again
	clk.Add(2 * time.Hour)
	step("after", 5)

	var evs []ledger.Event
	is.NoErr(log.Scan(ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error {
		evs = append(evs, e)
		return nil
	}))
	for i := 1; i < len(evs); i++ {
		if evs[i].ID.Compare(evs[i-1].ID) <= 0 {
			t.Fatalf("event %d ID %s not after %s", i, evs[i].ID, evs[i-1].ID)
		}
		is.True(!evs[i].At.Before(evs[i-1].At)) // event times never go back either
	}

	// The registry at each event is the fold of the events up to it.
	reg := projection.NewRegistry()
	for _, e := range evs {
		reg.Apply(e)
		checkAt(t, svc, e.ID, reg)
	}
	// A moment is read as the last ID of its millisecond: the same fold.
	for _, at := range asked {
		until := ledger.UntilID(at)
		want := projection.NewRegistry()
		for _, e := range evs {
			if e.ID.Compare(until) <= 0 {
				want.Apply(e)
			}
		}
		checkAt(t, svc, until, want)
	}
	// And from a fresh fold of the log (snapshots every 7 events).
	again, err := projection.StateAt(log, ulid.ULID{})
	is.NoErr(err)
	is.Equal(ports(again), ports(reg)) // the registry now
}

func checkAt(t *testing.T, svc *commands.Ledger, at ulid.ULID, want *projection.Registry) {
	t.Helper()
	got, err := svc.Allocations(context.Background(), ledger.AllocationQuery{At: at})
	if err != nil {
		t.Fatal(err)
	}
	var gotPorts []string
	for _, a := range got {
		gotPorts = append(gotPorts, fmt.Sprintf("%d:%s", a.Port, a.ServiceName))
	}
	slices.Sort(gotPorts)
	if w := ports(want); !slices.Equal(gotPorts, w) {
		t.Fatalf("at %s: got %v, want %v", at, gotPorts, w)
	}
}

func ports(r *projection.Registry) []string {
	var s []string
	for p, a := range r.Allocs {
		s = append(s, fmt.Sprintf("%d:%s", p, a.ServiceName))
	}
	slices.Sort(s)
	return s
}
