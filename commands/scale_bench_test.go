package commands_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/internal/fixture"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

// The 10M benchmarks read a busy CI host's year: 10M events over 365 days
// on the 101 ports 8000-8100 (about 100k events a port), with about 1M
// distinct service names, a snapshot every 10,000 events and the daemon's
// projection files. The log is built once into the fixture cache
// (go run ./internal/fixture/cmd/build) and read from there; the benchmarks
// run only with LEDGER_BENCH_10M=1:
//
//	LEDGER_BENCH_10M=1 go test -run '^$' -bench 10M -benchtime 200x ./commands/
var scale = fixture.Shared{
	Spec:  fixture.Year(10_000_000, fixture.YearBatch, 1_000_000),
	Cache: true,
	Env:   "LEDGER_BENCH_10M",
}

// scaleSpan is the time the scale fixture covers.
func scaleSpan() (time.Time, time.Duration) {
	s := scale.Spec
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return start, time.Duration(s.Events/s.Batch) * s.Step
}

// openScale opens the scale fixture read-only and a Ledger on it.
func openScale(b *testing.B) *commands.Ledger {
	b.Helper()
	log := scale.Open(b)
	l, err := commands.New(commands.Config{Log: log, PortFree: func(int) error { return nil }})
	if err != nil {
		b.Fatalf("new ledger: %v", err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// scalePoint is a random moment in the scale fixture's year.
func scalePoint(rng *rand.Rand) ulid.ULID {
	start, span := scaleSpan()
	return ledger.UntilID(start.Add(time.Duration(rng.Int64N(int64(span)))))
}

func BenchmarkStatusAt10M(b *testing.B) {
	l := openScale(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2, 3))
	timeP95(b, func() func() error {
		at := scalePoint(rng)
		return func() error {
			st, err := l.Status(ctx, at)
			if err != nil || st.PortManager.AsOf.IsZero() {
				return fmt.Errorf("status at %s: %v", at, err)
			}
			return nil
		}
	})
}

func BenchmarkWho10M(b *testing.B) {
	l := openScale(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 5))
	timeP95(b, func() func() error {
		at, port := scalePoint(rng), fixture.FirstPort+rng.IntN(fixture.Ports)
		return func() error { _, err := l.Who(ctx, port, at); return err }
	})
}

// BenchmarkWhoNow10M is `ledger who PORT`: who holds it now.
func BenchmarkWhoNow10M(b *testing.B) {
	l := openScale(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 5))
	timeP95(b, func() func() error {
		port := fixture.FirstPort + rng.IntN(fixture.Ports)
		return func() error { _, err := l.Who(ctx, port, ulid.ULID{}); return err }
	})
}

// BenchmarkHistoryPortNewest10M reads the newest page of 100 of a port
// with about 100k events.
func BenchmarkHistoryPortNewest10M(b *testing.B) {
	rng := rand.New(rand.NewPCG(8, 9))
	benchHistoryPage(b, func() ledger.HistoryQuery {
		return ledger.HistoryQuery{Port: fixture.FirstPort + rng.IntN(fixture.Ports), Newest: true, Limit: 100}
	})
}

// BenchmarkHistoryPortPage10M reads a page of 100 of a port's history
// before a random moment, newest first: paging back through it.
func BenchmarkHistoryPortPage10M(b *testing.B) {
	rng := rand.New(rand.NewPCG(10, 11))
	benchHistoryPage(b, func() ledger.HistoryQuery {
		port, at := fixture.FirstPort+rng.IntN(fixture.Ports), scalePoint(rng)
		return ledger.HistoryQuery{Port: port, Until: at, Newest: true, Limit: 100}
	})
}

// benchHistoryPage times the history queries that next gives, and reports
// the p95 and how many events a page held.
func benchHistoryPage(b *testing.B, next func() ledger.HistoryQuery) {
	l := openScale(b)
	ctx := context.Background()
	n, pages := 0, 0
	timeP95(b, func() func() error {
		q := next()
		return func() error {
			evs, err := l.History(ctx, q)
			n, pages = n+len(evs), pages+1
			return err
		}
	})
	b.ReportMetric(float64(n)/float64(pages), "events/op")
}

// BenchmarkUsageWeek10M is `ledger usage --since 7d` at the end of the
// year: about 190k events and 19k service names in the window.
func BenchmarkUsageWeek10M(b *testing.B) {
	l := openScale(b)
	ctx := context.Background()
	start, span := scaleSpan()
	end := start.Add(span)
	q := ledger.UsageQuery{Since: ledger.SinceID(end.Add(-7 * 24 * time.Hour))}
	services := 0
	timeP95(b, func() func() error {
		return func() error {
			us, err := l.Usage(ctx, q)
			services = len(us)
			return err
		}
	})
	b.ReportMetric(float64(services), "services")
}

// BenchmarkDaemonStart10M is what `ledger serve` does before it listens,
// with the projection files present, as BenchmarkDaemonStart1M.
func BenchmarkDaemonStart10M(b *testing.B) {
	benchDaemonStart(b, scale.Layout(b), ledger.Options{ReadOnly: true})
}

