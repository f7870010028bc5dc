package commands_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// BenchmarkAllocateRelease measures durable allocate+release cycles through
// the single writer (group commit, fsync on) with 1 and 16 concurrent callers.
// One op is one cycle; cycles/s is reported.
func BenchmarkAllocateRelease(b *testing.B) {
	for _, callers := range []int{1, 16} {
		b.Run(fmt.Sprintf("callers-%d", callers), func(b *testing.B) {
			l := MustOpen(b, commands.Config{})
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					svc := fmt.Sprintf("bench-%d", c)
					for next.Add(1) <= int64(b.N) {
						a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: svc})
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := l.Release(ctx, ledger.ReleaseRequest{Port: a.Port}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
		})
	}
}

// BenchmarkAllocateWithSubscribers measures one caller's durable allocate+
// release cycle while 0 or 1,000 subscribers receive every event, each in
// its own goroutine. The writer hands events to a publisher goroutine that
// offers them without blocking, so their number should cost the writer
// little beyond the CPU they take. (The HTTP event stream encodes an event
// once for all streams; TestThousandSubscribers in internal/faulttest
// measures that end to end.)
func BenchmarkAllocateWithSubscribers(b *testing.B) {
	for _, subs := range []int{0, 1000} {
		b.Run(fmt.Sprintf("subscribers-%d", subs), func(b *testing.B) {
			l := MustOpen(b, commands.Config{})
			ctx := context.Background()
			var wg sync.WaitGroup
			for range subs {
				s, err := l.Subscribe(ctx, ledger.SubscribeRequest{Buffer: 1024})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range s.C() {
					}
				}()
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Release(ctx, ledger.ReleaseRequest{Port: a.Port}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
			l.Close() // ends the subscriptions
			wg.Wait()
		})
	}
}
