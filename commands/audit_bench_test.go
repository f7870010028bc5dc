package commands_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// The audit benchmarks run on a 1M-event log with a snapshot every 10,000
// events, as the writer takes them, over the 101 ports 8000-8100 and 50
// services. It is built once per test process, in groups of 100 events one
// minute apart (about a week of a busy host), without fsync.
const (
	benchEvents = 1_000_000
	benchGroup  = 100
	benchStep   = time.Minute
)

var benchStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var bench struct {
	once sync.Once
	dir  string
	err  error
}

// TestMain removes the benchmark fixture, if a benchmark built one.
func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		_ = os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

// benchData returns the data directory of the 1M-event fixture, building it
// (and its caught-up projection files) on first use.
func benchData(b *testing.B) ledger.Layout {
	b.Helper()
	if testing.Short() {
		b.Skip("the 1M-event fixture is not built in -short mode")
	}
	bench.once.Do(func() {
		if bench.dir, bench.err = os.MkdirTemp("", "portledger-audit-bench-"); bench.err != nil {
			return
		}
		start := time.Now()
		bench.err = buildBench(ledger.Layout{Dir: bench.dir})
		b.Logf("built the %d-event fixture and its files in %s", benchEvents, time.Since(start).Round(time.Millisecond))
	})
	if bench.err != nil {
		b.Fatalf("build fixture: %v", bench.err)
	}
	return ledger.Layout{Dir: bench.dir}
}

func buildBench(layout ledger.Layout) error {
	clock := benchStart
	log, err := ledger.Open(layout.DB(), ledger.Options{NoSync: true, Now: func() time.Time { return clock }})
	if err != nil {
		return err
	}
	reg := projection.NewRegistry()
	snap := func(count uint64, batch []ledger.Event) ([]byte, error) {
		for _, e := range batch {
			reg.Apply(e)
		}
		if count/commands.DefaultSnapshotEvery == (count-uint64(len(batch)))/commands.DefaultSnapshotEvery {
			return nil, nil
		}
		return reg.MarshalSnapshot()
	}
	g := newBenchGen(1)
	batch := make([]ledger.Event, 0, benchGroup)
	for written := 0; written < benchEvents; written += len(batch) {
		batch = batch[:0]
		for len(batch) < benchGroup {
			batch = append(batch, g.next())
		}
		clock = clock.Add(benchStep)
		if _, err := log.Append(batch, snap); err != nil {
			log.Close()
			return err
		}
	}
	// The daemon's files, caught up once.
	files, err := projection.OpenFiles(layout, log)
	if err == nil {
		_, err = files.CatchUp()
		files.Close()
	}
	if cerr := log.Close(); err == nil {
		err = cerr
	}
	return err
}

// benchGen makes a plausible stream: a port is allocated, gets a PID,
// turns healthy, reports stats many times, sometimes turns unhealthy, and
// is released. It is the generator of the ledger and projection benchmarks.
type benchGen struct {
	rng   *rand.Rand
	ports [101]struct {
		held, pid bool
		health    ledger.Health
		req, errs int64
	}
	services []string
	seq      int
}

func newBenchGen(seed uint64) *benchGen {
	g := &benchGen{rng: rand.New(rand.NewPCG(seed, seed+1))}
	kinds := []string{"api", "worker", "web", "grpc", "admin"}
	for i := range 50 {
		g.services = append(g.services, fmt.Sprintf("team%02d-%s", i/5, kinds[i%5]))
	}
	return g
}

func (g *benchGen) next() ledger.Event {
	g.seq++
	i := g.rng.IntN(len(g.ports))
	port, s := 8000+i, &g.ports[i]
	if !s.held {
		s.held, s.pid, s.health, s.req, s.errs = true, false, ledger.HealthStarting, 0, 0
		return ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{
			ServiceName: g.services[g.rng.IntN(len(g.services))], StartedBy: "ci-runner-3", Purpose: "integration tests",
			HealthURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
		}}
	}
	r := g.rng.IntN(100)
	switch {
	case !s.pid && r < 40:
		s.pid = true
		return ledger.Event{Type: ledger.EventPIDRegistered, Port: port, PIDRegistered: &ledger.PIDRegistered{
			PID: 10000 + g.seq%50000, PIDStarted: 1735689600000 + int64(g.seq), Cmdline: fmt.Sprintf("/usr/bin/python3 -m uvicorn app:main --port %d", port),
		}}
	case s.health == ledger.HealthStarting && r < 60:
		s.health = ledger.HealthHealthy
		return ledger.Event{Type: ledger.EventHealthChanged, Port: port, HealthChanged: &ledger.HealthChanged{
			From: ledger.HealthStarting, To: ledger.HealthHealthy, Reason: "listening", Alive: true, Listening: true, Endpoint: "ok"}}
	case r < 90:
		s.req += int64(g.rng.IntN(500))
		if g.rng.IntN(10) == 0 {
			s.errs++
		}
		return ledger.Event{Type: ledger.EventStatsReported, Port: port, StatsReported: &ledger.StatsReported{RequestCount: s.req, ErrorCount: s.errs}}
	case r < 94:
		from, to := s.health, ledger.HealthUnhealthy
		if from == ledger.HealthUnhealthy {
			to = ledger.HealthHealthy
		}
		s.health = to
		return ledger.Event{Type: ledger.EventHealthChanged, Port: port, HealthChanged: &ledger.HealthChanged{
			From: from, To: to, Reason: "endpoint check", Alive: true, Listening: to == ledger.HealthHealthy, Endpoint: "ok"}}
	default:
		s.held = false
		return ledger.Event{Type: ledger.EventReleased, Port: port, Released: &ledger.Released{
			Reason: "process exited", ReleasedBy: "watchdog", DurationMS: int64(g.rng.IntN(3600000)),
			RequestCount: s.req, ErrorCount: s.errs,
		}}
	}
}

// openBench opens the fixture's log and a Ledger on it for one benchmark.
func openBench(b *testing.B) (*commands.Ledger, *ledger.Log) {
	b.Helper()
	log, err := ledger.Open(benchData(b).DB(), ledger.Options{})
	if err != nil {
		b.Fatalf("open fixture: %v", err)
	}
	l, err := commands.New(commands.Config{Log: log, PortFree: func(int) error { return nil }})
	if err != nil {
		b.Fatalf("new ledger: %v", err)
	}
	b.Cleanup(func() { l.Close(); log.Close() })
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
		at, port := randomPoint(rng), 8000+rng.IntN(101)
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
		port := 8000 + rng.IntN(101)
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
		if err != nil || len(us) != 50 {
			b.Fatalf("usage: %d services, %v", len(us), err)
		}
	}
	reportP95(b, times)
}

// BenchmarkDaemonStart1M is what `ledger serve` does before it listens:
// open the log, fold the registry from the newest snapshot, open the
// projection files and catch them up (they already are).
func BenchmarkDaemonStart1M(b *testing.B) {
	layout := benchData(b)
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		log, err := ledger.Open(layout.DB(), ledger.Options{})
		if err != nil {
			b.Fatal(err)
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
	layout := benchData(b)
	var size int64
	for b.Loop() {
		info, err := os.Stat(layout.DB())
		if err != nil {
			b.Fatal(err)
		}
		size = info.Size()
	}
	b.ReportMetric(float64(size)/benchEvents, "bytes/event")
}