// BenchmarkCommit10M times one durable allocate+release cycle, under a
// fresh service name as CI tools give, on a copy of the scale fixture and
// on a fresh log, alternately in one loop, and reports both and their
// ratio: the writer's cost per commit must not grow with the log or with
// the service names it has seen. Beside them, in the same loop, it times
// two bare bbolt commits of one 100-byte key (the pages a ledger commit
// writes: a leaf, the root, the freelist and the meta page) on a second
// copy of the fixture's file and on a fresh file: bare-10M/fresh is what
// the file alone costs, the same pages written into a 1.2 GB file rather
// than a small one.
func BenchmarkCommit10M(b *testing.B) {
	benchCommit(b, func(i int) string { return fmt.Sprintf("bench-run-%07d", i) })
}

// BenchmarkCommit10MSameName is BenchmarkCommit10M with one service name
// for every cycle, which the services index already holds: what is left of
// the difference is the log's size alone.
func BenchmarkCommit10MSameName(b *testing.B) {
	benchCommit(b, func(int) string { return "bench-service" })
}

func benchCommit(b *testing.B, name func(i int) string) {
	src := scale.Path(b)
	dir := b.TempDir()
	big := filepath.Join(dir, "big.db")
	if err := copyFile(big, src); err != nil {
		b.Fatal(err)
	}
	open := func(path string) (*commands.Ledger, *ledger.Log) {
		log, err := ledger.Open(path, ledger.Options{})
		if err != nil {
			b.Fatal(err)
		}
		l, err := commands.New(commands.Config{Log: log, PortFree: func(int) error { return nil }})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close(); log.Close() })
		return l, log
	}
	onBig, bigLog := open(big)
	onFresh, freshLog := open(filepath.Join(dir, "fresh.db"))
	bigStart, freshStart := bigLog.WriteStats(), freshLog.WriteStats()
	bare := filepath.Join(dir, "bare-big.db")
	if err := copyFile(bare, src); err != nil {
		b.Fatal(err)
	}
	bareBig, bareFresh := openBare(b, bare), openBare(b, filepath.Join(dir, "bare-fresh.db"))
	ctx := context.Background()
	cycle := func(l *commands.Ledger, i int) time.Duration {
		start := time.Now()
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: name(i), StartedBy: "bench", Purpose: "commit cost"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	bareCycle := func(db *bolt.DB, i int) time.Duration {
		start := time.Now()
		for j := range 2 {
			key := binary.BigEndian.AppendUint64(nil, uint64(2*i+j))
			if err := db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("bare")).Put(key, make([]byte, 100))
			}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	var tBig, tFresh, tBareBig, tBareFresh time.Duration
	i := 0
	for b.Loop() {
		i++
		if i%2 == 0 {
			tBig += cycle(onBig, i)
			tFresh += cycle(onFresh, i)
			tBareBig += bareCycle(bareBig, i)
			tBareFresh += bareCycle(bareFresh, i)
		} else {
			tBareFresh += bareCycle(bareFresh, i)
			tBareBig += bareCycle(bareBig, i)
			tFresh += cycle(onFresh, i)
			tBig += cycle(onBig, i)
		}
	}
	b.ReportMetric(float64(tFresh.Microseconds())/float64(i), "fresh-µs/cycle")
	b.ReportMetric(float64(tBig.Microseconds())/float64(i), "10M-µs/cycle")
	b.ReportMetric(float64(tBig)/float64(tFresh), "10M/fresh")
	b.ReportMetric(float64(tBareBig)/float64(tBareFresh), "bare-10M/fresh")
	bigEnd, freshEnd := bigLog.WriteStats(), freshLog.WriteStats()
	b.ReportMetric(float64(freshEnd.Writes-freshStart.Writes)/float64(i), "fresh-pages/cycle")
	b.ReportMetric(float64(bigEnd.Writes-bigStart.Writes)/float64(i), "10M-pages/cycle")
}

// openBare opens the bbolt file at path as the ledger does (the array
// freelist) with a bucket "bare", and closes it when b ends.
func openBare(b *testing.B, path string) *bolt.DB {
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistArrayType})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("bare"))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return db
}

func BenchmarkDiskPerEvent10M(b *testing.B) {
	scale.ReportDiskPerEvent(b)
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BenchmarkUsageYear10M is the heaviest read: usage over the whole year,
// about 1M services, read a service at a time as the daemon answers it
// (UsageEach, the counts past DefaultUsageMemory services spilled to a
// temporary file). It reports the live heap's peak, sampled every 10 ms.
func BenchmarkUsageYear10M(b *testing.B) {
	l := openScale(b)
	ctx := context.Background()
	services := 0
	var peak uint64
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for b.Loop() {
		runtime.GC()
		done := make(chan struct{})
		sampled := make(chan uint64)
		go func() {
			var top uint64
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				metrics.Read(sample)
				top = max(top, sample[0].Value.Uint64())
				select {
				case <-done:
					sampled <- top
					return
				case <-t.C:
				}
			}
		}()
		services = 0
		_, err := l.UsageEach(ctx, ledger.UsageQuery{}, "", 0, func(ledger.ServiceUsage) error {
			services++
			return nil
		})
		close(done)
		peak = max(peak, <-sampled)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(services), "services")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/op")
}
