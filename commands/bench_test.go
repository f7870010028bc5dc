package commands_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

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
