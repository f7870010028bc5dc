package ledger_test

import (
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/internal/fixture"
	"github.com/portledger/portledger/ledger"
)

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 64} {
		name := "durable-1"
		if size > 1 {
			name = fmt.Sprintf("durable-batch%d", size)
		}
		b.Run(name, func(b *testing.B) {
			l := ledgertest.MustOpenLog(b, ledger.Options{})
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

// BenchmarkAppendGroup16 appends groups of 16 events on 16 ports, as the
// writer commits them under 16 clients, into a log that already holds 100k
// events: with every index entry written straight to by_port (tail1) and
// through the port index's tail (the default), whose merges are among the
// timed commits.
func BenchmarkAppendGroup16(b *testing.B) {
	for _, tail := range []int{1, ledger.DefaultPortIndexTail} {
		b.Run(fmt.Sprintf("tail%d", tail), func(b *testing.B) {
			l := ledgertest.MustOpenLog(b, ledger.Options{PortIndexTail: tail})
			fill := make([]ledger.Event, 1000)
			for i := range fill {
				fill[i] = stats(48000+i%16, int64(i))
			}
			for range 100 {
				if _, err := l.Append(fill, nil); err != nil {
					b.Fatal(err)
				}
			}
			batch := fill[:16]
			var times []time.Duration
			ws0 := l.WriteStats()
			for b.Loop() {
				start := time.Now()
				if _, err := l.Append(batch, nil); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(start))
			}
			slices.Sort(times)
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
			ws := l.WriteStats()
			b.ReportMetric(float64(ws.Pages-ws0.Pages)/float64(b.N), "pages/commit")
			b.ReportMetric(float64(ws.Writes-ws0.Writes)/float64(b.N), "writes/commit")
		})
	}
}

// bench1M is the 1M-event log, built once per test process, only when a
// benchmark asks for it, and removed by TestMain.
var bench1M fixture.Shared

// historyPort is the port whose history BenchmarkScanPort1M reads.
const historyPort = 8050

func BenchmarkScanPort1M(b *testing.B) {
	l := bench1M.Open(b)
	var times []time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		n = 0
		err := l.ScanPort(historyPort, ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error {
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
	l := bench1M.Open(b)
	bench1M.ReportDiskPerEvent(b)
	used, err := l.Size()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(used)/fixture.DefaultEvents, "used-bytes/event")
}
