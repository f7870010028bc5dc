//go:build ledgerbench

package commands_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkChainCost16Interleaved runs the same 16-client allocate+release
// load on four ledgers, opened in the order chain, no chain, no chain,
// chain, in rounds of 400 cycles on each, the order of each round rotated,
// so that the drift of the machine and the disk and any advantage of a
// ledger's place fall on both kinds alike. One op is one round of all four;
// it reports the rate with and without the chain and their ratio. Run it
// with -benchtime 20x or so:
//
//	go test -tags ledgerbench -run '^$' -bench ChainCost16Interleaved -benchtime 20x ./commands/
func BenchmarkChainCost16Interleaved(b *testing.B) {
	const cycles = 400
	type subject struct {
		l     *commands.Ledger
		chain bool
	}
	var subjects []subject
	for _, chain := range []bool{true, false, false, true} {
		l, log := openLedger(b, ledger.Options{}, commands.Config{}, testRange)
		if !chain {
			ledger.DisableChainForBenchmark(log)
		}
		subjects = append(subjects, subject{l, chain})
	}
	ctx := context.Background()
	round := func(l *commands.Ledger) time.Duration {
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for c := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := fmt.Sprintf("bench-%d", c)
				for next.Add(1) <= cycles {
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
		return time.Since(start)
	}
	spent := map[bool]time.Duration{}
	i := 0
	for b.Loop() {
		for j := range subjects {
			s := subjects[(i+j)%len(subjects)]
			spent[s.chain] += round(s.l)
		}
		i++
	}
	rOn := float64(2*i*cycles) / spent[true].Seconds()
	rOff := float64(2*i*cycles) / spent[false].Seconds()
	b.ReportMetric(rOn, "chain-cycles/s")
	b.ReportMetric(rOff, "nochain-cycles/s")
	b.ReportMetric(rOn/rOff, "chain/nochain")
}
