package ledger_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 64} {
		name := "durable-1"
		if size > 1 {
			name = fmt.Sprintf("durable-batch%d", size)
		}
		b.Run(name, func(b *testing.B) {
			l := MustOpenLog(b, ledger.Options{})
			batch := make([]ledger.Event, size)
			for i := range batch {
				batch[i] = stats(8000+i%101, int64(i))
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Append(batch, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// The 1M-event fixture: a realistic log built once per test process, only
// when a benchmark asks for it, and removed by TestMain.
const (
	fixtureEvents = 1_000_000
	fixtureBatch  = 10_000
	fixturePort   = 8050 // the port whose history BenchmarkScanPort1M reads
)

var fixture struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// fixture1M returns the path of the 1M-event log, building it on first use.
func fixture1M(b *testing.B) string {
	b.Helper()
	if testing.Short() {
		b.Skip("the 1M-event fixture is not built in -short mode")
	}
	fixture.once.Do(func() {
		fixture.dir, fixture.err = os.MkdirTemp("", "portledger-bench-")
		if fixture.err != nil {
			return
		}
		fixture.path = filepath.Join(fixture.dir, "ledger.db")
		start := time.Now()
		fixture.err = buildFixture(fixture.path, fixtureEvents)
		b.Logf("built the %d-event fixture in %s", fixtureEvents, time.Since(start).Round(time.Millisecond))
	})
	if fixture.err != nil {
		b.Fatalf("build fixture: %v", fixture.err)
	}
	return fixture.path
}

// buildFixture writes n events of a realistic mix (allocate, register pid,
// health changes, stats, release) over the 101 ports 8000-8100 and 50
// services, in batches of fixtureBatch, without fsync.
func buildFixture(path string, n int) error {
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := ledger.Open(path, ledger.Options{NoSync: true, Now: func() time.Time {
		clock = clock.Add(time.Hour)
		return clock
	}})
	if err != nil {
		return err
	}
	g := newEventGen(1)
	batch := make([]ledger.Event, 0, fixtureBatch)
	for written := 0; written < n; written += len(batch) {
		batch = batch[:0]
		for len(batch) < fixtureBatch && written+len(batch) < n {
			batch = append(batch, g.next())
		}
		if _, err := l.Append(batch, nil); err != nil {
			_ = l.Close()
			return err
		}
	}
	return l.Close()
}

// portState is what the generator remembers of one port.
type portState struct {
	held    bool
	service string
	pid     int
	health  ledger.Health
	req     int64
	errs    int64
}

// eventGen makes a plausible stream of events: a port is allocated, gets a
// PID, turns healthy, reports stats many times, sometimes turns unhealthy,
// and is released.
type eventGen struct {
	rng      *rand.Rand
	ports    [101]portState
	services []string
	seq      int
}

func newEventGen(seed uint64) *eventGen {
	g := &eventGen{rng: rand.New(rand.NewPCG(seed, seed+1))}
	kinds := []string{"api", "worker", "web", "grpc", "admin"}
	for i := range 50 {
		g.services = append(g.services, fmt.Sprintf("team%02d-%s", i/5, kinds[i%5]))
	}
	return g
}

func (g *eventGen) next() ledger.Event {
	g.seq++
	i := g.rng.IntN(len(g.ports))
	port, s := 8000+i, &g.ports[i]
	if !s.held {
		*s = portState{held: true, service: g.services[g.rng.IntN(len(g.services))], health: ledger.HealthStarting}
		return ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{
			ServiceName: s.service, StartedBy: "ci-runner-3", Purpose: "integration tests",
			HealthURL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
		}}
	}
	r := g.rng.IntN(100)
	switch {
	case s.pid == 0 && r < 40:
		s.pid = 10000 + g.seq%50000
		return ledger.Event{Type: ledger.EventPIDRegistered, Port: port, PIDRegistered: &ledger.PIDRegistered{
			PID: s.pid, PIDStarted: 1735689600000 + int64(g.seq), Cmdline: fmt.Sprintf("/usr/bin/python3 -m uvicorn app:main --port %d", port),
		}}
	case s.health == ledger.HealthStarting && r < 60:
		s.health = ledger.HealthHealthy
		return healthEvent(port, ledger.HealthStarting, ledger.HealthHealthy, "listening")
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
		return healthEvent(port, from, to, "endpoint check")
	default:
		s.held = false
		return ledger.Event{Type: ledger.EventReleased, Port: port, Released: &ledger.Released{
			Reason: "process exited", ReleasedBy: "watchdog", DurationMS: int64(g.rng.IntN(3600000)),
			RequestCount: s.req, ErrorCount: s.errs,
		}}
	}
}

func healthEvent(port int, from, to ledger.Health, reason string) ledger.Event {
	return ledger.Event{Type: ledger.EventHealthChanged, Port: port, HealthChanged: &ledger.HealthChanged{
		From: from, To: to, Reason: reason, Alive: true, Listening: to == ledger.HealthHealthy, Endpoint: "ok",
	}}
}

// openFixture opens the 1M-event log for the length of the benchmark.
func openFixture(b *testing.B) *ledger.Log {
	b.Helper()
	l, err := ledger.Open(fixture1M(b), ledger.Options{})
	if err != nil {
		b.Fatalf("open fixture: %v", err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

func BenchmarkScanPort1M(b *testing.B) {
	l := openFixture(b)
	var times []time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		n = 0
		err := l.ScanPort(fixturePort, ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error {
			n++
			return nil
		})
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(n), "events/op")
	b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
}

func BenchmarkDiskPerEvent1M(b *testing.B) {
	l := openFixture(b)
	var size int64
	for b.Loop() {
		info, err := os.Stat(l.Path())
		if err != nil {
			b.Fatal(err)
		}
		size = info.Size()
	}
	used, err := l.Size()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(size)/fixtureEvents, "bytes/event")
	b.ReportMetric(float64(used)/fixtureEvents, "used-bytes/event")
}
