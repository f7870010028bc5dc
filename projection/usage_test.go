package projection_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// Two holds that both span the whole window are as long as each other: the
// longest is the lower port's, every time, whatever order a map gives.
func TestUsageLongestHoldTieIsTheLowerPort(t *testing.T) {
	since := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	start := projection.NewRegistry()
	for i, port := range []int{8009, 8003, 8007, 8005} {
		start.Apply(ledger.Event{ID: ulid.Make(), At: since.Add(-time.Duration(i+1) * time.Hour), Type: ledger.EventAllocated, Port: port,
			Allocated: &ledger.Allocated{ServiceName: "web", StartedBy: "t"}})
	}
	for range 20 {
		u := projection.NewUsage(start, since)
		got := u.Result(since.Add(24*time.Hour), "")
		if len(got) != 1 || got[0].LongestPort != 8003 || got[0].HeldAtEnd != 4 {
			t.Fatalf("usage = %+v, want web's longest hold on 8003, 4 held at the end", got)
		}
	}
}

// A window counted in parts, drained between them, adds up to the window
// counted whole: of two holds as long as each other, in two parts, the
// earlier stays the longest, as it does in one fold.
func TestUsageInPartsIsTheWhole(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ev := func(s int, typ ledger.EventType, port int, reason string) ledger.Event {
		e := ledger.Event{ID: ulid.Make(), At: t0.Add(time.Duration(s) * time.Second), Type: typ, Port: port}
		if typ == ledger.EventAllocated {
			e.Allocated = &ledger.Allocated{ServiceName: "web", StartedBy: "t"}
		} else {
			e.Released = &ledger.Released{Reason: reason}
		}
		return e
	}
	evs := []ledger.Event{
		ev(0, ledger.EventAllocated, 8005, ""), ev(10, ledger.EventReleased, 8005, "done"),
		ev(20, ledger.EventAllocated, 8003, ""), ev(30, ledger.EventReleased, 8003, "crashed"),
		ev(40, ledger.EventAllocated, 8004, ""),
	}
	end := t0.Add(45 * time.Second)
	whole := projection.NewUsage(nil, t0)
	for _, e := range evs {
		whole.Apply(e)
	}
	want := whole.Result(end, "")

	parts := projection.NewUsage(nil, t0)
	var got []ledger.ServiceUsage
	for i, e := range evs {
		parts.Apply(e)
		if i == 1 || i == 3 {
			got = append(got, parts.Drain()...)
		}
	}
	parts.End(end)
	got = append(got, parts.Drain()...)
	if len(got) != 3 {
		t.Fatalf("parts = %+v, want web in each of three", got)
	}
	sum := got[0]
	for _, p := range got[1:] {
		projection.MergeUsage(&sum, p)
	}
	if !reflect.DeepEqual([]ledger.ServiceUsage{sum}, want) {
		t.Fatalf("the parts add up to %+v, want %+v", sum, want[0])
	}
	if sum.LongestPort != 8005 {
		t.Fatalf("longest hold on %d, want 8005's, the earlier of the two 10 s holds", sum.LongestPort)
	}
}
