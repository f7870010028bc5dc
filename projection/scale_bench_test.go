package projection_test

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/fixture"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// scale is the 10M-event log with about 1M service names that the
// commands package's 10M benchmarks read, from the fixture cache; the
// benchmarks run only with LEDGER_BENCH_10M=1:
//
//	LEDGER_BENCH_10M=1 go test -run '^$' -bench 10M -benchtime 1x ./projection/
var scale = fixture.Shared{
	Spec:  fixture.Year(10_000_000, fixture.YearBatch, 1_000_000),
	Cache: true,
	Env:   "LEDGER_BENCH_10M",
}

// BenchmarkReplay10M folds the whole log into a registry, without a
// snapshot.
func BenchmarkReplay10M(b *testing.B) {
	l := scale.Open(b)
	var r *projection.Registry
	for b.Loop() {
		var err error
		if r, err = projection.Fold(l, ulid.ULID{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.Count)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/replay")
}

// BenchmarkReplayFiles10M is `ledger replay`: it writes port_registry.json
// and the daily JSONL logs of the whole log, into a fresh directory.
func BenchmarkReplayFiles10M(b *testing.B) {
	l := scale.Open(b)
	var res projection.ReplayResult
	for b.Loop() {
		var err error
		start := time.Now()
		if res, err = projection.Replay(ledger.Layout{Dir: b.TempDir()}, l, projection.ReplayOptions{}); err != nil {
			b.Fatal(err)
		}
		b.Logf("replayed %d events into %d files in %s", res.Events, len(res.Files), time.Since(start).Round(time.Millisecond))
	}
	b.ReportMetric(float64(res.Events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/replay")
}
