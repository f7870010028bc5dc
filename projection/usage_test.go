package projection_test

import (
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
