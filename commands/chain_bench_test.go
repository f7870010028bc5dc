//go:build ledgerbench

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

// BenchmarkChainCost16 is BenchmarkAllocateRelease with 16 callers, with
// and without the hash chain, in one run: the chain's price on the 16-client
// durable allocate rate. Run it with the ledgerbench tag:
//
//	go test -tags ledgerbench -run '^$' -bench ChainCost16 -count 3 ./commands/
func BenchmarkChainCost16(b *testing.B) {
	for _, chain := range []bool{true, false} {
		b.Run(fmt.Sprintf("chain=%v", chain), func(b *testing.B) {
			l, log := openLedger(b, ledger.Options{}, commands.Config{}, testRange)
			if !chain {
				ledger.DisableChainForBenchmark(log)
			}
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for c := range 16 {
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
