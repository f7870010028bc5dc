package commands_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/internal/fixture"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// The audit benchmarks run on a 1M-event log with a snapshot every 10,000
// events, as the writer takes them, over the 101 ports 8000-8100 and 50
// services. It is built once per test process, in groups of 100 events one
// minute apart (about a week of a busy host), without fsync, and the
// daemon's projection files are caught up once.
const (
	benchEvents = fixture.DefaultEvents
	benchGroup  = 100
	benchStep   = time.Minute
)

var benchStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var bench = fixture.Shared{
	Spec: fixture.Spec{
		Events:        benchEvents,
		Batch:         benchGroup,
		Start:         benchStart,
		Step:          benchStep,
		SnapshotEvery: commands.DefaultSnapshotEvery,
		NewProjection: func() fixture.Projection { return projection.NewRegistry() },
	},
	After: fixture.CatchUpFiles,
}

// TestMain removes the benchmark fixture, if a benchmark built one.
func TestMain(m *testing.M) {
	code := m.Run()
	_ = bench.Remove()
	os.Exit(code)
}

// openBench opens the fixture's log and a Ledger on it for one benchmark.
func openBench(b *testing.B) (*commands.Ledger, *ledger.Log) {
	b.Helper()
	log := bench.Open(b)
	l, err := commands.New(commands.Config{Log: log, PortFree: func(int) error { return nil }})
	if err != nil {
		b.Fatalf("new ledger: %v", err)
	}
	b.Cleanup(func() { l.Close() }) // runs before the fixture's own Close of the log
	return l, log
}

// randomPoint is a moment in the fixture's timeline.
func randomPoint(rng *rand.Rand) ulid.ULID {
	span := time.Duration(benchEvents/benchGroup) * benchStep
	return ledger.UntilID(benchStart.Add(time.Duration(rng.Int64N(int64(span)))))
}

// p95 reports the 95th percentile of the iterations' durations.
func reportP95(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
}

// timeP95 runs one operation an iteration and reports the p95 of their
// times: next prepares the iteration's arguments (untimed) and returns the
// operation, whose error fails the benchmark.
func timeP95(b *testing.B, next func() func() error) {
	var times []time.Duration
	for b.Loop() {
		op := next()
		start := time.Now()
		err := op()
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportP95(b, times)
}

func BenchmarkStatusAt1M(b *testing.B) {
	l, _ := openBench(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2, 3))
	var times []time.Duration
	for b.Loop() {
		at := randomPoint(rng)
		start := time.Now()
		st, err := l.Status(ctx, at)
		times = append(times, time.Since(start))
		if err != nil || st.PortManager.AsOf.IsZero() {
			b.Fatalf("status at %s: %v", at, err)
		}
	}
	reportP95(b, times)
}

func BenchmarkWho1M(b *testing.B) {
	l, _ := openBench(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 5))
	var times []time.Duration
	held := 0
	for b.Loop() {
		at, port := randomPoint(rng), fixture.FirstPort+rng.IntN(fixture.Ports)
		start := time.Now()
		ans, err := l.Who(ctx, port, at)
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if ans.Holder != nil {
			held++
		}
	}
	reportP95(b, times)
	b.ReportMetric(float64(held)/float64(len(times)), "held/op")
}

func BenchmarkHistoryPort1M(b *testing.B) {
	l, _ := openBench(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(6, 7))
	var times []time.Duration
	n := 0
	for b.Loop() {
		port := fixture.FirstPort + rng.IntN(fixture.Ports)
		start := time.Now()
		evs, err := l.History(ctx, ledger.HistoryQuery{Port: port})
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		n += len(evs)
	}
	reportP95(b, times)
	b.ReportMetric(float64(n)/float64(len(times)), "events/op")
}

func BenchmarkUsageWeek1M(b *testing.B) {
	l, _ := openBench(b)
	ctx := context.Background()
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		us, err := l.Usage(ctx, ledger.UsageQuery{})
		times = append(times, time.Since(start))
		if err != nil || len(us) != fixture.Services {
			b.Fatalf("usage: %d services, %v", len(us), err)
		}
	}
	reportP95(b, times)
}

// BenchmarkDaemonStart1M is what `ledger serve` does before it listens:
// open the log, check its hash chain since the newest snapshot, fold the
// registry from that snapshot, open the projection files and catch them up
// (they already are).
func BenchmarkDaemonStart1M(b *testing.B) {
	benchDaemonStart(b, bench.Layout(b), ledger.Options{})
}

// benchDaemonStart times the start of a daemon on layout's log, whose
// projection files are already caught up, and reports the p95.
func benchDaemonStart(b *testing.B, layout ledger.Layout, opts ledger.Options) {
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		log, err := ledger.Open(layout.DB(), opts)
		if err != nil {
			b.Fatal(err)
		}
		if rep, err := log.VerifyChainSinceSnapshot(); err != nil || !rep.OK() {
			b.Fatalf("chain check at start: %+v %v", rep.Break, err)
		}
		l, err := commands.New(commands.Config{Log: log})
		if err != nil {
			b.Fatal(err)
		}
		files, err := projection.OpenFiles(layout, log)
		if err != nil {
			b.Fatal(err)
		}
		n, err := files.CatchUp()
		times = append(times, time.Since(start))
		if err != nil || n != 0 {
			b.Fatalf("catch up wrote %d events: %v", n, err)
		}
		files.Close()
		l.Close()
		log.Close()
	}
	reportP95(b, times)
}

func BenchmarkAuditDiskPerEvent1M(b *testing.B) {
	bench.ReportDiskPerEvent(b)
}

// BenchmarkHistoryPortNewest1M reads one page of a port's history, newest
// first: what `ledger history --port P --newest --limit 100` and the
// dashboard's port page ask.
func BenchmarkHistoryPortNewest1M(b *testing.B) {
	l, _ := openBench(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(8, 9))
	var times []time.Duration
	n := 0
	for b.Loop() {
		port := fixture.FirstPort + rng.IntN(fixture.Ports)
		start := time.Now()
		evs, err := l.History(ctx, ledger.HistoryQuery{Port: port, Newest: true, Limit: 100})
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		n += len(evs)
	}
	reportP95(b, times)
	b.ReportMetric(float64(n)/float64(len(times)), "events/op")
}
