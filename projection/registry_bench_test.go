package projection_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// TestMain removes the benchmark fixture, if a benchmark built one.
func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.dir != "" {
		_ = os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// The 1M-event fixture: a realistic log built once per test process, only
// when a benchmark asks for it. It is the ledger package's fixture plus a
// registry snapshot every 10,000 events, as the writer takes them.
const (
	fixtureEvents = 1_000_000
	fixtureBatch  = 10_000
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

// buildFixture writes n events of a realistic mix over the 101 ports
// 8000-8100 and 50 services, in batches of fixtureBatch, without fsync.
func buildFixture(path string, n int) error {
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l, err := ledger.Open(path, ledger.Options{NoSync: true, Now: func() time.Time {
		clock = clock.Add(time.Hour)
		return clock
	}})
	if err != nil {
		return err
	}
	reg := projection.NewRegistry()
	snap := func(count uint64, batch []ledger.Event) ([]byte, error) {
		for _, e := range batch {
			reg.Apply(e)
		}
		return reg.MarshalSnapshot()
	}
	g := newEventGen(1)
	batch := make([]ledger.Event, 0, fixtureBatch)
	for written := 0; written < n; written += len(batch) {
		batch = batch[:0]
		for len(batch) < fixtureBatch && written+len(batch) < n {
			batch = append(batch, g.next())
		}
		if _, err := l.Append(batch, snap); err != nil {
			_ = l.Close()
			return err
		}
	}
	return l.Close()
}

// portState is what the generator remembers of one port.
type portState struct {
	held   bool
	pid    int
	health ledger.Health
	req    int64
	errs   int64
}

// eventGen makes a plausible stream of events: a port is allocated, gets a
// PID, turns healthy, reports stats many times, sometimes turns unhealthy,
// and is released. It is the generator of the ledger package's benchmarks.
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
		*s = portState{held: true, health: ledger.HealthStarting}
		return ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{
			ServiceName: g.services[g.rng.IntN(len(g.services))], StartedBy: "ci-runner-3", Purpose: "integration tests",
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

func BenchmarkReplay1M(b *testing.B) {
	l := openFixture(b)
	var r *projection.Registry
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if r, err = projection.Fold(l, ulid.ULID{}); err != nil {
			b.Fatal(err)
		}
	}
	if r.Count != fixtureEvents {
		b.Fatalf("folded %d events, want %d", r.Count, fixtureEvents)
	}
	b.ReportMetric(float64(r.Count)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
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
	b.ReportMetric(float64(size)/fixtureEvents, "bytes/event")
}
