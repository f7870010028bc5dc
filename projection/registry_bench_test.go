package projection_test

import (
	"os"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/fixture"
	"github.com/portledger/portledger/projection"
)

// TestMain removes the benchmark fixture, if a benchmark built one.
func TestMain(m *testing.M) {
	code := m.Run()
	_ = bench1M.Remove()
	os.Exit(code)
}

// bench1M is the 1M-event log, built once per test process, only when a
// benchmark asks for it: the ledger package's log plus a registry snapshot
// every 10,000 events, as the writer takes them.
var bench1M = fixture.Shared{Spec: fixture.Spec{
	SnapshotEvery: 10_000,
	NewProjection: func() fixture.Projection { return projection.NewRegistry() },
}}

func BenchmarkReplay1M(b *testing.B) {
	l := bench1M.Open(b)
	var r *projection.Registry
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if r, err = projection.Fold(l, ulid.ULID{}); err != nil {
			b.Fatal(err)
		}
	}
	if r.Count != fixture.DefaultEvents {
		b.Fatalf("folded %d events, want %d", r.Count, fixture.DefaultEvents)
	}
	b.ReportMetric(float64(r.Count)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkDiskPerEvent1M(b *testing.B) {
	bench1M.ReportDiskPerEvent(b)
}
